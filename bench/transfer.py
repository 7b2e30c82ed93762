"""Items 2, 3 and 4: blob push, blob pull and skopeo copy.

Each class takes a key ``prefix`` and a label ``scope`` so that item 7 runs the same
measurements on S3 storage under its own names and targets.
"""

from __future__ import annotations

import shutil
import time

from tests.support.clients import Skopeo

from bench.base import PER_GB, Environment, Item, size_label
from bench.blobs import pull_rate, push_rate
from bench.client import BenchError
from bench.cpu import ServerCpu
from bench.registries import Target
from bench.report import Metric
from bench.report import Target as Goal

__all__ = ["Pull", "Push", "SkopeoCopy"]

_CPU_S = "server CPU s"


class Push(Item):
    """Item 2: blob push, monolithic (POST + PUT with the body) and in PATCH chunks."""

    name = "push"
    repository = "bench/push"

    def __init__(
        self,
        env: Environment,
        *,
        prefix: str = "",
        scope: str = "",
        goal: float = 2.5,
        pushes: int | None = None,
        chunked_goal: bool = True,
    ) -> None:
        super().__init__(env)
        self.prefix = prefix
        self.scope = scope
        self.goal = goal
        # False where the chunked push is set against the store's own floor instead.
        self.chunked_goal = chunked_goal
        self.pushes = pushes if pushes is not None else self.settings.pushes

    def metrics(self) -> list[Metric]:
        size = size_label(self.settings.blob_bytes)
        chunk = size_label(self.settings.chunk_bytes)
        p, scope = self.prefix, self.scope
        return [
            Metric(
                f"{p}push_monolithic",
                f"{scope}Blob push {size}, monolithic",
                "MB/s",
                Goal(ratio_min=self.goal),
            ),
            Metric(
                f"{p}push_chunked",
                f"{scope}Blob push {size}, {chunk} chunks",
                "MB/s",
                Goal(ratio_min=self.goal) if self.chunked_goal else None,
            ),
            Metric(
                f"{p}push_monolithic_cpu",
                f"{scope}Blob push, monolithic",
                PER_GB,
                digits=2,
                group="cpu",
            ),
            Metric(
                f"{p}push_chunked_cpu",
                f"{scope}Blob push, {chunk} chunks",
                PER_GB,
                digits=2,
                group="cpu",
            ),
        ]

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        s = self.settings
        out = {}
        with self.env.client(target) as client:

            def cleanup(digest: str) -> None:
                client.delete_blob(self.repository, digest)
                target.store.remove_blob(digest)

            for key, chunk in (("push_monolithic", None), ("push_chunked", s.chunk_bytes)):
                with ServerCpu(target.all_pids()) as cpu:
                    rate = push_rate(
                        client,
                        self.repository,
                        self.env.source,
                        size=s.blob_bytes,
                        chunk=chunk,
                        count=self.pushes,
                        cleanup=cleanup,
                    )
                out[f"{self.prefix}{key}"] = rate
                out[f"{self.prefix}{key}_cpu"] = cpu.seconds / (s.blob_bytes * self.pushes / 1e9)
        return out


class Pull(Item):
    """Item 3: blob pull over 1 and 4 concurrent streams."""

    name = "pull"
    repository = "bench/pull"

    def __init__(
        self,
        env: Environment,
        *,
        prefix: str = "",
        scope: str = "",
        goal: float = 1.2,
        pull_bytes: int | None = None,
    ) -> None:
        super().__init__(env)
        self.prefix = prefix
        self.scope = scope
        self.goal = goal
        self.pull_bytes = pull_bytes if pull_bytes is not None else self.settings.pull_bytes

    def metrics(self) -> list[Metric]:
        size = size_label(self.settings.blob_bytes)
        p, scope = self.prefix, self.scope
        metrics = []
        for streams in (1, 4):
            plural = "s" * (streams > 1)
            metrics.append(
                Metric(
                    f"{p}pull_{streams}",
                    f"{scope}Blob pull {size}, {streams} stream{plural}",
                    "MB/s",
                    Goal(ratio_min=self.goal),
                )
            )
        for streams in (1, 4):
            plural = "s" * (streams > 1)
            metrics.append(
                Metric(
                    f"{p}pull_{streams}_cpu",
                    f"{scope}Blob pull, {streams} stream{plural}",
                    PER_GB,
                    digits=2,
                    group="cpu",
                )
            )
        return metrics

    def setup(self, target: Target) -> None:
        view, digest = self.env.source.next(self.settings.blob_bytes)
        with self.env.client(target) as client:
            client.push_monolithic(self.repository, view, digest)
            if client.pull(self.repository, digest, verify=True) != len(view):
                raise BenchError(f"{target.name} serves a short blob")
        self.env.pull_digests[f"{self.prefix}{target.name}"] = digest

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        s = self.settings
        digest = self.env.pull_digests[f"{self.prefix}{target.name}"]
        out = {}
        for streams in (1, 4):
            with ServerCpu(target.all_pids()) as cpu:
                rate, pulled = pull_rate(
                    target.url,
                    self.repository,
                    digest,
                    size=s.blob_bytes,
                    streams=streams,
                    total=self.pull_bytes,
                )
            out[f"{self.prefix}pull_{streams}"] = rate
            out[f"{self.prefix}pull_{streams}_cpu"] = cpu.seconds / (pulled / 1e9)
        return out


def forget_image(env: Environment, target: Target, repository: str) -> None:
    """Make the bench image's blobs new to ``target`` again: unlinked from ``repository``
    first (skopeo's blob cache, system-wide when it runs as root, offers every repository it
    pushed them to as a source to mount from), then gone from storage."""
    image = env.image
    if image is None:
        return
    with env.client(target) as client:
        for digest in image.blob_digests:
            client.delete_blob(repository, digest)
            target.store.remove_blob(digest)


class SkopeoCopy(Item):
    """Item 4: skopeo copy of a multi-layer image to the registry and back."""

    name = "skopeo"

    def __init__(
        self, env: Environment, *, prefix: str = "", scope: str = "", goal: float | None = 0.8
    ) -> None:
        super().__init__(env)
        self.prefix = prefix
        self.scope = scope
        self.goal = goal

    def metrics(self) -> list[Metric]:
        s = self.settings
        p, scope = self.prefix, self.scope
        image = f"{scope}skopeo copy of a {s.image_layers}-layer {s.image_bytes / 1e6:g} MB image"
        goal = Goal(ratio_max=self.goal) if self.goal is not None else None
        return [
            Metric(f"{p}skopeo_push", f"{image}, push", "s", digits=2),
            Metric(f"{p}skopeo_pull", f"{image}, pull", "s", digits=2),
            Metric(f"{p}skopeo_round_trip", f"{image}, push + pull", "s", goal, digits=2),
            Metric(f"{p}skopeo_push_cpu", f"{scope}skopeo push", _CPU_S, digits=2, group="cpu"),
            Metric(f"{p}skopeo_pull_cpu", f"{scope}skopeo pull", _CPU_S, digits=2, group="cpu"),
        ]

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        image = self.env.image
        if image is None:
            raise RuntimeError("the skopeo image was not built")
        work = self.env.workdir / "skopeo" / f"{self.prefix}{target.name}-{round_number}"
        reference = f"docker://{target.host}/bench/skopeo-{round_number}:v1"
        pids = target.all_pids()
        with Skopeo(work / "push", target.server) as skopeo, ServerCpu(pids) as push_cpu:
            started = time.perf_counter()
            skopeo.copy(image.source, reference)
            pushed = time.perf_counter() - started
        with Skopeo(work / "pull", target.server) as skopeo, ServerCpu(pids) as pull_cpu:
            started = time.perf_counter()
            skopeo.copy(reference, f"oci:{work / 'image'}:v1")
            pulled = time.perf_counter() - started
        shutil.rmtree(work)
        # The next round pushes the same blobs to a new repository: make them new again.
        forget_image(self.env, target, f"bench/skopeo-{round_number}")
        p = self.prefix
        return {
            f"{p}skopeo_push": pushed,
            f"{p}skopeo_pull": pulled,
            f"{p}skopeo_round_trip": pushed + pulled,
            f"{p}skopeo_push_cpu": push_cpu.seconds,
            f"{p}skopeo_pull_cpu": pull_cpu.seconds,
        }
