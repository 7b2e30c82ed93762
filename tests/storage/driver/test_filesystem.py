"""The filesystem driver: the contract, Distribution's layout, and crash safety."""

from __future__ import annotations

import asyncio
import mmap
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.storage.driver.contract import DriverContract, random_bytes
from wharf.config.model import StorageConfig
from wharf.storage.driver import DriverError, PathNotFound, StorageDriver
from wharf.storage.driver.factory import create_driver
from wharf.storage.driver.filesystem import FilesystemDriver

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[StorageDriver]:
    driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(tmp_path / "r")}))
    yield driver
    await driver.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "r"


class TestFilesystemContract(DriverContract):
    listing_versions = True


def _file_names(root: Path) -> list[str]:
    return sorted(name for _, _, names in os.walk(root) for name in names)


async def test_layout_matches_distribution(driver: StorageDriver, root: Path) -> None:
    path = "/docker/registry/v2/repositories/library/alpine/_manifests/tags/3/current/link"
    await driver.put_content(path, b"sha256:abc")
    assert (root / path.lstrip("/")).read_bytes() == b"sha256:abc"
    writer = await driver.writer("/docker/registry/v2/blobs/sha256/ab/abc/data")
    await writer.write(b"blob")
    await writer.commit()
    assert (root / "docker/registry/v2/blobs/sha256/ab/abc/data").read_bytes() == b"blob"
    assert _file_names(root) == ["data", "link"]


async def test_reads_files_written_by_others(driver: StorageDriver, root: Path) -> None:
    (root / "docker/registry").mkdir(parents=True)
    (root / "docker/registry/x").write_bytes(b"from distribution")
    assert await driver.get_content("/docker/registry/x") == b"from distribution"
    assert await driver.list("/docker") == ["/docker/registry"]
    info = await driver.stat("/docker/registry/x")
    assert (info.size, info.is_dir) == (17, False)


async def test_unlisted_names_stay_hidden(driver: StorageDriver, root: Path) -> None:
    await driver.put_content("/a/b", b"x")
    (root / "a/b#0123456789abcdef.tmp").write_bytes(b"left by a crash")
    (root / "lost+found").mkdir()
    assert await driver.list("/") == ["/a"]
    assert await driver.list("/a") == ["/a/b"]
    assert [info.path async for info in driver.walk("/")] == ["/a", "/a/b"]


async def test_list_page_of_a_large_directory_sees_other_writers(
    driver: StorageDriver, root: Path
) -> None:
    tags = root / "repo/tags"
    tags.mkdir(parents=True)
    for number in range(1200):
        (tags / f"t{number:04d}").mkdir()
    settled = time.time() - 60
    os.utime(tags, (settled, settled))  # written a while ago: its sorted listing is kept
    first = await driver.list_page("/repo/tags", None, 3)
    assert first == (["/repo/tags/t0000", "/repo/tags/t0001", "/repo/tags/t0002"], True)
    assert await driver.list_page("/repo/tags", "t1198", 5) == (["/repo/tags/t1199"], False)
    # Another writer (Distribution) adds and removes entries: the next page shows it.
    (tags / "t1199a").mkdir()
    (tags / "t0001").rmdir()
    assert await driver.list_page("/repo/tags", "t1198", 5) == (
        ["/repo/tags/t1199", "/repo/tags/t1199a"],
        False,
    )
    assert (await driver.list_page("/repo/tags", None, 2))[0] == [
        "/repo/tags/t0000",
        "/repo/tags/t0002",
    ]


async def test_a_large_directory_just_changed_is_paged_without_being_kept(
    driver: StorageDriver, root: Path
) -> None:
    """Right after a change (a tag pushed) its pages are picked from the unsorted names, not
    sorted and kept: the next change would make the sort moot. Once settled it is kept."""
    tags = root / "repo/tags"
    tags.mkdir(parents=True)
    names = [f"t{number:04d}" for number in random.sample(range(3000), 1500)]
    for name in names:
        (tags / name).mkdir()
    (tags / "t0000.tmp#1").mkdir()  # another writer's temporary name: not a tag
    expected = sorted(names)
    kept = driver.inner._listings  # type: ignore[attr-defined]
    pages, after, more = [], None, True
    while more:
        page, more = await driver.list_page("/repo/tags", after, 400)
        pages.append([path.rpartition("/")[2] for path in page])
        after = pages[-1][-1]
    assert pages == [expected[start : start + 400] for start in range(0, 1500, 400)]
    assert await driver.list_page("/repo/tags", expected[-1], 400) == ([], False)
    assert not kept
    settled = time.time() - 60
    os.utime(tags, (settled, settled))
    assert (await driver.list_page("/repo/tags", expected[9], 2))[0] == [
        f"/repo/tags/{name}" for name in expected[10:12]
    ]
    assert len(kept) == 1


async def test_a_directory_is_judged_settled_when_its_time_is_read(
    driver: StorageDriver, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory changed just before its time is read is not kept, however long reading
    its names takes: a change made meanwhile in the same clock tick would not show."""
    from wharf.storage.driver.filesystem import driver as module

    tags = root / "repo/tags"
    tags.mkdir(parents=True)
    for number in range(1200):
        (tags / f"t{number:04d}").mkdir()
    unsorted_names = module._unsorted_names

    def slowly(full: str) -> list[str]:
        time.sleep(0.2)  # longer than the settling window
        return unsorted_names(full)

    monkeypatch.setattr(module, "_unsorted_names", slowly)
    os.utime(tags)  # changed now
    assert (await driver.list_page("/repo/tags", None, 1))[0] == ["/repo/tags/t0000"]
    assert not driver.inner._listings  # type: ignore[attr-defined]


def _counted_takes(monkeypatch: pytest.MonkeyPatch, batch: int) -> list[int]:
    """Set the batch size; the sizes of the batches the driver's thread calls then read."""
    from wharf.storage.driver.filesystem import driver as module

    monkeypatch.setattr(module, "FILES_A_BATCH", batch)
    calls: list[int] = []
    take = module._take

    def counted(files: Any, count: int) -> list[Any]:
        found = take(files, count)
        calls.append(len(found))
        return found

    monkeypatch.setattr(module, "_take", counted)
    return calls


@pytest.mark.parametrize("batch", [1, 3, 4096])
async def test_walk_reads_depth_first_by_name_in_batches(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    calls = _counted_takes(monkeypatch, batch)
    files = ["/w/a/x/1", "/w/a/x/2", "/w/a/y", "/w/b/c/d/e", "/w/b/c/f", "/w/c", "/w/d/z/z/z"]
    for path in files:
        await driver.put_content(path, b"x")
    walked = [(info.path, info.is_dir) async for info in driver.walk("/w")]
    expected = sorted(
        {
            (p, p not in files)
            for f in files
            for p in ["/".join(f.split("/")[:i]) for i in range(3, f.count("/") + 2)]
        }
    )
    assert walked == expected  # depth first, by name: the sorted paths here
    # Entries a thread call, however many directories they span; one more call finds the end.
    sizes = [min(batch, len(expected) - start) for start in range(0, len(expected), batch)]
    assert calls == [*sizes, 0]
    assert [info.path async for info in driver.walk("/w/b")] == [
        "/w/b/c",
        "/w/b/c/d",
        "/w/b/c/d/e",
        "/w/b/c/f",
    ]


async def test_walk_files_reads_batches_without_a_call_per_directory(
    driver: StorageDriver, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counted_takes(monkeypatch, 3)
    files = [f"/s/r{n:02}/_layers/sha256/{m}/link" for n in range(10) for m in ("a", "b")]
    for path in files:
        await driver.put_content(path, b"x")
    (root / "s/r03/~not a driver name").write_bytes(b"")
    batches = [[info.path for info in batch] async for batch in driver.walk_files("/s")]
    assert batches == [files[start : start + 3] for start in range(0, len(files), 3)]
    assert calls == [len(batch) for batch in batches] + [0]  # the last finds the walk done
    skipped = [i.path async for b in driver.walk_files("/s", "/s/r01/_layers".__eq__) for i in b]
    assert skipped == [path for path in files if not path.startswith("/s/r01/")]


async def test_root_missing_lists_empty(tmp_path: Path) -> None:
    driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(tmp_path / "no")}))
    assert await driver.list("/") == []
    assert [info async for info in driver.walk("/")] == []
    with pytest.raises(PathNotFound):
        await driver.list("/a")
    await driver.close()


async def test_empty_directories_stay_as_in_distribution(driver: StorageDriver, root: Path) -> None:
    await driver.put_content("/a/b/c", b"x")
    await driver.delete("/a/b/c")
    assert (root / "a/b").is_dir()
    assert await driver.list("/a/b") == []


async def test_writer_appends_to_the_file_itself(driver: StorageDriver, root: Path) -> None:
    (root / "up").mkdir(parents=True)
    (root / "up/data").write_bytes(b"12345")
    writer = await driver.writer("/up/data", append=True)
    assert writer.size == 5
    await writer.write(b"6" * (2 << 20))  # large: written through at once
    assert (root / "up/data").stat().st_size == 5 + (2 << 20)
    await writer.write(b"7")  # small: gathered until close
    await writer.close()
    assert (root / "up/data").read_bytes() == b"12345" + b"6" * (2 << 20) + b"7"
    writer = await driver.writer("/up/data", append=True)
    await writer.cancel()
    assert not (root / "up/data").exists()


async def test_put_content_leaves_no_temporary(driver: StorageDriver, root: Path) -> None:
    for _ in range(3):
        await driver.put_content("/a/b", random_bytes(100))
    assert os.listdir(root / "a") == ["b"]


async def test_put_content_onto_a_directory_fails_cleanly(
    driver: StorageDriver, root: Path
) -> None:
    await driver.put_content("/a/b/c", b"x")
    with pytest.raises(DriverError) as exc:
        await driver.put_content("/a/b", b"y")
    assert isinstance(exc.value.__cause__, OSError)
    assert os.listdir(root / "a") == ["b"]


async def test_closed_driver_refuses_work(tmp_path: Path) -> None:
    driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(tmp_path)}))
    await driver.close()
    await driver.close()
    with pytest.raises(DriverError, match="closed"):
        await driver.get_content("/a")


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    driver = FilesystemDriver("data")
    assert driver.root == str(tmp_path / "data")
    assert driver.full_path("/a/b") == str(tmp_path / "data/a/b")
    assert driver.full_path("/") == str(tmp_path / "data")


_CRASH_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from wharf.storage.driver.filesystem import FilesystemDriver

    async def main() -> None:
        driver = FilesystemDriver(sys.argv[1])
        contents = [bytes([65 + i]) * (256 * 1024 + i) for i in range(2)]
        i = 0
        while True:
            await asyncio.gather(*(
                driver.put_content(f"/d/f{n}", contents[(i + n) % 2]) for n in range(8)
            ))
            if i == 0:
                print("ready", flush=True)
            i += 1

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_killed_during_put_content_leaves_old_or_new(tmp_path: Path) -> None:
    good = {bytes([65 + i]) * (256 * 1024 + i) for i in range(2)}
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for attempt in range(5):
        process = subprocess.Popen(
            [sys.executable, "-c", _CRASH_WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        time.sleep(0.05 + 0.07 * attempt)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        names = sorted(os.listdir(tmp_path / "d"))
        finals = [name for name in names if "#" not in name]
        assert finals == [f"f{n}" for n in range(8)]
        for name in finals:
            assert (tmp_path / "d" / name).read_bytes() in good


@pytest.mark.parametrize("cached", [True, False])
async def test_reads_in_and_out_of_page_cache(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    """Reads take the inline path for cached data and the thread pool otherwise; both read
    the same bytes."""
    from wharf.storage.driver.filesystem import reader as fs_reader

    calls: list[int] = []

    def probe(fd: int, offset: int) -> bool:
        calls.append(offset)
        return cached

    monkeypatch.setattr(fs_reader, "_cached", probe)
    content = random_bytes(3 * 1024 * 1024 + 17)
    await driver.put_content("/cache/blob", content)
    async with await driver.reader("/cache/blob", 5) as reader:
        data = b"".join([chunk async for chunk in reader.chunks(1 << 20)])
    assert data == content[5:]
    assert calls


async def test_reads_from_the_disk_keep_a_window_read_ahead(
    driver: StorageDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a read finds the disk, the kernel is asked for the next window before the reads
    reach it, window after window; data found in the page cache asks for nothing."""
    from wharf.storage.driver.filesystem import reader as fs_reader

    window = fs_reader._READ_AHEAD
    advised: list[tuple[int, int]] = []
    real_advise = fs_reader._advise_will_need

    def advise(fd: int, offset: int, length: int) -> None:
        advised.append((offset, length))
        real_advise(fd, offset, length)

    cold = True
    monkeypatch.setattr(fs_reader, "_advise_will_need", advise)
    monkeypatch.setattr(fs_reader, "_cached", lambda fd, offset: not cold)
    content = random_bytes(3 * window + 12345)
    await driver.put_content("/ahead/blob", content)
    async with await driver.reader("/ahead/blob") as reader:
        data = b"".join([chunk async for chunk in reader.chunks(1 << 20)])
    assert data == content
    starts = [offset for offset, _ in advised]
    assert starts[0] == 1 << 20  # right behind the first read, which waits for its own bytes
    assert starts == [(1 << 20) + i * window for i in range(len(starts))]
    assert all(length == window for _, length in advised)
    assert starts[-1] + window >= len(content)

    advised.clear()
    cold = False
    async with await driver.reader("/ahead/blob") as reader:
        assert b"".join([chunk async for chunk in reader.chunks(1 << 20)]) == content
    assert advised == []


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


async def test_a_reader_closed_while_reading_ahead_closes_after_the_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint's thread still uses the descriptor: closing the reader must not free it
    under the thread (a reused number would get the hint, or worse, a read)."""
    import asyncio
    import errno
    import threading

    from wharf.storage.driver.filesystem import reader as fs_reader

    release = threading.Event()
    monkeypatch.setattr(fs_reader, "_advise_will_need", lambda fd, o, n: release.wait(10))
    monkeypatch.setattr(fs_reader, "_cached", lambda fd, offset: False)
    driver = FilesystemDriver(str(tmp_path / "r"))
    await driver.put_content("/ahead/blob", random_bytes(3 << 20))
    reader = await driver.reader("/ahead/blob")
    fd = reader._fd  # type: ignore[attr-defined]
    assert len(await reader.read(1 << 20)) == 1 << 20
    await reader.close()
    os.fstat(fd)  # still open while the hint runs
    release.set()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if not _is_open(fd):
            break
    with pytest.raises(OSError, match="Bad file descriptor") as closed:
        os.fstat(fd)
    assert closed.value.errno == errno.EBADF
    await driver.close()


def test_page_cache_probe_on_a_real_file(tmp_path: Path) -> None:
    from wharf.storage.driver.filesystem.reader import _cached

    path = tmp_path / "f"
    path.write_bytes(b"x" * 8192)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _cached(fd, 100) in (True, False)  # False only without RWF_NOWAIT support
        assert _cached(fd, 10_000) is False  # past the end: nothing to read
    finally:
        os.close(fd)


async def test_written_batches_are_sent_to_the_disk_before_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's whole pages are handed to writeback as soon as they are written, so the
    fsync of ``commit`` has only the tail left; the last, partial page is not. (Buffered
    writes: a batch in an aligned buffer could otherwise go to the disk directly.)"""
    from wharf.storage.driver.filesystem import writer as fs_writer

    driver = FilesystemDriver(str(tmp_path / "r"), directwrites=False)

    real = fs_writer._sync_file_range
    if real is None:
        pytest.skip("no sync_file_range here")
    ranges: list[tuple[int, int]] = []

    def recording(fd: int, offset: int, nbytes: int, flags: int) -> int:
        ranges.append((offset, nbytes))
        return real(fd, offset, nbytes, flags)

    monkeypatch.setattr(fs_writer, "_sync_file_range", recording)
    first, second = random_bytes((1 << 20) + 100), random_bytes(2 << 20)
    writer = await driver.writer("/blob")
    await writer.write(first)
    await writer.write(second)
    await writer.commit()
    assert ranges == [(0, 1 << 20), (1 << 20, 2 << 20)]
    assert await driver.get_content("/blob") == first + second
    await driver.close()


def _aligned(data: bytes) -> memoryview:
    """``data`` in a page-aligned buffer, as the upload pipeline hands batches over."""
    buffer = mmap.mmap(-1, len(data))
    buffer[:] = data
    return memoryview(buffer)


def _direct_io_supported(directory: Path) -> bool:
    try:
        fd = os.open(directory / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
    except (OSError, AttributeError):
        return False
    os.close(fd)
    return True


@pytest.mark.parametrize("direct", [True, False])
async def test_direct_and_buffered_writes_make_the_same_file(tmp_path: Path, direct: bool) -> None:
    """Aligned batches may bypass the page cache; unaligned offsets, unaligned buffers and
    small writes take it; a resumed writer continues at an unaligned size. The bytes are the
    same whichever way each write went."""
    driver = FilesystemDriver(str(tmp_path / "r"), directwrites=direct)
    mib = 1 << 20
    pieces = [random_bytes(n) for n in (mib, mib, 1000, mib, 300_000, 2 * mib + 5)]
    writer = await driver.writer("/blob")
    await writer.write(_aligned(pieces[0]))
    await writer.write(_aligned(pieces[1]))
    await writer.write(pieces[2])  # gathered, then the file's size is unaligned
    await writer.close()
    writer = await driver.writer("/blob", append=True)
    await writer.write(_aligned(pieces[3]))  # aligned buffer at an unaligned offset
    await writer.write(pieces[4])
    await writer.write(memoryview(pieces[5])[1:])  # unaligned buffer
    await writer.commit()
    expected = b"".join(pieces[:5]) + pieces[5][1:]
    assert await driver.get_content("/blob") == expected
    await driver.close()


@pytest.mark.parametrize("direct", [True, False])
async def test_direct_writes_leave_the_page_cache_alone(tmp_path: Path, direct: bool) -> None:
    from wharf.storage.driver.filesystem.reader import _cached

    if not _direct_io_supported(tmp_path):
        pytest.skip("the file system of the temporary directory has no direct I/O")
    driver = FilesystemDriver(str(tmp_path / "r"), directwrites=direct)
    content = random_bytes(4 << 20)
    writer = await driver.writer("/blob")
    for start in range(0, len(content), 1 << 20):
        await writer.write(_aligned(content[start : start + (1 << 20)]))
    await writer.commit()
    fd = os.open(tmp_path / "r" / "blob", os.O_RDONLY)
    try:
        if not direct:
            assert _cached(fd, 0) in (True, False)  # False only without RWF_NOWAIT support
        else:
            assert _cached(fd, 0) is False
            assert _cached(fd, (4 << 20) - 4096) is False
    finally:
        os.close(fd)
    assert await driver.get_content("/blob") == content
    await driver.close()


_CRASH_DELETER = textwrap.dedent(
    """
    import asyncio, sys
    from wharf.storage.driver.filesystem import FilesystemDriver

    async def main() -> None:
        driver = FilesystemDriver(sys.argv[1])
        i = 0
        while True:
            for n in range(20):
                await driver.put_content(f"/t/tag{i}-{n}/current/link", b"sha256:x")
                await driver.put_content(f"/t/tag{i}-{n}/index/sha256/x/link", b"sha256:x")
            if i == 0:
                print("ready", flush=True)
            await asyncio.gather(*(driver.delete(f"/t/tag{i}-{n}") for n in range(20)))
            i += 1

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_killed_during_delete_leaves_whole_trees_or_nothing(tmp_path: Path) -> None:
    """Every directory listed still holds its link, whenever the deleting process died; what
    it left half deleted is hidden, and purged once old."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for attempt in range(5):
        process = subprocess.Popen(
            [sys.executable, "-c", _CRASH_DELETER, str(tmp_path)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        time.sleep(0.05 + 0.05 * attempt)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        asyncio.run(_assert_listed_tags_resolve(tmp_path))
    asyncio.run(_assert_leftovers_purged(tmp_path))


async def _assert_listed_tags_resolve(root: Path) -> None:
    driver = FilesystemDriver(str(root))
    try:
        for tag in await driver.list("/t"):
            assert await driver.get_content(f"{tag}/current/link") == b"sha256:x"
    finally:
        await driver.close()


async def _assert_leftovers_purged(root: Path) -> None:
    driver = FilesystemDriver(str(root))
    try:
        leftovers = await driver.purge_uncommitted(datetime.now(UTC) + timedelta(minutes=1))
    finally:
        await driver.close()
    assert all("#" in path for path in leftovers)
    hidden = [n for _, dirs, files in os.walk(root) for n in dirs + files if "#" in n]
    assert hidden == []


async def test_purge_keeps_young_leftovers(driver: StorageDriver, root: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "a" / "link#0123.tmp").write_bytes(b"half")
    (root / "a" / "b#deleting.0123").mkdir()
    (root / "a" / "gone#lock").write_bytes(b"")  # a lock file whose file is gone
    (root / "a" / "kept").write_bytes(b"")
    (root / "a" / "kept#lock").write_bytes(b"")
    past = datetime.now(UTC) - timedelta(minutes=1)
    assert await driver.purge_uncommitted(past) == []
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert await driver.purge_uncommitted(future, dry_run=True) == [
        "/a/b#deleting.0123",
        "/a/gone#lock",
        "/a/link#0123.tmp",
    ]
    assert (root / "a" / "link#0123.tmp").exists()
    await driver.purge_uncommitted(future)
    assert sorted(os.listdir(root / "a")) == ["kept", "kept#lock"]
