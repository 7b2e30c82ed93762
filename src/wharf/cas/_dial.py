"""Open a repository from a URL, as reflow's ``Dial``."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from wharf.cas._repository import Repository
from wharf.config.model import StorageConfig
from wharf.storage.driver import StorageDriver
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.factory import create_driver
from wharf.storage.driver.filesystem import FilesystemDriver
from wharf.storage.driver.inmemory import InMemoryDriver

__all__ = ["dial"]

#: The parameter naming the bucket or container in each driver's configuration.
_CONTAINER = {"s3": "bucket", "azure": "container", "swift": "container", "gcs": "bucket"}
_MiB = 1 << 20
_named_memory: dict[str, StorageDriver] = {}
_memory_lock = threading.Lock()


def dial(url: str, *, layout: str | None = None, **parameters: Any) -> Repository:
    """The repository at ``url``:

    - ``file:///srv/objects``: a directory;
    - ``mem://`` (a new store) or ``mem://name`` (one store per name in this process);
    - ``s3://bucket/prefix``, ``azure://container/prefix`` and the other drivers wharf has
      (``<driver>://<bucket or container>/<prefix>``), with the driver's parameters from
      the query string or ``parameters`` (``s3://b/p?region=eu-west-1&regionendpoint=...``).

    ``layout`` (or ``?layout=``): ``objects`` (reflow's, the default) or ``registry`` (a
    registry's blob store, so that a registry may share the bucket). ValueError for anything
    unknown.
    """
    parts = urllib.parse.urlsplit(url)
    query: dict[str, Any] = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    chosen = layout or query.pop("layout", None) or "objects"
    query.update(parameters)
    driver = _driver(parts, query)
    return Repository(driver, layout=chosen, url=_public(parts))


def _public(parts: urllib.parse.SplitResult) -> str:
    """The URL without its query, which may hold credentials."""
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _driver(parts: urllib.parse.SplitResult, query: Mapping[str, Any]) -> StorageDriver:
    scheme = parts.scheme.lower()
    if scheme == "mem":
        _no_parameters(scheme, query)
        name = parts.netloc + parts.path
        if not name:
            return CheckedDriver(InMemoryDriver())
        with _memory_lock:
            return _named_memory.setdefault(name, CheckedDriver(InMemoryDriver()))
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(
                f"file URLs name a local directory: file:///path, not {parts.geturl()}"
            )
        allowed = {"maxthreads"}
        _no_parameters(scheme, {k: v for k, v in query.items() if k not in allowed})
        threads = int(query.get("maxthreads", 16))
        return CheckedDriver(FilesystemDriver(urllib.parse.unquote(parts.path), maxthreads=threads))
    container = _CONTAINER.get(scheme)
    if container is None:
        known = ", ".join(sorted({"file", "mem", *_CONTAINER}))
        raise ValueError(f"unknown repository URL scheme {scheme!r} (known: {known})")
    if not parts.netloc:
        raise ValueError(f"{scheme} URLs name a {container}: {scheme}://{container}/prefix")
    parameters = {container: parts.netloc, **query}
    prefix = parts.path.strip("/")
    if prefix:
        parameters.setdefault("rootdirectory", "/" + prefix)
    if scheme == "s3":
        return _s3(parameters)
    return create_driver(StorageConfig(scheme, parameters))


def _s3(parameters: Mapping[str, Any]) -> StorageDriver:
    from wharf.storage.driver.s3.driver import S3Driver
    from wharf.storage.driver.s3.params import parse_parameters

    # Smaller parts and read-ahead than a registry's: get_file reads several ranges at once,
    # each through its own reader, put_file sends several parts at once, and memory is to
    # stay bounded by a few parts of each.
    parameters = {"chunksize": 5 * _MiB, **parameters}
    driver = S3Driver(
        parse_parameters(parameters), read_chunk=4 * _MiB, read_ahead=1, read_budget=32 * _MiB
    )
    return CheckedDriver(driver)


def _no_parameters(scheme: str, query: Mapping[str, Any]) -> None:
    if query:
        raise ValueError(f"unknown parameter {next(iter(query))!r} for {scheme} repositories")
