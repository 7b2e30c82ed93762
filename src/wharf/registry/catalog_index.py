"""The catalog index: every repository's name, kept in storage as sorted pages.

A ``_catalog`` page is read from the index, not from a walk of ``repositories/``: the root
(``/wharf/catalog/root``, JSON) holds the first name and id of each page, each page
(``/wharf/catalog/pages/<id>``) up to ``PAGE_MAX`` sorted names, one a line. A request after
``last`` reads the root and the one or two pages from there, whatever the size of the
registry, and nothing is cached, so every worker and instance answers from the same index.

It is kept at write time: a repository is added before its first layer or manifest link is
written (so a repository with content is always listed), and removed by ``RepositoryRemover``.
A change rewrites the pages it touches under new ids (a page over ``PAGE_MAX`` splits in two),
then the root, then deletes the old pages: a reader holding the old root finds a page gone and
reads the root again. Changes take the lease of ``/wharf/catalog/lock``, so they are exclusive
across every process sharing the storage (across machines as far as the driver's leases are:
``StorageDriver.exclusive_leases``).

Storage that wharf did not write (Distribution's, or wharf's from before the index) is
indexed once by a walk (``build``), under the lease of ``/wharf/catalog/build``, which records
after each group of top-level directories how far it got: a build stopped half way continues
there. Until it is built, the catalog walks as before. Repositories another writer creates
later are added when wharf first serves or writes them (``note``) and by ``reconcile``, which
the upload purge walk runs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from wharf.registry.repository_walk import find_repositories
from wharf.storage import paths
from wharf.storage.driver import Lease, LeaseBusy, PathNotFound, StorageDriver

__all__ = ["BUILD_GROUP", "PAGE_MAX", "CatalogIndex", "keep_built"]

log = logging.getLogger("wharf.catalog")

#: Names per page at most; a page growing past it is split in two.
PAGE_MAX = 2000
#: Top-level directories of ``repositories/`` walked between two records of a build.
BUILD_GROUP = 256
#: How long a change waits for the lock before giving up.
_LOCK_WAIT = 30.0
_MARKERS = ("_layers", "_manifests")


@dataclass(slots=True)
class _Root:
    #: (first name, page id, names) of each page, sorted by first name; none is empty.
    pages: list[tuple[str, str, int]] = field(default_factory=list)
    built: bool = False

    def encode(self) -> bytes:
        document = {"version": 1, "built": self.built, "pages": [list(p) for p in self.pages]}
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, content: bytes) -> _Root:
        document = json.loads(content)
        if not isinstance(document, dict) or document.get("version") != 1:
            raise ValueError("not a catalog index root")
        pages = [(str(first), str(id_), int(count)) for first, id_, count in document["pages"]]
        return cls(pages, bool(document["built"]))

    def find(self, name: str) -> int:
        """The page that holds ``name`` or would (0 when there is none yet)."""
        firsts = [page[0] for page in self.pages]
        return max(bisect.bisect_right(firsts, name) - 1, 0)


class CatalogIndex:
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    # -- reading ----------------------------------------------------------------------------

    async def _root(self) -> _Root | None:
        """The root; None when there is none, or when it cannot be read (the catalog walks,
        and the next change writes a new root, which the next start builds)."""
        try:
            content = await self.driver.get_content(paths.catalog_root())
        except PathNotFound:
            return None
        try:
            return _Root.decode(content)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("the catalog index root is unreadable (%s): the catalog walks", error)
            return None

    async def _page(self, page_id: str) -> list[str]:
        content = await self.driver.get_content(paths.catalog_page(page_id))
        return content.decode().split("\n") if content else []

    async def built(self) -> bool:
        root = await self._root()
        return root is not None and root.built

    async def page(self, limit: int, last: str | None) -> tuple[list[str], bool] | None:
        """Up to ``limit`` names after ``last`` and whether more follow; None until built."""
        for _ in range(5):  # a page replaced under us: read the root again
            root = await self._root()
            if root is None or not root.built:
                return None
            with contextlib.suppress(PathNotFound):
                return await self._read_from(root, limit, last)
        raise RuntimeError("the catalog index changed under five reads in a row")

    async def _read_from(self, root: _Root, limit: int, last: str | None) -> tuple[list[str], bool]:
        start = root.find(last) if last else 0
        names: list[str] = []
        for index in range(start, len(root.pages)):
            page = await self._page(root.pages[index][1])
            names += page[bisect.bisect_right(page, last) :] if last else page
            if len(names) >= limit:  # no page is empty: another page is more
                return names[:limit], len(names) > limit or index + 1 < len(root.pages)
        return names, False

    async def all(self) -> list[str]:
        """Every name in the index, built or not."""
        root = await self._root()
        if root is None:
            return []
        found: list[str] = []
        for _, page_id, _ in root.pages:
            with contextlib.suppress(PathNotFound):
                found += await self._page(page_id)
        return found

    async def contains(self, name: str) -> bool:
        for _ in range(5):
            root = await self._root()
            if root is None or not root.pages:
                return False
            try:
                page = await self._page(root.pages[root.find(name)][1])
            except PathNotFound:
                continue
            index = bisect.bisect_left(page, name)
            return index < len(page) and page[index] == name
        return False

    # -- changing ---------------------------------------------------------------------------

    async def add(self, names: Iterable[str]) -> None:
        await self._change(set(names), set())

    async def remove(self, names: Iterable[str]) -> None:
        await self._change(set(), set(names))

    async def note(self, name: str) -> None:
        """Make sure ``name`` is listed: one or two reads when it is."""
        if not await self.contains(name):
            await self.add([name])

    async def _change(self, added: set[str], removed: set[str], *, built: bool = False) -> None:
        if not added and not removed and not built:
            return
        async with self._locked():
            root = await self._root() or _Root()
            # Which page each name goes to or leaves, by the pages' first names.
            touched: dict[int, tuple[set[str], set[str]]] = {}
            for name in added:
                touched.setdefault(root.find(name), (set(), set()))[0].add(name)
            for name in removed:
                if root.pages:
                    touched.setdefault(root.find(name), (set(), set()))[1].add(name)
            replaced: list[str] = []
            new_pages: dict[int, list[tuple[str, str, int]]] = {}
            for index, (adds, drops) in touched.items():
                old = await self._page(root.pages[index][1]) if root.pages else []
                merged = sorted((set(old) | adds) - drops)
                if merged == old:
                    continue
                if root.pages:
                    replaced.append(root.pages[index][1])
                new_pages[index] = [await self._write(chunk) for chunk in _split(merged)]
            if not new_pages and not (built and not root.built):
                return
            pages: list[tuple[str, str, int]] = []
            for index in range(max(len(root.pages), 1)):
                if index in new_pages:
                    pages += new_pages[index]
                elif index < len(root.pages):
                    pages.append(root.pages[index])
            root.pages = await self._merge_small(pages, replaced)
            root.built = root.built or built
            await self.driver.put_content(paths.catalog_root(), root.encode())
            for page_id in replaced:
                with contextlib.suppress(PathNotFound):
                    await self.driver.delete(paths.catalog_page(page_id))

    async def _write(self, names: list[str]) -> tuple[str, str, int]:
        page_id = secrets.token_hex(8)
        await self.driver.put_content(paths.catalog_page(page_id), "\n".join(names).encode())
        return names[0], page_id, len(names)

    async def _merge_small(
        self, pages: list[tuple[str, str, int]], replaced: list[str]
    ) -> list[tuple[str, str, int]]:
        """Neighbours that fit in half a page together become one, so that removals never
        leave many small pages to read through."""
        merged: list[tuple[str, str, int]] = []
        for page in pages:
            if merged and merged[-1][2] + page[2] <= PAGE_MAX // 2:
                before = merged.pop()
                names = await self._page(before[1]) + await self._page(page[1])
                replaced += [before[1], page[1]]
                page = await self._write(names)
            merged.append(page)
        return merged

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[Lease]:
        lock = paths.catalog_lock()
        deadline = time.monotonic() + _LOCK_WAIT
        pause = 0.005
        while True:
            try:
                lease = await self.driver.lease(lock)
                break
            except PathNotFound:
                await self.driver.put_content(lock, b"")  # the same by whoever makes it
            except LeaseBusy:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
        try:
            yield lease
        finally:
            await lease.release()

    # -- building and reconciling -----------------------------------------------------------

    async def build(self) -> bool:
        """Index what storage holds, continuing a build that stopped; False when another
        process is building it (LeaseBusy) or it is built already."""
        marker = paths.catalog_build()
        if await self.built():
            return False
        try:
            lease = await self.driver.lease(marker)
        except PathNotFound:
            await self.driver.put_content(marker, b"{}")
            try:
                lease = await self.driver.lease(marker)
            except LeaseBusy:
                return False
        except LeaseBusy:
            return False
        try:
            if await self.built():
                return False
            await self._build(marker, lease)
            return True
        finally:
            await lease.release()

    async def _build(self, marker: str, lease: Lease) -> None:
        after = _progress(await self.driver.get_content(marker))
        root_dir = paths.repositories_dir()
        try:
            tops = sorted(
                top
                for top in await self.driver.list(root_dir)
                if not top.rpartition("/")[2].startswith("_")
            )
        except PathNotFound:
            tops = []
        if after is not None:
            tops = [top for top in tops if top.rpartition("/")[2] > after]
            log.info("catalog index: continuing the build after %s", after)
        started, total = time.monotonic(), 0
        for start in range(0, len(tops), BUILD_GROUP):
            group = tops[start : start + BUILD_GROUP]
            found = await find_repositories(self.driver, _MARKERS, group)
            await self.add(found)
            total += len(found)
            lease.check()
            last = group[-1].rpartition("/")[2]
            await self.driver.put_content(marker, json.dumps({"after": last}).encode())
            log.info(
                "catalog index: %d repositories indexed, %d of %d top-level directories (%.0f s)",
                total,
                start + len(group),
                len(tops),
                time.monotonic() - started,
            )
        await self._change(set(), set(), built=True)
        await self.driver.put_content(marker, b"{}")
        log.info("catalog index built: %d repositories", total)

    async def reconcile(self, walked: Iterable[str]) -> tuple[int, int]:
        """Compare the index with a walk's names: add those missing, remove those whose
        directory holds no repository now (checked again: one may have been pushed after
        the walk passed). How many were added and removed."""
        present = set(walked)
        indexed = set(await self.all())
        missing = present - indexed
        extra = sorted(indexed - present)
        gone: list[str] = []
        if extra:
            directories = [f"{paths.repositories_dir()}/{name}" for name in extra]
            listed = await self.driver.list_many(directories)
            for name, children in zip(extra, listed, strict=True):
                kids = {child.rpartition("/")[2] for child in children or ()}
                if not any(marker in kids for marker in _MARKERS):
                    gone.append(name)
        await self._change(missing, set(gone))
        if missing or gone:
            log.info("catalog index reconciled: %d added, %d removed", len(missing), len(gone))
        return len(missing), len(gone)


async def keep_built(index: CatalogIndex, pause: float = 30.0) -> None:
    """Build the index unless it is (one process of all those sharing the storage builds;
    the others look again every ``pause`` to ``2 * pause`` seconds until it is built)."""
    while not await index.built():
        try:
            await index.build()
        except Exception:
            log.exception("building the catalog index failed; the catalog walks meanwhile")
        if not await index.built():
            await asyncio.sleep(pause * (1 + secrets.randbelow(1000) / 1000))


def _split(names: list[str]) -> list[list[str]]:
    if not names:
        return []
    if len(names) <= PAGE_MAX:
        return [names]
    size = PAGE_MAX // 2
    return [names[start : start + size] for start in range(0, len(names), size)]


def _progress(content: bytes) -> str | None:
    with contextlib.suppress(ValueError):
        document: Any = json.loads(content)
        if isinstance(document, dict) and isinstance(document.get("after"), str):
            return str(document["after"])
    return None
