"""The contract for directories: list, walk, move, delete and stat (see ``contract``)."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from tests.storage.driver.contract_support import (
    ContractSettings,
    assert_error,
    random_bytes,
    random_name,
    random_path,
)
from wharf.storage.driver import FILES_A_BATCH, DriverError, PathNotFound, StorageDriver

__all__ = ["TreeContract"]


class TreeContract(ContractSettings):
    """Every test takes a fresh ``driver``; subclasses provide that fixture."""

    # -- directories ------------------------------------------------------------------------

    @pytest.mark.parametrize("files", [1, "many"])
    async def test_list(self, driver: StorageDriver, files: int | str) -> None:
        count = self.many_files if files == "many" else int(files)
        root = "/" + random_name(8)
        missing = root + "/nonexistent"
        with pytest.raises(PathNotFound) as exc:
            await driver.list(missing)
        assert_error(exc, driver, missing)
        parent = root + "/" + random_name(8)
        children = sorted({f"{parent}/{random_name(12)}" for _ in range(count)})
        await asyncio.gather(*(driver.put_content(child, random_bytes(8)) for child in children))
        assert await driver.list("/") == [root]
        assert await driver.list(root) == [parent]
        assert sorted(await driver.list(parent)) == children

    async def test_list_children_only(self, driver: StorageDriver) -> None:
        for path in ("/r/a", "/r/b/c", "/r/b/d/e", "/r/bc", "/rr/x"):
            await driver.put_content(path, b"x")
        assert sorted(await driver.list("/r")) == ["/r/a", "/r/b", "/r/bc"]
        assert sorted(await driver.list("/r/b")) == ["/r/b/c", "/r/b/d"]
        with pytest.raises(PathNotFound):
            await driver.list("/r/a")  # a file

    async def test_list_many(self, driver: StorageDriver) -> None:
        for path in ("/r/a", "/r/b/c", "/r/b/d/e", "/r/bc", "/rr/x"):
            await driver.put_content(path, b"x")
        directories = ["/r/b", "/r/missing", "/r", "/r/a", "/r/b/d", "/"]
        listed = await driver.list_many(directories)
        assert [sorted(children) if children is not None else None for children in listed] == [
            ["/r/b/c", "/r/b/d"],
            None,
            ["/r/a", "/r/b", "/r/bc"],
            None,  # a file, as ``list`` finds nothing there
            ["/r/b/d/e"],
            ["/r", "/rr"],
        ]
        assert await driver.list_many([]) == []

    async def test_listing_version(self, driver: StorageDriver) -> None:
        """None, or a value no added or removed name leaves as it was."""

        async def settled_version() -> tuple[int, int] | None:
            for _ in range(30):  # a change shows once it is older than the clock's tick
                await asyncio.sleep(0.1)
                if (version := await driver.listing_version("/v")) is not None:
                    return version
            return None

        await driver.put_content("/v/a", b"x")
        if not self.listing_versions:
            assert await driver.listing_version("/v") is None  # callers list every time
            return
        first = await settled_version()
        assert first is not None
        assert await driver.listing_version("/v") == first
        await driver.put_content("/v/b", b"x")
        added = await settled_version()
        assert added not in (None, first)
        await driver.delete("/v/b")
        assert await settled_version() not in (None, added)

    async def test_get_many(self, driver: StorageDriver) -> None:
        contents = {"/g/a": b"sha256:" + b"a" * 64, "/g/b/c": b"", "/g/d": random_bytes(3000)}
        for path, content in contents.items():
            await driver.put_content(path, content)
        paths = ["/g/d", "/g/missing", "/g/a", "/g/b", "/g/b/c", "/g/a"]
        assert await driver.get_many(paths) == [
            contents["/g/d"],
            None,
            contents["/g/a"],
            None,  # a directory, where ``get_content`` finds nothing
            b"",
            contents["/g/a"],
        ]
        assert await driver.get_many([]) == []

    async def test_list_page(self, driver: StorageDriver) -> None:
        # Names where one is another followed by "-" or ".", in files and directories.
        names = ["a", "a-b", "a.c", "ab", "b", "b-1", "c0", "c9"]
        for name in names:
            await driver.put_content(f"/p/{name}/current/link", b"x")
        await driver.put_content("/p/file-1", b"x")
        await driver.put_content("/q/other", b"x")
        everything = sorted([*names, "file-1"])
        for limit in (1, 2, 3, 100):
            seen: list[str] = []
            after: str | None = None
            while True:
                page, more = await driver.list_page("/p", after, limit)
                assert len(page) <= limit
                assert all(child.startswith("/p/") for child in page)
                seen += [child.rpartition("/")[2] for child in page]
                if not more:
                    break
                assert len(page) == limit
                after = seen[-1]
            assert sorted(seen) == everything  # each once, none skipped
            assert len(seen) == len(set(seen))
        assert (await driver.list_page("/p", "zz", 5)) == ([], False)
        with pytest.raises(PathNotFound):
            await driver.list_page("/missing", None, 5)

    async def test_walk(self, driver: StorageDriver) -> None:
        files = await _tree_beside_a_file(driver, "/r", "/s")
        walked = [info async for info in driver.walk("/r")]
        expected = ["/r/a", "/r/b", "/r/b/c", "/r/b/d", "/r/b/d/e", "/r/b/d/f", "/r/bc", "/r/z"]
        assert [info.path for info in walked] == [*expected, "/r/z/y"]
        for info in walked:
            assert info.is_dir == (info.path not in files)
            assert info.size == files.get(info.path, 0)
        assert [info.path async for info in driver.walk("/nonexistent")] == []
        assert [info.path async for info in driver.walk("/")][:2] == ["/r", "/r/a"]

    async def test_walk_files(self, driver: StorageDriver) -> None:
        """The files of ``walk``, in its order and with what it says of them, in batches."""
        files = await _tree_beside_a_file(driver, "/f", "/g")
        batches = [batch async for batch in driver.walk_files("/f")]
        assert batches
        assert all(0 < len(batch) <= FILES_A_BATCH for batch in batches)
        found = [(i.path, i.size, i.modified, i.is_dir) for batch in batches for i in batch]
        walked = [(i.path, i.size, i.modified, i.is_dir) async for i in driver.walk("/f")]
        assert found == [entry for entry in walked if not entry[3]]
        assert [entry[:2] for entry in found] == list(files.items())
        assert [batch async for batch in driver.walk_files("/nonexistent")] == []
        # A driver may leave out what ``skip`` accepts (one that lists whole trees gives it).
        skipped = [i.path async for b in driver.walk_files("/f", "/f/b/d".__eq__) for i in b]
        assert set(files) - {"/f/b/d/e", "/f/b/d/f"} <= set(skipped) <= set(files)
        from_root = [i.path async for batch in driver.walk_files("/") for i in batch]
        assert {*files, "/g"} <= set(from_root)

    async def test_walk_etags(self, driver: StorageDriver) -> None:
        """Where a driver gives ETags, a file written in one request has its content's MD5:
        a caller may confirm content it expects by it (never, elsewhere, learn it)."""
        files = {"/e/a": b"sha256:" + b"0" * 64, "/e/b/c": b"", "/e/b/d": random_bytes(100)}
        for path, content in files.items():
            await driver.put_content(path, content)
        walked = {info.path: info.etag async for info in driver.walk("/e") if not info.is_dir}
        for path, content in files.items():
            etag = walked[path]
            if self.walk_etags or etag is not None:
                assert etag == hashlib.md5(content).hexdigest(), path
        await driver.put_content("/e/a", b"sha256:" + b"1" * 64)
        rewritten = {info.path: info.etag async for info in driver.walk("/e")}
        if self.walk_etags:
            assert rewritten["/e/a"] == hashlib.md5(b"sha256:" + b"1" * 64).hexdigest()

    async def test_walk_branching(self, driver: StorageDriver) -> None:
        root = "/" + random_name(8)
        files = {root + random_path(random.randint(8, 40)) for _ in range(20)}
        files = {f for f in files if not any(o.startswith(f + "/") for o in files)}
        for path in files:
            await driver.put_content(path, random_bytes(8))
        directories = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") - 1)}
        infos = [info async for info in driver.walk(root)]
        assert {i.path for i in infos if not i.is_dir} == files
        assert {i.path for i in infos if i.is_dir} == directories - {root}

    # -- move -------------------------------------------------------------------------------

    async def test_move(self, driver: StorageDriver) -> None:
        source, destination, contents = random_path(), random_path(), random_bytes(32)
        await driver.put_content(source, contents)
        await driver.move(source, destination)
        assert await driver.get_content(destination) == contents
        with pytest.raises(PathNotFound) as exc:
            await driver.get_content(source)
        assert_error(exc, driver, source)

    async def test_move_overwrite(self, driver: StorageDriver) -> None:
        source, destination = random_path(), random_path()
        contents = random_bytes(32)
        await driver.put_content(source, contents)
        await driver.put_content(destination, random_bytes(64))
        await driver.move(source, destination)
        assert await driver.get_content(destination) == contents
        with pytest.raises(PathNotFound):
            await driver.get_content(source)

    async def test_move_nonexistent(self, driver: StorageDriver) -> None:
        source, destination, contents = random_path(), random_path(), random_bytes(32)
        await driver.put_content(destination, contents)
        with pytest.raises(PathNotFound) as exc:
            await driver.move(source, destination)
        assert_error(exc, driver, source)
        assert await driver.get_content(destination) == contents

    async def test_move_invalid(self, driver: StorageDriver) -> None:
        await driver.put_content("/notadir", random_bytes(32))
        with pytest.raises(DriverError):
            await driver.move("/notadir/foo", "/notadir/bar")

    async def test_move_to_deeper_path(self, driver: StorageDriver) -> None:
        contents = random_bytes(32)
        await driver.put_content("/a/upload/data", contents)
        await driver.move("/a/upload/data", "/a/blobs/sha256/ab/abcd/data")
        assert await driver.get_content("/a/blobs/sha256/ab/abcd/data") == contents
        with pytest.raises(PathNotFound):
            await driver.get_content("/a/upload/data")

    # -- delete -----------------------------------------------------------------------------

    async def test_delete(self, driver: StorageDriver) -> None:
        path = random_path()
        await driver.put_content(path, random_bytes(32))
        await driver.delete(path)
        with pytest.raises(PathNotFound) as exc:
            await driver.get_content(path)
        assert_error(exc, driver, path)

    @pytest.mark.parametrize("files", [1, "many"])
    async def test_delete_dir(self, driver: StorageDriver, files: int | str) -> None:
        count = self.many_files if files == "many" else int(files)
        parent = f"/{random_name(8)}/{random_name(8)}"
        children = {f"{parent}/{random_name(12)}" for _ in range(count)}
        await asyncio.gather(*(driver.put_content(child, random_bytes(8)) for child in children))
        await driver.delete(parent)
        for child in sorted(children):
            with pytest.raises(PathNotFound):
                await driver.get_content(child)

    async def test_delete_nonexistent(self, driver: StorageDriver) -> None:
        path = random_path()
        with pytest.raises(PathNotFound) as exc:
            await driver.delete(path)
        assert_error(exc, driver, path)

    async def test_delete_folder(self, driver: StorageDriver) -> None:
        directory = random_path()
        names = [random_path() for _ in range(3)]
        for name in names:
            await driver.put_content(directory + name, random_bytes(32))
        await driver.delete(directory + names[0])
        with pytest.raises(PathNotFound):
            await driver.get_content(directory + names[0])
        for name in names[1:]:
            await driver.get_content(directory + name)
        await driver.delete(directory)
        for name in names:
            with pytest.raises(PathNotFound):
                await driver.get_content(directory + name)

    async def test_delete_only_deletes_subpaths(self, driver: StorageDriver) -> None:
        directory, name = random_path(), random_path()
        paths = [
            directory + name,
            directory + name + "suffix",
            directory + directory + name,
            directory + directory + "suffix" + name,
        ]
        for path in paths:
            await driver.put_content(path, random_bytes(32))
        await driver.delete(paths[0])
        with pytest.raises(PathNotFound):
            await driver.get_content(paths[0])
        await driver.get_content(paths[1])
        await driver.delete(directory + directory)
        with pytest.raises(PathNotFound):
            await driver.get_content(paths[2])
        await driver.get_content(paths[3])

    async def test_delete_prefix_of_a_sibling(self, driver: StorageDriver) -> None:
        await driver.put_content("/a/b", b"b")
        await driver.put_content("/a/bc", b"bc")
        await driver.put_content("/a/b.d/e", b"e")
        await driver.delete("/a/b")
        assert await driver.get_content("/a/bc") == b"bc"
        assert await driver.get_content("/a/b.d/e") == b"e"

    async def test_delete_file_named_as_its_folder(self, driver: StorageDriver) -> None:
        path = random_path(8) + "/Maryna/Maryna"
        await driver.put_content(path, random_bytes(32))
        await driver.delete(path)
        with pytest.raises(PathNotFound):
            await driver.get_content(path)

    # -- stat and the rest ------------------------------------------------------------------

    async def test_stat(self, driver: StorageDriver) -> None:
        directory, name = random_path(), random_name(32)
        path = f"{directory}/{name}"
        for missing in (directory, path):
            with pytest.raises(PathNotFound) as exc:
                await driver.stat(missing)
            assert_error(exc, driver, missing)
        await driver.put_content(path, random_bytes(4096))
        info = await driver.stat(path)
        assert (info.path, info.size, info.is_dir) == (path, 4096, False)
        assert info.modified is not None
        assert info.modified.utcoffset() is not None
        await asyncio.sleep(self.mtime_resolution)
        await driver.put_content(path, random_bytes(100))
        changed = await driver.stat(path)
        assert changed.size == 100
        assert changed.modified is not None
        assert changed.modified > info.modified
        info = await driver.stat(directory)
        assert (info.path, info.size, info.is_dir) == (directory, 0, True)

    async def test_redirect_url(self, driver: StorageDriver) -> None:
        path = random_path()
        await driver.put_content(path, random_bytes(32))
        url = await driver.redirect_url(path)
        assert url is None or url.startswith(("http://", "https://"))


async def _tree_beside_a_file(driver: StorageDriver, root: str, outside: str) -> dict[str, int]:
    """Files of sizes 1-6 below ``root`` (names that sort ``b/...`` before ``bc``) and one
    file ``outside`` it; their paths and sizes, in walk order."""
    relative = ["a", "b/c", "b/d/e", "b/d/f", "bc", "z/y"]
    files = {f"{root}/{name}": size for size, name in enumerate(relative, start=1)}
    for path, size in files.items():
        await driver.put_content(path, random_bytes(size))
    await driver.put_content(outside, b"outside")
    return files
