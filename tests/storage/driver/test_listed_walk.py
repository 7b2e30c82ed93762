from __future__ import annotations

from collections.abc import AsyncIterator

from wharf.storage.driver import FileInfo
from wharf.storage.driver.listed_walk import walk_listed


async def _pages(*pages: list[str]) -> AsyncIterator[list[FileInfo]]:
    for page in pages:
        yield [FileInfo(path, len(path), None, False) for path in page]


async def test_each_directory_once_before_its_first_file_across_pages() -> None:
    pages = _pages(["/r/a/b/1", "/r/a/b/2"], ["/r/a/b/3", "/r/a/c"], ["/r/d/e/f"])
    walked = [(info.path, info.is_dir) async for info in walk_listed("/r", pages)]
    assert walked == [
        ("/r/a", True),
        ("/r/a/b", True),
        ("/r/a/b/1", False),
        ("/r/a/b/2", False),
        ("/r/a/b/3", False),
        ("/r/a/c", False),
        ("/r/d", True),
        ("/r/d/e", True),
        ("/r/d/e/f", False),
    ]


async def test_from_the_root_and_files_as_listed() -> None:
    walked = [info async for info in walk_listed("/", _pages(["/x", "/y/z"]))]
    assert [(i.path, i.is_dir, i.size) for i in walked] == [
        ("/x", False, 2),
        ("/y", True, 0),
        ("/y/z", False, 4),
    ]
