"""What every measurement shares: the run's environment and the item interface.

Each item prepares what it needs on a registry once (``setup``), then ``measure`` takes one
sample per round and returns its metrics by key. The harness calls them interleaved: for every
round and item, wharf then docker-registry; ``close`` runs once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.support.images import BuiltImage

from bench.blobs import BlobSource
from bench.client import BenchError, Client
from bench.layout import SmallImage
from bench.registries import Target
from bench.report import Metric
from bench.settings import MIB, Settings

__all__ = ["PER_GB", "Environment", "Item", "Unavailable", "push_small_image", "size_label"]

PER_GB = "server CPU s/GB"


@dataclass
class Environment:
    """What every item shares during one run."""

    settings: Settings
    workdir: Path
    hload: Path
    small: SmallImage
    source: BlobSource
    image: BuiltImage | None = None
    #: Per item key prefix and registry name: the digest of the blob the pull item reads.
    pull_digests: dict[str, str] = field(default_factory=dict)
    #: Seconds skopeo needs to push and pull the image with no registry work behind it.
    skopeo_floor: float | None = None

    def client(self, target: Target) -> Client:
        return Client(target.url)


class Unavailable(Exception):
    """An item cannot run on this machine (a server it needs does not start); the report
    marks it skipped with this reason instead of failing the run."""


class Item:
    name = ""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.settings = env.settings

    def metrics(self) -> list[Metric]:
        raise NotImplementedError

    def unavailable(self) -> str | None:
        """Why this item cannot run here, or None."""
        return None

    def setup(self, target: Target) -> None:
        """Prepare ``target`` once, before the first round."""

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        raise NotImplementedError

    def pids(self, target: Target) -> list[int]:
        """The processes whose CPU is the benchmark's own while this item runs on ``target``."""
        return target.all_pids()

    def close(self) -> None:
        """Stop what ``setup`` started."""


def size_label(size: int) -> str:
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
