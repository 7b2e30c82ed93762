"""How files and directories appear and disappear, so that a killed process never leaves a
part of a tree visible: blocking calls for the driver's thread pool.

A directory is listed as soon as it exists, and a tag, a layer link or a repository is known
by its directory: one that exists without its file would be listed and then not resolve. So:

- A file whose directory is missing is written into the missing directories made under a
  hidden name beside the highest of them (``<name>#mk.<random>``), which one rename then puts
  in place, file and all. When another process made the directory meanwhile, the file joins
  theirs instead.
- A directory is deleted by renaming it to ``<name>#deleting.<random>`` first.
- A file is replaced by renaming ``<name>#<random>.tmp`` over it.

``#`` is outside the driver path grammar, so listings never show these names; ``leftovers``
removes the ones a killed process left, once they are old, and lock files (``lease``) of
files that are gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat as stat_module

from wharf.storage.driver.filesystem.files import (
    MISSING,
    Buffer,
    nbytes,
    sync_data,
    write_all,
)
from wharf.storage.driver.filesystem.lease import LOCK_MARK, lock_descriptor

__all__ = ["delete", "leftovers", "move", "put"]

_TEMPORARY = ".tmp"
_MAKING = "#mk."
_DELETING = "#deleting."
# Every hidden name keeps under NAME_MAX (255) whatever the name it is made from.
_KEEP = 200


def _hidden(full: str, mark: str) -> str:
    directory, name = os.path.split(full)
    return os.path.join(directory, f"{name[:_KEEP]}{mark}{secrets.token_hex(8)}")


def _staged(directory: str, root: str) -> tuple[str, str, str] | None:
    """When ``directory`` is missing: make it, with the missing ones above it, under a hidden
    name beside the highest missing one below ``root``; (the staged directory, the hidden
    top, the real top). None when it exists."""
    if os.path.isdir(directory):
        return None
    os.makedirs(root, exist_ok=True)  # a new registry's root is made as it is
    if os.path.isdir(directory):
        return None
    top = directory
    while (parent := os.path.dirname(top)) != top and not os.path.isdir(parent):
        top = parent
    staging = _hidden(top, _MAKING)
    inside = staging + directory[len(top) :]
    os.makedirs(inside)
    return inside, staging, top


def _publish(staging: str, top: str, placed: str, target: str) -> None:
    """Rename the staged tree into place; when another made ``top`` meanwhile, move the one
    file ``placed`` (staged for ``target``) into their tree instead."""
    try:
        os.rename(staging, top)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(placed, target)
    shutil.rmtree(staging, ignore_errors=True)


def put(full: str, content: Buffer, root: str) -> None:
    """Replace the file ``full`` with ``content`` atomically: the old or the new, durable."""
    directory, name = os.path.split(full)
    staged = _staged(directory, root)
    where = directory if staged is None else staged[0]
    temporary = os.path.join(where, f"{name[:_KEEP]}#{secrets.token_hex(8)}{_TEMPORARY}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            if nbytes(content):
                write_all(fd, (content,))
            sync_data(fd)
        finally:
            os.close(fd)
        if staged is None:
            os.replace(temporary, full)
            return
        placed = os.path.join(where, name)
        os.replace(temporary, placed)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if staged is not None:
            shutil.rmtree(staged[1], ignore_errors=True)
        raise
    _publish(staged[1], staged[2], placed, full)


def move(source: str, destination: str, root: str) -> None:
    try:
        os.replace(source, destination)
        return
    except MISSING:
        if not os.path.lexists(source):
            raise
    staged = _staged(os.path.dirname(destination), root)
    if staged is None:  # made meanwhile
        os.replace(source, destination)
        return
    placed = os.path.join(staged[0], os.path.basename(destination))
    try:
        os.replace(source, placed)
    except BaseException:
        shutil.rmtree(staged[1], ignore_errors=True)
        raise
    _publish(staged[1], staged[2], placed, destination)


def delete(full: str) -> None:
    if not stat_module.S_ISDIR(os.lstat(full).st_mode):
        os.unlink(full)
        return
    doomed = _hidden(full, _DELETING)
    os.rename(full, doomed)
    # A concurrent delete may remove part of the tree under rmtree; finish what is left.
    for _ in range(3):
        try:
            shutil.rmtree(doomed)
            return
        except FileNotFoundError:
            if not os.path.lexists(doomed):
                return
    shutil.rmtree(doomed)


def _left_over(name: str, is_dir: bool) -> bool:
    if is_dir:
        return _DELETING in name or _MAKING in name
    return "#" in name and name.endswith(_TEMPORARY)


def _stale_lock(full: str) -> bool:
    """A lock file whose file is gone and that nobody holds (taken, then let go, to see)."""
    target = full.removesuffix(LOCK_MARK)
    if os.path.lexists(target):
        return False
    fd = os.open(full, os.O_RDWR | os.O_CLOEXEC)
    try:
        return lock_descriptor(fd)
    finally:
        os.close(fd)


def leftovers(root: str, before: float, dry_run: bool) -> list[str]:
    """Remove what killed processes left (temporaries, staged and half-deleted directories)
    older than ``before``; their paths below ``root``."""
    found: list[str] = []
    for directory, subdirectories, files in os.walk(root):
        names = [(n, True) for n in subdirectories if _left_over(n, True)]
        names += [(n, False) for n in files if _left_over(n, False)]
        names += [
            (n, False)
            for n in files
            if n.endswith(LOCK_MARK) and _stale_lock(os.path.join(directory, n))
        ]
        for name, is_dir in names:
            full = os.path.join(directory, name)
            try:
                if os.lstat(full).st_mtime >= before:
                    continue
                if not dry_run:
                    if is_dir:
                        shutil.rmtree(full)
                    else:
                        os.unlink(full)
            except FileNotFoundError:
                continue
            found.append("/" + os.path.relpath(full, root))
        subdirectories[:] = [n for n in subdirectories if not _left_over(n, True)]
    return sorted(found)
