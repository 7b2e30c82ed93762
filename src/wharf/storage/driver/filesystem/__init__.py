"""The ``filesystem`` storage driver: a local directory, byte-compatible with Distribution's.

Driver path ``/a/b`` is the file ``<rootdirectory>/a/b``; directories are real directories,
made on demand (mode 0777 and files 0666, less the umask, as Distribution does) and left
behind when emptied, as Distribution leaves them. An empty directory therefore lists as ``[]``
here where drivers with implicit directories raise PathNotFound; callers treat both alike.

Every blocking call runs in a thread pool owned by the driver (``maxthreads`` threads, shut
down by ``close``), so the event loop never waits on the disk.

Crash safety:

- ``put_content`` writes ``<name>#<random>.tmp`` in the target's directory, fsyncs it and
  renames it over the target, so a reader or a killed process sees the old or the new
  content, never a part. ``#`` is outside the path grammar, so a temporary name can never be
  a driver path; ``list`` and ``walk`` skip every name outside the grammar (leftover
  temporaries, ``lost+found``, ...).
- ``delete`` of a directory first renames it to ``<name>#deleting.<random>``, so the whole
  tree disappears at once and a killed process leaves no part of it visible.
- ``purge_uncommitted`` (run by upload purging) removes the temporaries and half-deleted
  directories that killed processes left, once older than the purge age.
- ``writer`` appends to the target file itself (``O_APPEND``), as Distribution does, so an
  interrupted upload can be resumed by another process; ``commit`` fsyncs it.
- Large writes from page-aligned buffers at block-aligned offsets (the upload pipeline's
  batches) go to the disk with ``O_DIRECT`` (``directwrites``, on by default). ``commit``
  fsyncs anyway, so the disk has to take those bytes before the client hears of success;
  going direct skips the copy into the page cache, which is the largest cost of a push
  (measured on a 2-core VM: 0.1 CPU s/GB direct, 0.3-2.8 through the page cache), and keeps
  a burst of uploads from evicting what is being pulled. The price is that the first pull of
  a blob just pushed reads it from the disk. Everything else, and every file system without
  direct I/O, goes through the page cache, with writeback started batch by batch.

Modules: ``files`` (blocking helpers shared by the others), ``reader``, ``writer`` and
``driver`` (the StorageDriver).
"""

from wharf.storage.driver.filesystem.driver import (
    DEFAULT_MAX_THREADS,
    DEFAULT_ROOT_DIRECTORY,
    FilesystemDriver,
)

__all__ = ["DEFAULT_MAX_THREADS", "DEFAULT_ROOT_DIRECTORY", "FilesystemDriver"]
