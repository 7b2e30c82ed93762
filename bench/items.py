"""The measurements, one class per item of issue 6.

Each item prepares what it needs on a registry once (``setup``), then ``measure`` takes one
sample per round and returns its metrics by key. The harness calls them interleaved: for every
round and item, wharf then docker-registry.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.clients import Skopeo
from tests.support.images import BuiltImage

from bench.blobs import BlobSource, pull_rate, push_rate
from bench.client import MANIFEST_ACCEPT, BenchError, Client
from bench.cpu import ServerCpu
from bench.layout import SmallImage, remove_blob_data
from bench.loadgen import run_hload, run_wrk
from bench.memory import RssSampler
from bench.registries import Target
from bench.report import Metric
from bench.report import Target as Goal
from bench.settings import MIB, Settings
from bench.storage import TAGS_REPOSITORY

__all__ = ["ITEMS", "Environment", "Item"]


@dataclass
class Environment:
    """What every item shares during one run."""

    settings: Settings
    workdir: Path
    hload: Path
    small: SmallImage
    source: BlobSource
    image: BuiltImage | None = None
    #: Per registry name: the digest of the blob the pull item reads.
    pull_digests: dict[str, str] = field(default_factory=dict)

    def client(self, target: Target) -> Client:
        return Client(target.url)


class Item:
    name = ""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.settings = env.settings

    def metrics(self) -> list[Metric]:
        raise NotImplementedError

    def setup(self, target: Target) -> None:
        """Prepare ``target`` once, before the first round."""

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        raise NotImplementedError


_PER_GB = "server CPU s/GB"


def _size(size: int) -> str:
    if size >= 1 << 30 and size % (1 << 30) == 0:
        return f"{size >> 30} GiB"
    if size >= MIB:
        return f"{size / MIB:g} MiB"
    return f"{size / 1024:g} KiB"


def push_small_image(client: Client, repository: str, image: SmallImage, tag: str) -> None:
    for digest, data in image.blobs.items():
        client.push_monolithic(repository, memoryview(data), digest)
    answered = client.put_manifest(repository, tag, image.manifest, image.media_type)
    if answered != image.digest:
        raise BenchError(f"manifest stored as {answered}, expected {image.digest}")


class Manifests(Item):
    """Item 1: manifest GET by tag (wrk) and HEAD by digest (hload), requests/s and p99."""

    name = "manifest"
    repository = "bench/manifest"

    def metrics(self) -> list[Metric]:
        c = self.settings.connections
        return [
            Metric(
                "manifest_get_rps",
                f"Manifest GET by tag, {c} connections",
                "req/s",
                Goal(ratio_min=10),
            ),
            Metric("manifest_get_p99", "Manifest GET by tag, p99 latency", "ms", digits=1),
            Metric(
                "manifest_head_rps",
                f"Manifest HEAD by digest, {c} connections",
                "req/s",
                Goal(ratio_min=10),
            ),
            Metric("manifest_head_p99", "Manifest HEAD by digest, p99 latency", "ms", digits=1),
            Metric("manifest_get_cpu", "Manifest GET by tag", "server CPU µs/request", group="cpu"),
            Metric(
                "manifest_head_cpu", "Manifest HEAD by digest", "server CPU µs/request", group="cpu"
            ),
        ]

    def setup(self, target: Target) -> None:
        with self.env.client(target) as client:
            push_small_image(client, self.repository, self.env.small, "latest")
            reply = client.request(
                "GET",
                f"/v2/{self.repository}/manifests/latest",
                headers={"Accept": MANIFEST_ACCEPT},
            )
            if reply.body != self.env.small.manifest:
                raise BenchError(f"{target.name} serves other manifest bytes")
        self._load(target, 1)  # warm up: caches, connections

    def _load(self, target: Target, seconds: int) -> dict[str, float]:
        s = self.settings
        headers = {"Accept": MANIFEST_ACCEPT}
        with ServerCpu(target.all_pids()) as get_cpu:
            get = run_wrk(
                f"{target.url}/v2/{self.repository}/manifests/latest",
                workdir=self.env.workdir,
                headers=headers,
                connections=s.connections,
                threads=s.load_threads,
                seconds=seconds,
                cpu=s.load_cpu,
            )
        with ServerCpu(target.all_pids()) as head_cpu:
            head = run_hload(
                self.env.hload,
                f"{target.url}/v2/{self.repository}/manifests/{self.env.small.digest}",
                method="HEAD",
                headers=headers,
                connections=s.connections,
                threads=s.load_threads,
                seconds=seconds,
                cpu=s.load_cpu,
            )
        for result in (get, head):
            if result.bad:
                raise BenchError(f"{target.name}: {result.bad} failed requests ({result.tool})")
        return {
            "manifest_get_rps": get.requests_per_s,
            "manifest_get_p99": get.p99_ms,
            "manifest_head_rps": head.requests_per_s,
            "manifest_head_p99": head.p99_ms,
            "manifest_get_cpu": get_cpu.seconds / max(get.requests, 1) * 1e6,
            "manifest_head_cpu": head_cpu.seconds / max(head.requests, 1) * 1e6,
        }

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        return self._load(target, self.settings.seconds)


class Push(Item):
    """Item 2: blob push, monolithic (POST + PUT with the body) and in PATCH chunks."""

    name = "push"
    repository = "bench/push"

    def metrics(self) -> list[Metric]:
        size, chunk = _size(self.settings.blob_bytes), _size(self.settings.chunk_bytes)
        return [
            Metric("push_monolithic", f"Blob push {size}, monolithic", "MB/s", Goal(ratio_min=2.5)),
            Metric(
                "push_chunked", f"Blob push {size}, {chunk} chunks", "MB/s", Goal(ratio_min=2.5)
            ),
            Metric("push_monolithic_cpu", "Blob push, monolithic", _PER_GB, digits=2, group="cpu"),
            Metric(
                "push_chunked_cpu", f"Blob push, {chunk} chunks", _PER_GB, digits=2, group="cpu"
            ),
        ]

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        s = self.settings
        out = {}
        with self.env.client(target) as client:

            def cleanup(digest: str) -> None:
                client.delete_blob(self.repository, digest)
                remove_blob_data(target.root, digest)

            for key, chunk in (("push_monolithic", None), ("push_chunked", s.chunk_bytes)):
                with ServerCpu(target.all_pids()) as cpu:
                    out[key] = push_rate(
                        client,
                        self.repository,
                        self.env.source,
                        size=s.blob_bytes,
                        chunk=chunk,
                        count=s.pushes,
                        cleanup=cleanup,
                    )
                out[f"{key}_cpu"] = cpu.seconds / (s.blob_bytes * s.pushes / 1e9)
        return out


class Pull(Item):
    """Item 3: blob pull over 1 and 4 concurrent streams."""

    name = "pull"
    repository = "bench/pull"

    def metrics(self) -> list[Metric]:
        size = _size(self.settings.blob_bytes)
        return [
            Metric("pull_1", f"Blob pull {size}, 1 stream", "MB/s", Goal(ratio_min=1.2)),
            Metric("pull_4", f"Blob pull {size}, 4 streams", "MB/s", Goal(ratio_min=1.2)),
            Metric("pull_1_cpu", "Blob pull, 1 stream", _PER_GB, digits=2, group="cpu"),
            Metric("pull_4_cpu", "Blob pull, 4 streams", _PER_GB, digits=2, group="cpu"),
        ]

    def setup(self, target: Target) -> None:
        view, digest = self.env.source.next(self.settings.blob_bytes)
        with self.env.client(target) as client:
            client.push_monolithic(self.repository, view, digest)
            if client.pull(self.repository, digest, verify=True) != len(view):
                raise BenchError(f"{target.name} serves a short blob")
        self.env.pull_digests[target.name] = digest

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        s = self.settings
        digest = self.env.pull_digests[target.name]
        out = {}
        for streams in (1, 4):
            with ServerCpu(target.all_pids()) as cpu:
                rate, pulled = pull_rate(
                    target.url,
                    self.repository,
                    digest,
                    size=s.blob_bytes,
                    streams=streams,
                    total=s.pull_bytes,
                )
            out[f"pull_{streams}"] = rate
            out[f"pull_{streams}_cpu"] = cpu.seconds / (pulled / 1e9)
        return out


class SkopeoCopy(Item):
    """Item 4: skopeo copy of a multi-layer image to the registry and back."""

    name = "skopeo"

    def metrics(self) -> list[Metric]:
        s = self.settings
        image = f"{s.image_layers}-layer {s.image_bytes / 1e6:g} MB image"
        return [
            Metric("skopeo_push", f"skopeo copy of a {image}, push", "s", digits=2),
            Metric("skopeo_pull", f"skopeo copy of a {image}, pull", "s", digits=2),
            Metric(
                "skopeo_round_trip",
                f"skopeo copy of a {image}, push + pull",
                "s",
                Goal(ratio_max=0.8),
                digits=2,
            ),
            Metric("skopeo_push_cpu", "skopeo push", "server CPU s", digits=2, group="cpu"),
            Metric("skopeo_pull_cpu", "skopeo pull", "server CPU s", digits=2, group="cpu"),
        ]

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        image = self.env.image
        if image is None:
            raise RuntimeError("the skopeo image was not built")
        work = self.env.workdir / "skopeo" / f"{target.name}-{round_number}"
        reference = f"docker://{target.host}/bench/skopeo-{round_number}:v1"
        with Skopeo(work / "push", target.server) as skopeo, ServerCpu(target.all_pids()) as push:
            started = time.perf_counter()
            skopeo.copy(image.source, reference)
            pushed = time.perf_counter() - started
        with Skopeo(work / "pull", target.server) as skopeo, ServerCpu(target.all_pids()) as pull:
            started = time.perf_counter()
            skopeo.copy(reference, f"dir:{work / 'image'}")
            pulled = time.perf_counter() - started
        shutil.rmtree(work)
        # The next round pushes the same blobs to a new repository: make them new again.
        for digest in image.blob_digests:
            remove_blob_data(target.root, digest)
        return {
            "skopeo_push": pushed,
            "skopeo_pull": pulled,
            "skopeo_round_trip": pushed + pulled,
            "skopeo_push_cpu": push.seconds,
            "skopeo_pull_cpu": pull.seconds,
        }


class Listings(Item):
    """Item 5: tags list of a repository with many tags, catalog of many repositories."""

    name = "listings"

    def metrics(self) -> list[Metric]:
        s = self.settings
        return [
            Metric(
                "tags_list_rps",
                f"Tags list of {s.tags:,} tags",
                "req/s",
                Goal(ratio_min=10),
                digits=1,
            ),
            Metric(
                "catalog_rps",
                f"Catalog, n={s.catalog_page} of {s.repositories:,} repositories",
                "req/s",
                Goal(ratio_min=10),
                digits=1,
            ),
            Metric("tags_list_cpu", "Tags list", "server CPU ms/request", digits=2, group="cpu"),
            Metric("catalog_cpu", "Catalog page", "server CPU ms/request", digits=2, group="cpu"),
        ]

    def _targets(self, target: Target) -> dict[str, str]:
        return {
            "tags_list_rps": f"/v2/{TAGS_REPOSITORY}/tags/list",
            "catalog_rps": f"/v2/_catalog?n={self.settings.catalog_page}",
        }

    def setup(self, target: Target) -> None:
        with self.env.client(target) as client:
            tags = client.get_json(self._targets(target)["tags_list_rps"])
            catalog = client.get_json(self._targets(target)["catalog_rps"])
        if not isinstance(tags, dict) or len(tags.get("tags") or []) != self.settings.tags:
            raise BenchError(f"{target.name} does not list {self.settings.tags} tags")
        page = min(self.settings.catalog_page, self.settings.repositories)
        if not isinstance(catalog, dict) or len(catalog.get("repositories") or []) < page:
            raise BenchError(f"{target.name} lists fewer than {page} repositories")

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        s = self.settings
        out = {}
        for key, path in self._targets(target).items():
            with ServerCpu(target.all_pids()) as cpu:
                result = run_wrk(
                    target.url + path,
                    workdir=self.env.workdir,
                    headers={},
                    connections=s.list_connections,
                    threads=min(s.load_threads, s.list_connections),
                    seconds=s.seconds,
                    cpu=s.load_cpu,
                    timeout_s=max(30, s.seconds * 4),
                )
            if result.bad:
                raise BenchError(f"{target.name}: {result.bad} failed listing requests")
            out[key] = result.requests_per_s
            out[key.replace("_rps", "_cpu")] = cpu.seconds / max(result.requests, 1) * 1e3
        return out


class UploadMemory(Item):
    """Item 6: peak RSS of the serving processes during one large upload."""

    name = "rss"
    repository = "bench/rss"

    def metrics(self) -> list[Metric]:
        size, chunk = _size(self.settings.rss_bytes), _size(self.settings.chunk_bytes)
        metrics = []
        for key, how in (("monolithic", "monolithic"), ("chunked", f"{chunk} chunks")):
            metrics += [
                Metric(
                    f"rss_{key}_max",
                    f"Peak RSS per worker, {size} upload, {how}",
                    "MiB",
                    Goal(wharf_max=150),
                ),
                Metric(f"rss_{key}_sum", f"Peak RSS of all workers, {size} upload, {how}", "MiB"),
                Metric(f"rss_{key}_before", f"RSS per worker before that upload, {how}", "MiB"),
            ]
        return metrics

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        s = self.settings
        out: dict[str, float] = {}
        with self.env.client(target) as client:
            for key, chunk in (("monolithic", None), ("chunked", s.chunk_bytes)):
                view, digest = self.env.source.next(s.rss_bytes)
                pids = target.serving_pids()
                with RssSampler(pids) as sampler:
                    if chunk is None:
                        client.push_monolithic(self.repository, view, digest)
                    else:
                        client.push_chunked(self.repository, view, digest, chunk)
                client.delete_blob(self.repository, digest)
                remove_blob_data(target.root, digest)
                out[f"rss_{key}_before"] = max(sampler.peaks.baseline_per_process.values()) / MIB
                out[f"rss_{key}_max"] = sampler.peaks.max_per_worker / MIB
                out[f"rss_{key}_sum"] = sampler.peaks.sum_of_workers / MIB
        return out


class S3Storage(Item):
    """Item 7: push and pull on S3 storage (OpenStack Swift with s3api), both registries.

    TODO: needs tests/support/s3servers.py (Swift s3api test server) and wharf's S3 driver,
    which are being built; until both exist the harness reports this item as skipped.
    """

    name = "s3"

    def metrics(self) -> list[Metric]:
        size, chunk = _size(self.settings.blob_bytes), _size(self.settings.chunk_bytes)
        return [
            Metric(
                "s3_push_monolithic", f"S3: blob push {size}, monolithic", "MB/s", Goal(ratio_min=3)
            ),
            Metric(
                "s3_push_chunked",
                f"S3: blob push {size}, {chunk} chunks",
                "MB/s",
                Goal(ratio_min=3),
            ),
            Metric("s3_pull_1", f"S3: blob pull {size}, 1 stream", "MB/s", Goal(ratio_min=1)),
            Metric("s3_skopeo_push", "S3: skopeo push", "s", digits=2),
            Metric("s3_skopeo_pull", "S3: skopeo pull", "s", digits=2),
        ]

    def unavailable(self) -> str | None:
        return s3_unavailable()

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        raise NotImplementedError("S3 measurements are not written yet")


def s3_unavailable() -> str | None:
    """Why item 7 cannot run here, or None once its prerequisites exist."""
    import importlib.util

    if importlib.util.find_spec("tests.support.s3servers") is None:
        return "TODO: tests/support/s3servers.py (Swift s3api server) does not exist yet"
    from wharf.storage.driver import factory

    if "s3" not in getattr(factory, "_FACTORIES", {}):
        return "TODO: wharf has no s3 storage driver yet"
    return "TODO: the S3 measurements are not written yet"


ITEMS: tuple[type[Item], ...] = (
    Manifests,
    Push,
    Pull,
    SkopeoCopy,
    Listings,
    UploadMemory,
    S3Storage,
)
