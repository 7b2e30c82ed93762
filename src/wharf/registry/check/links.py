"""Link files: ``<base>/<alg>/<hex>/link`` holding ``<alg>:<hex>``, and the layer links.

A link is *invalid* when its directory does not name a digest or its content is not that
digest, and *dangling* when the blob it names is missing or corrupt. An invalid link whose
directory names a digest that is fine is written again (its directory says what it held);
any other broken link is removed, as Distribution's blob delete removes it, so that clients
see the blob as absent and push it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from wharf.errors import RegistryError
from wharf.reference import Digest, RepositoryName
from wharf.registry.check.checker import BlobState, Checker, Finding, Look
from wharf.registry.check.report import Kind
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import PathNotFound, StorageDriver

__all__ = [
    "LinkFile",
    "LinkKinds",
    "blob_problem",
    "check_layers",
    "link_files",
    "link_look",
    "read_link",
    "shown",
]

#: Links read at once in one repository.
_LINKS_AT_ONCE = 16

#: What is wrong with a link's target, or None when it is fine.
TargetProblem = Callable[[Digest], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class LinkFile:
    path: str
    directory: str
    #: What the directory names; None when that is not a digest.
    digest: Digest | None
    #: ``<alg>/<hex>`` as the directory names it, for details.
    name: str


@dataclass(frozen=True, slots=True)
class LinkKinds:
    invalid: Kind
    dangling: Kind


async def link_files(driver: StorageDriver, base: str) -> AsyncIterator[LinkFile]:
    """Every ``<base>/<alg>/<hex>/link``, as the driver's walk finds them."""
    async for files in driver.walk_files(base):
        for info in files:
            parts = info.path[len(base) + 1 :].split("/")
            if len(parts) != 3 or parts[2] != "link":
                continue  # Distribution writes nothing else here (empty directories aside)
            try:
                digest: Digest | None = Digest(parts[0], parts[1])
            except RegistryError:
                digest = None
            yield LinkFile(
                info.path, info.path.rpartition("/")[0], digest, f"{parts[0]}/{parts[1]}"
            )


async def read_link(driver: StorageDriver, path: str) -> tuple[bytes, Digest | None]:
    """A link's bytes and the digest they hold (None when they hold none); PathNotFound."""
    content = await driver.get_content(path)
    try:
        return content, paths.parse_link(content)
    except RegistryError:
        return content, None


def shown(content: bytes) -> str:
    """A link's bytes for a detail, cut short."""
    return repr(content[:80]) + ("..." if len(content) > 80 else "")


def link_look(
    checker: Checker, link: LinkFile, kinds: LinkKinds, target_problem: TargetProblem
) -> Look:
    """The look at one link: its name, its content, and its target."""
    driver = checker.driver

    async def remove() -> str:
        await driver.delete(link.directory)
        return "removed"

    async def look() -> list[Finding]:
        try:
            content, target = await read_link(driver, link.path)
        except PathNotFound:
            return []  # removed meanwhile
        digest = link.digest
        if digest is None:
            detail = f"{link.name} is not a digest of a supported algorithm"
            return [Finding(kinds.invalid, link.path, detail, remove)]
        problem = await target_problem(digest)
        if target != digest:
            detail = f"holds {shown(content)} instead of {digest}"
            if problem is not None:
                return [Finding(kinds.invalid, link.path, f"{detail}; {problem}", remove)]

            async def rewrite() -> str:
                await driver.put_content(link.path, paths.link_content(digest))
                return f"rewritten to hold {digest}"

            return [Finding(kinds.invalid, link.path, detail, rewrite)]
        if problem is not None:
            return [Finding(kinds.dangling, link.path, problem, remove)]
        return []

    return look


def blob_problem(checker: Checker) -> TargetProblem:
    async def problem(digest: Digest) -> str | None:
        state = await checker.blob_state(digest)
        if state is BlobState.MISSING:
            return f"the blob {digest} is not in the store"
        if state is BlobState.CORRUPT:
            return f"the blob {digest} is corrupt"
        return None

    return problem


async def check_layers(checker: Checker, name: RepositoryName) -> None:
    suspects = checker.suspects(name.value)
    kinds = LinkKinds(Kind.LAYER_LINK_INVALID, Kind.LAYER_LINK_DANGLING)
    target = blob_problem(checker)

    async def one(link: LinkFile) -> None:
        checker.stats.layer_links += 1
        await suspects.look(link_look(checker, link, kinds, target))

    await for_each(link_files(checker.driver, paths.layers_dir(name)), one, _LINKS_AT_ONCE)
    await suspects.settle()
