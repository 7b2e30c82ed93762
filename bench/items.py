"""The measurements, one class per item of issue 6, and their order in a round.

Items 1, 5 and 6 are here; 2, 3 and 4 (blob transfers, skopeo) are in ``bench.transfer``, 7
(S3 storage) in ``bench.s3``.
"""

from __future__ import annotations

from bench.base import Item, push_small_image, size_label
from bench.client import MANIFEST_ACCEPT, BenchError
from bench.cpu import ServerCpu
from bench.loadgen import run_hload, run_wrk
from bench.memory import RssSampler
from bench.mirror import MirrorPull
from bench.registries import Target
from bench.report import Metric
from bench.report import Target as Goal
from bench.s3 import S3Storage
from bench.settings import MIB
from bench.storage import TAGS_REPOSITORY
from bench.transfer import Pull, Push, SkopeoCopy

__all__ = ["ITEMS", "Listings", "Manifests", "UploadMemory"]


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
        size, chunk = size_label(self.settings.rss_bytes), size_label(self.settings.chunk_bytes)
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
                target.store.remove_blob(digest)
                out[f"rss_{key}_before"] = max(sampler.peaks.baseline_per_process.values()) / MIB
                out[f"rss_{key}_max"] = sampler.peaks.max_per_worker / MIB
                out[f"rss_{key}_sum"] = sampler.peaks.sum_of_workers / MIB
        return out


ITEMS: tuple[type[Item], ...] = (
    Manifests,
    Push,
    Pull,
    SkopeoCopy,
    Listings,
    UploadMemory,
    S3Storage,
    MirrorPull,
)
