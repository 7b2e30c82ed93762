"""Tags: each current link names a revision of the repository, and has its index entry.

Repairs: a tag whose current link is missing, unreadable, or names a revision the repository
does not have is removed (the API already answers 404 for it, while listing it); a current
link without its index entry (a process killed between ``Tags.tag``'s two writes) gets one.
An index entry whose link is unreadable is written again when its directory names a revision,
removed otherwise. An index entry of a revision deleted since is no problem: a manifest
delete removes the tags pointing at it, not the other tags' history (neither does
Distribution's); it is counted.

A tag is removed only if its current link still holds what the look saw, so a client moving
the tag meanwhile keeps its tag.
"""

from __future__ import annotations

from wharf.errors import RegistryError
from wharf.reference import Tag
from wharf.registry.check.checker import Checker, Finding, LeftAlone, Look, Repair
from wharf.registry.check.links import LinkFile, link_files, read_link, shown
from wharf.registry.check.report import Kind
from wharf.registry.check.revisions import RepositoryState
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import PathNotFound

__all__ = ["check_tags"]

_AT_ONCE = 16


async def check_tags(checker: Checker, state: RepositoryState) -> None:
    name = state.name
    suspects = checker.suspects(name.value)
    try:
        children = await checker.driver.list(paths.tags_dir(name))
    except PathNotFound:
        return

    async def one(directory: str) -> None:
        checker.stats.tags += 1
        try:
            tag = Tag(directory.rpartition("/")[2])
        except RegistryError:
            await suspects.look(_bad_name(checker, directory))
            return
        await suspects.look(_current(checker, state, tag))
        async for link in link_files(checker.driver, paths.tag_index_dir(name, tag)):
            checker.stats.tag_index_entries += 1
            if await suspects.look(_index_entry(checker, state, link)):
                assert link.digest is not None  # an entry without one is never sound
                if not await state.has_revision(checker, link.digest):
                    checker.stats.tag_index_stale += 1

    await for_each(sorted(children), one, _AT_ONCE)
    await suspects.settle()


def _bad_name(checker: Checker, directory: str) -> Look:
    async def look() -> list[Finding]:
        try:
            await checker.driver.list(directory)
        except PathNotFound:
            return []
        detail = "not a valid tag name"
        return [Finding(Kind.TAG_NAME_INVALID, directory, detail, why_not="left for an operator")]

    return look


def _current(checker: Checker, state: RepositoryState, tag: Tag) -> Look:
    driver, name = checker.driver, state.name
    current = paths.tag_current_link(name, tag)

    def remove_if_unchanged(seen: bytes | None) -> Repair:
        async def remove() -> str:
            try:
                now: bytes | None = await driver.get_content(current)
            except PathNotFound:
                now = None
            if now != seen:
                raise LeftAlone("the tag changed meanwhile")
            await driver.delete(paths.tag_dir(name, tag))
            return "tag removed"

        return remove

    async def look() -> list[Finding]:
        try:
            content, target = await read_link(driver, current)
        except PathNotFound:
            try:
                await driver.list(paths.tag_dir(name, tag))
            except PathNotFound:
                return []  # untagged meanwhile
            directory, detail = paths.tag_dir(name, tag), "a tag without a current link"
            return [Finding(Kind.TAG_LINK_INVALID, directory, detail, remove_if_unchanged(None))]
        if target is None:
            detail = f"holds {shown(content)} instead of a digest"
            return [Finding(Kind.TAG_LINK_INVALID, current, detail, remove_if_unchanged(content))]
        if not await state.has_revision(checker, target):
            detail = f"points at {target}, which is no manifest of {name.value}"
            return [Finding(Kind.TAG_DANGLING, current, detail, remove_if_unchanged(content))]
        index = paths.tag_index_link(name, tag, target)
        try:
            await driver.stat(index)
        except PathNotFound:
            # Only history is missing (a push stopped between the current link and the
            # index entry, which ``Tags.tag`` writes in that order): the tag works, so it is
            # counted, not reported, and a repair adds the entry.
            checker.stats.tag_history_missing += 1
            if checker.repair:
                await driver.put_content(index, paths.link_content(target))
                checker.stats.tag_history_added += 1
        return []

    return look


def _index_entry(checker: Checker, state: RepositoryState, link: LinkFile) -> Look:
    driver = checker.driver

    async def remove() -> str:
        await driver.delete(link.directory)
        return "removed"

    async def look() -> list[Finding]:
        digest = link.digest
        if digest is None:
            detail = f"{link.name} is not a digest of a supported algorithm"
            return [Finding(Kind.TAG_INDEX_INVALID, link.path, detail, remove)]
        try:
            content, target = await read_link(driver, link.path)
        except PathNotFound:
            return []
        if target == digest:
            return []
        detail = f"holds {shown(content)} instead of {digest}"
        if not await state.has_revision(checker, digest):
            return [Finding(Kind.TAG_INDEX_INVALID, link.path, detail, remove)]

        async def rewrite() -> str:
            await driver.put_content(link.path, paths.link_content(digest))
            return f"rewritten to hold {digest}"

        return [Finding(Kind.TAG_INDEX_INVALID, link.path, detail, rewrite)]

    return look
