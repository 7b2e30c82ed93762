"""Read what the collector needs from storage: repositories, their links, tags and sessions.

Every repository is read from one walk of ``repositories/``: a store that lists many keys a
request (S3, Swift, GCS, Azure: a thousand) then answers the whole tree in a request per
thousand files, where reading each repository in turn cost about six requests a repository;
a filesystem reads whole subtrees a thread call. Only what a listing cannot tell is read
afterwards: a tag's current link, unless its ETag is the MD5 of a revision of its repository
(a link holds the digest's string), and a session's newest hash state.

While a registry serves the storage, sessions are read in a walk of their own before the
links (safety rule 4, :mod:`~wharf.registry.gc.safety`); offline nothing moves, and one walk
reads both.

Whatever cannot be understood (a name that is not a digest or a tag, a link that cannot be
read) makes the repository *uncertain*: the collector then removes no manifest from it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from wharf.errors import RegistryError
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry.gc.progress import Progress
from wharf.registry.gc.safety import PendingUploads, Session, pending_uploads
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import DriverError, FileInfo, PathNotFound, StorageDriver

__all__ = ["BlobEntry", "RepositoryInventory", "read_inventories", "walk_blobs"]

#: Directories that make a directory a repository. Distribution lists one once it has
#: ``_layers``; ``_uploads`` counts here so that the sessions of a first push are seen.
_MARKERS = ("_layers", "_manifests", "_uploads")
#: Repositories whose sessions are read at once.
_CONCURRENCY = 32
#: Tag links read in one ``get_many``.
_TAGS_A_BATCH = 256


@dataclass(slots=True)
class RepositoryInventory:
    name: RepositoryName
    #: Revision digest -> modification time of its link.
    revisions: dict[Digest, datetime | None] = field(default_factory=dict)
    #: Tag -> the digest its current link names.
    tags: dict[str, Digest] = field(default_factory=dict)
    #: Every tag directory, also those without a readable current link.
    tag_names: list[str] = field(default_factory=list)
    #: Layer link digest -> modification time of the link.
    layers: dict[Digest, datetime | None] = field(default_factory=dict)
    pending: PendingUploads = field(default_factory=PendingUploads)
    #: Something here could not be read: no manifest is removed from this repository.
    uncertain: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BlobEntry:
    digest: Digest
    size: int
    modified: datetime | None


@dataclass(slots=True)
class _Found:
    """One repository as the walk finds it, before what the walk cannot tell is read."""

    inventory: RepositoryInventory
    tag_dirs: set[str] = field(default_factory=set)
    #: Tag -> its current link's listing entry.
    current_links: dict[str, FileInfo] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)


class _Tree:
    """The repositories of ``repositories/``, filled from walks of it."""

    def __init__(self) -> None:
        self.root = paths.repositories_dir()
        self.found: dict[str, _Found | None] = {}  # None: not a repository name

    def entry(self, info: FileInfo) -> tuple[_Found, str, list[str]] | None:
        """The repository a path lies in, the marker directory below it and what follows."""
        relative = info.path[len(self.root) + 1 :]
        cut = relative.find("/_")  # components of repository names never start with "_"
        if cut <= 0:
            return None  # above every repository, or not in one
        marker, _, below = relative[cut + 1 :].partition("/")
        if marker not in _MARKERS:
            return None  # a directory of some other writer's
        directory = relative[:cut]
        if directory not in self.found:
            try:
                self.found[directory] = _Found(RepositoryInventory(RepositoryName(directory)))
            except RegistryError:
                self.found[directory] = None
        if (found := self.found[directory]) is None:
            return None
        return found, marker, below.split("/") if below else []

    async def read(self, driver: StorageDriver, *, sessions: bool, links: bool) -> None:
        async for files in driver.walk_files(self.root, _tag_history):
            for info in files:
                if (located := self.entry(info)) is None:
                    continue
                found, marker, rest = located
                if marker == "_uploads":
                    if sessions:
                        _add_session(found, rest, info)
                elif links:
                    _add_link(found, marker, rest, info)


def _tag_history(path: str) -> bool:
    """A tag's ``index`` directory (the digests it has named): the collector never reads it,
    since it removes a revision's entries by their paths, from the tag names that the tags'
    current links give. A tag directory with an index and no current link, the leftover of
    a delete cut short, is then not seen, and keeps the index entries of revisions removed."""
    head, _, last = path.rpartition("/")
    return last == "index" and head.rpartition("/")[0].endswith("/_manifests/tags")


async def read_inventories(
    driver: StorageDriver, progress: Progress, *, sessions_first: bool
) -> list[RepositoryInventory]:
    """Every repository of the storage, read now, in name order."""
    tree = _Tree()
    progress.phase("listing repositories")
    if sessions_first:
        await tree.read(driver, sessions=True, links=False)
    await tree.read(driver, sessions=not sessions_first, links=True)
    found = [f for _, f in sorted(tree.found.items()) if f is not None]
    unread = [link for repository in found for link in _resolve_tags(repository)]
    progress.phase("reading tags", len(unread))
    await for_each(_batches(unread), lambda batch: _read_tags(driver, batch, progress), 2)
    sessions = [f for f in found if f.sessions]
    progress.phase("reading upload sessions", len(sessions))

    async def read_sessions(repository: _Found) -> None:
        repository.inventory.pending = await pending_uploads(
            driver, repository.inventory.name, repository.sessions.values()
        )
        progress.advance()

    await for_each(sessions, read_sessions, _CONCURRENCY)
    return [f.inventory for f in found]


def _add_session(found: _Found, rest: list[str], info: FileInfo) -> None:
    if not rest:
        return
    session = found.sessions.setdefault(rest[0], Session(rest[0]))
    if rest[1:] == ["data"]:
        session.size = info.size
    elif len(rest) == 4 and rest[1] == "hashstates":
        session.states.setdefault(rest[2], []).append(rest[3])


def _add_link(found: _Found, marker: str, rest: list[str], info: FileInfo) -> None:
    inventory = found.inventory
    if marker == "_layers":
        if (digest := _link_digest(rest, info, inventory)) is not None:
            inventory.layers[digest] = info.modified
    elif marker == "_manifests" and rest[:1] == ["revisions"]:
        if (digest := _link_digest(rest[1:], info, inventory)) is not None:
            inventory.revisions[digest] = info.modified
    elif marker == "_manifests" and rest[:1] == ["tags"] and len(rest) >= 2:
        found.tag_dirs.add(rest[1])
        if rest[2:] == ["current", "link"]:
            found.current_links[rest[1]] = info


def _link_digest(rest: list[str], info: FileInfo, inventory: RepositoryInventory) -> Digest | None:
    """The digest of ``<alg>/<hex>/link``; None for anything else (Distribution writes
    nothing else there), or for a name that is not a digest, which makes the repository
    uncertain."""
    if len(rest) != 3 or rest[2] != "link":
        return None
    try:
        return Digest(rest[0], rest[1])
    except RegistryError:
        inventory.uncertain.append(f"not a digest: {info.path}")
        return None


@dataclass(frozen=True, slots=True)
class _UnreadTag:
    inventory: RepositoryInventory
    tag_name: str
    path: str


def _resolve_tags(found: _Found) -> list[_UnreadTag]:
    """Tags whose link's listing entry shows its content; the others, to be read."""
    inventory = found.inventory
    inventory.tag_names = sorted(found.tag_dirs)
    # An ETag equal to the MD5 of a revision's link is that link's content (whatever else a
    # store puts in its ETags cannot equal one by chance): read only the others.
    by_md5 = {hashlib.md5(paths.link_content(d)).hexdigest(): d for d in inventory.revisions}
    unread: list[_UnreadTag] = []
    for tag_name in inventory.tag_names:
        try:
            Tag(tag_name)
        except RegistryError:
            inventory.uncertain.append(f"not a tag: {tag_name!r}")
            continue
        link = found.current_links.get(tag_name)
        if link is None:
            continue  # a tag being deleted, or its directory left behind by a driver
        if link.etag is not None and (digest := by_md5.get(link.etag)) is not None:
            inventory.tags[tag_name] = digest
        else:
            unread.append(_UnreadTag(inventory, tag_name, link.path))
    return unread


def _batches(unread: list[_UnreadTag]) -> Iterator[list[_UnreadTag]]:
    for start in range(0, len(unread), _TAGS_A_BATCH):
        yield unread[start : start + _TAGS_A_BATCH]


async def _read_tags(driver: StorageDriver, batch: list[_UnreadTag], progress: Progress) -> None:
    contents: list[bytes | DriverError | None]
    try:
        contents = list(await driver.get_many([tag.path for tag in batch]))
    except DriverError:
        contents = [await _read_one(driver, tag) for tag in batch]
    for tag, content in zip(batch, contents, strict=True):
        if isinstance(content, DriverError):
            tag.inventory.uncertain.append(f"tag {tag.tag_name}: {content}")
        elif content is not None:  # None: deleted since the walk
            try:
                tag.inventory.tags[tag.tag_name] = paths.parse_link(content)
            except RegistryError:
                tag.inventory.uncertain.append(f"tag {tag.tag_name}: not a link")
    progress.advance(len(batch))


async def _read_one(driver: StorageDriver, tag: _UnreadTag) -> bytes | DriverError | None:
    """One link of a batch that failed, read alone: the error is only its repository's."""
    try:
        return await driver.get_content(tag.path)
    except PathNotFound:
        return None
    except DriverError as error:
        return error


async def walk_blobs(driver: StorageDriver) -> AsyncIterator[BlobEntry]:
    """Every ``blobs/<alg>/<xx>/<hex>/data``; anything else under ``blobs/`` is left alone."""
    base = paths.blobs_dir()
    async for files in driver.walk_files(base):
        for info in files:
            parts = info.path[len(base) + 1 :].split("/")
            if len(parts) != 4 or parts[3] != "data" or parts[1] != parts[2][:2]:
                continue
            with contextlib.suppress(RegistryError):
                yield BlobEntry(Digest(parts[0], parts[2]), info.size, info.modified)
