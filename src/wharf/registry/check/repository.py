"""The repository phase: every repository, a few at once, found as the catalog finds them.

Within a repository the steps run in order, each settling its findings (and repairs) before
the next reads what they leave: layer links, revision links and their manifests, tags,
referrers. So a revision removed because its manifest blob was corrupt takes its tags and
referrer entries with it in the same run.
"""

from __future__ import annotations

import contextlib

from wharf.errors import RegistryError
from wharf.reference import RepositoryName
from wharf.registry.check.checker import Checker, Finding
from wharf.registry.check.links import check_layers
from wharf.registry.check.referrers import check_referrers
from wharf.registry.check.report import Kind
from wharf.registry.check.revisions import ManifestReader, RepositoryState, check_revisions
from wharf.registry.check.tags import check_tags
from wharf.registry.repository_walk import find_repositories
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import PathNotFound

__all__ = ["REPOSITORIES_AT_ONCE", "check_repositories", "check_repository"]

REPOSITORIES_AT_ONCE = 4
#: ``_uploads`` counts, as for the collector, so that a first push's sessions are seen.
_MARKERS = ("_layers", "_manifests", "_uploads")


async def check_repositories(checker: Checker) -> None:
    directories = await find_repositories(checker.driver, _MARKERS)
    checker.progress.phase("checking repositories", len(directories))
    reader = ManifestReader(checker)

    async def one(directory: str) -> None:
        try:
            name = RepositoryName(directory)
        except RegistryError:
            # Nothing the API can reach: reported, never touched.
            path = f"{paths.repositories_dir()}/{directory}"
            detail = "not a valid repository name"
            finding = Finding(Kind.REPOSITORY_NAME_INVALID, path, detail, why_not="left alone")
            await checker.record(finding, None)
        else:
            await check_repository(checker, reader, name)
        checker.progress.advance()

    await for_each(directories, one, REPOSITORIES_AT_ONCE)
    checker.progress.done()


async def check_repository(checker: Checker, reader: ManifestReader, name: RepositoryName) -> None:
    checker.stats.repositories += 1
    state = RepositoryState(name)
    await check_layers(checker, name)
    await check_revisions(checker, reader, state)
    await check_tags(checker, state)
    await check_referrers(checker, reader, state)
    with contextlib.suppress(PathNotFound):
        checker.stats.upload_sessions += len(await checker.driver.list(paths.uploads_dir(name)))
