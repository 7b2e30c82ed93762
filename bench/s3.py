"""Item 7: blob push, pull and skopeo copy on S3 storage, OpenStack Swift with s3api.

One Swift server (tests/support/s3servers.py: proxy, account, container and object servers,
SigV4 checked) in the run's temporary directory; each registry gets a bucket of its own on it
and runs beside the filesystem pair. Redirects are off for both, so the registries stream blob
bytes themselves. Fewer bytes per sample than on the filesystem (one push per sample, two
blobs per pull sample): Swift here moves about 200 MB/s.

The chunked push is also set against the store's own floor for the same sequence of chunks:
in each round, right after the registry's chunked push, boto3 alone uploads a blob of the
same size in the same chunks as the parts of one multipart upload, one after the other as
the PATCHes come, completes it, and copies it to another key, as any registry in
Distribution's layout must once the digest is known (an upload's data lives under its
session until then). Both registries' pushes are divided by that (the target is wharf's);
the bytes alone, without the copy, are reported beside it.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING

from bench.base import Environment, Item, Unavailable
from bench.memory import children, command_line
from bench.registries import REFERENCE, WHARF, S3Store, Target, start_reference, start_wharf
from bench.report import Metric
from bench.report import Target as Goal
from bench.transfer import Pull, Push, SkopeoCopy

if TYPE_CHECKING:
    from tests.support.s3servers import S3Server

    from bench.blobs import BlobSource

__all__ = ["S3Storage"]

_PREFIX = "s3_"
_SCOPE = "S3: "


class S3Storage(Item):
    name = "s3"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        s = self.settings
        self.parts: list[Item] = [
            # The chunked push's target is the store's floor (its own row), not docker-registry.
            Push(env, prefix=_PREFIX, scope=_SCOPE, goal=3, pushes=1, chunked_goal=False),
            Pull(env, prefix=_PREFIX, scope=_SCOPE, goal=1, pull_bytes=2 * s.blob_bytes),
            SkopeoCopy(env, prefix=_PREFIX, scope=_SCOPE, goal=None),
        ]
        self._stack = contextlib.ExitStack()
        self._server: S3Server | None = None
        self._targets: dict[str, Target] = {}

    def metrics(self) -> list[Metric]:
        floor = [
            Metric(
                f"{_PREFIX}push_chunked_bytes_floor",
                f"{_SCOPE}The same chunks as one multipart upload, boto3 alone",
                "MB/s",
            ),
            Metric(
                f"{_PREFIX}push_chunked_floor",
                f"{_SCOPE}The same, completed and copied to the blob's key (the store's floor)",
                "MB/s",
            ),
            Metric(
                f"{_PREFIX}push_chunked_of_floor",
                f"{_SCOPE}Chunked push / the store's floor, same round",
                "x",
                Goal(wharf_min=0.9),
                digits=2,
            ),
        ]
        return [metric for part in self.parts for metric in part.metrics()] + floor

    def unavailable(self) -> str | None:
        try:
            import boto3  # noqa: F401
            import swift  # type: ignore[import-untyped]  # noqa: F401
            from tests.support import s3servers  # noqa: F401
        except ImportError as error:
            return f"cannot start Swift with s3api: {error} (bench/run installs swift)"
        return None

    def _start_server(self) -> S3Server:
        if self._server is None:
            from tests.support.s3servers import start_swift

            directory = self.env.workdir / "swift"
            directory.mkdir()
            try:
                workers = self.settings.swift_worker_count
                self._server = self._stack.enter_context(start_swift(directory, workers))
            except BaseException as error:  # pytest.skip raises a BaseException
                if type(error).__name__ == "Skipped":
                    raise Unavailable(f"Swift cannot start here: {error}") from None
                raise
        return self._server

    def setup(self, target: Target) -> None:
        server = self._start_server()
        store = S3Store(server, server.create_bucket())
        if target.name == WHARF:
            s3_target = start_wharf(store, self.settings.workers)
        elif target.name == REFERENCE:
            s3_target = start_reference(store)
        else:
            raise ValueError(target.name)
        self._stack.callback(s3_target.stop)
        self._targets[target.name] = s3_target
        for part in self.parts:
            part.setup(s3_target)

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        s3_target = self._targets[target.name]
        out: dict[str, float] = {}
        for part in self.parts:
            out.update(part.measure(s3_target, round_number))
        s = self.settings
        server = self._start_server()
        bytes_only, floor = multipart_rates(server, self.env.source, s.blob_bytes, s.chunk_bytes)
        out[f"{_PREFIX}push_chunked_bytes_floor"] = bytes_only
        out[f"{_PREFIX}push_chunked_floor"] = floor
        out[f"{_PREFIX}push_chunked_of_floor"] = out[f"{_PREFIX}push_chunked"] / floor
        return out

    def pids(self, target: Target) -> list[int]:
        # Swift's daemons are children of this process, and their workers theirs: the
        # registry's own load, not the machine's.
        daemons = [pid for pid in children(os.getpid()) if b"from swift." in command_line(pid)]
        swift = [*daemons, *(worker for daemon in daemons for worker in children(daemon))]
        return sorted({*self._targets[target.name].all_pids(), *swift})

    def close(self) -> None:
        self._stack.close()


S3_MIN_PART_BYTES = 5 * 1024 * 1024


def multipart_rates(
    server: S3Server, source: BlobSource, size: int, chunk: int
) -> tuple[float, float]:
    """MB/s of boto3 alone uploading ``size`` new bytes in ``chunk``-byte parts of one
    multipart upload, one part after the other, then completing it; and MB/s of that plus a
    copy of the object to another key. Both removed afterwards. Parts are never smaller than
    S3's minimum part size, which the store refuses (and which wharf buffers up to too)."""
    chunk = max(chunk, S3_MIN_PART_BYTES)
    client = server.client()
    bucket = server.create_bucket()
    key, blob = "upload/data", "blob/data"
    view, _ = source.next(size)
    bodies = [bytes(view[offset : offset + chunk]) for offset in range(0, size, chunk)]
    os.sync()
    started = time.perf_counter()
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, body in enumerate(bodies, start=1):
        answer = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    stored = time.perf_counter() - started
    client.copy_object(Bucket=bucket, Key=blob, CopySource={"Bucket": bucket, "Key": key})
    moved = time.perf_counter() - started
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}, {"Key": blob}]})
    client.delete_bucket(Bucket=bucket)
    return size / stored / 1e6, size / moved / 1e6
