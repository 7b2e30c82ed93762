"""The referrers index (wharf's own ``_referrers``): each entry names a revision of the
repository whose manifest has that subject, and every such revision has its entry.

Repairs: an entry whose names are no digests, whose revision is gone or whose manifest has
another subject is removed; an entry whose descriptor cannot be read is written again from
the manifest; a manifest with a subject and no entry gets one, as a push makes it (manifests
only the lenient reader understands were never indexed, and are not).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from wharf.errors import RegistryError
from wharf.reference import Digest
from wharf.registry.check.checker import Checker, Finding, Look, Repair
from wharf.registry.check.report import Kind
from wharf.registry.check.revisions import ManifestReader, RepositoryState
from wharf.registry.manifest_parse import ParsedManifest
from wharf.registry.referrers import Referrers
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = ["check_referrers"]

_AT_ONCE = 16


@dataclass(frozen=True, slots=True)
class _Entry:
    path: str
    directory: str
    #: (subject, referrer), None when the directories do not name digests.
    digests: tuple[Digest, Digest] | None


async def _entries(driver: StorageDriver, base: str) -> AsyncIterator[_Entry]:
    """Every ``<base>/<alg>/<hex>/<alg>/<hex>/descriptor``."""
    async for files in driver.walk_files(base):
        for info in files:
            parts = info.path[len(base) + 1 :].split("/")
            if len(parts) != 5 or parts[4] != "descriptor":
                continue
            try:
                digests: tuple[Digest, Digest] | None = (
                    Digest(parts[0], parts[1]),
                    Digest(parts[2], parts[3]),
                )
            except RegistryError:
                digests = None
            yield _Entry(info.path, info.path.rpartition("/")[0], digests)


async def check_referrers(checker: Checker, reader: ManifestReader, state: RepositoryState) -> None:
    suspects = checker.suspects(state.name.value)
    indexed: set[tuple[Digest, Digest]] = set()

    async def one(entry: _Entry) -> None:
        checker.stats.referrers += 1
        if entry.digests is not None:
            indexed.add(entry.digests)
        await suspects.look(_entry(checker, reader, state, entry))

    await for_each(_entries(checker.driver, paths.referrers_root(state.name)), one, _AT_ONCE)
    await suspects.settle()
    for digest, info in sorted(state.with_subject.items(), key=lambda item: str(item[0])):
        subject, parsed = info.subject, info.parsed
        if subject is not None and parsed is not None and (subject, digest) not in indexed:
            await suspects.look(_missing(checker, state, subject, parsed))
    await suspects.settle()


def _add(
    checker: Checker, state: RepositoryState, subject: Digest, manifest: ParsedManifest
) -> Repair:
    async def add() -> str:
        await Referrers(checker.driver, state.name).add(subject, manifest)
        return "entry written from the manifest"

    return add


def _entry(checker: Checker, reader: ManifestReader, state: RepositoryState, entry: _Entry) -> Look:
    driver = checker.driver

    async def remove() -> str:
        await driver.delete(entry.directory)
        return "removed"

    async def look() -> list[Finding]:
        try:
            content = await driver.get_content(entry.path)
        except PathNotFound:
            return []
        if entry.digests is None:
            detail = "its directories do not name a subject and a referrer digest"
            return [Finding(Kind.REFERRER_INVALID, entry.path, detail, remove)]
        subject, referrer = entry.digests
        if not await state.has_revision(checker, referrer):
            detail = f"{referrer} is no manifest of {state.name.value}"
            return [Finding(Kind.REFERRER_DANGLING, entry.path, detail, remove)]
        info = await reader.read(referrer)
        if info is None or info.invalid is not None:
            return []  # the revision's own problem, reported with it
        if info.subject != subject:
            detail = f"the subject of {referrer} is {info.subject or 'none'}, not {subject}"
            return [Finding(Kind.REFERRER_WRONG_SUBJECT, entry.path, detail, remove)]
        if _descriptor_digest(content) != str(referrer):
            detail = f"its descriptor does not describe {referrer}"
            repair = remove if info.parsed is None else _add(checker, state, subject, info.parsed)
            return [Finding(Kind.REFERRER_INVALID, entry.path, detail, repair)]
        return []

    return look


def _descriptor_digest(content: bytes) -> object:
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return value.get("digest") if isinstance(value, dict) else None


def _missing(
    checker: Checker, state: RepositoryState, subject: Digest, manifest: ParsedManifest
) -> Look:
    path = paths.referrer_descriptor(state.name, subject, manifest.digest)

    async def look() -> list[Finding]:
        try:
            await checker.driver.stat(path)
            return []  # indexed meanwhile: the push was under way
        except PathNotFound:
            pass
        if not await state.has_revision(checker, manifest.digest):
            return []
        detail = f"{manifest.digest} has the subject {subject} but no entry"
        repair = _add(checker, state, subject, manifest)
        return [Finding(Kind.REFERRER_MISSING, path, detail, repair)]

    return look
