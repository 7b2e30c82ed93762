"""The two registries' filesystem roots, side by side in one data directory kept between runs.

The listings need tens of thousands of small files in each root. Writing them takes about
half a minute, but deleting them again takes minutes on disks mounted with online discard
(this machine's root filesystem is), so the filled trees are kept in the data directory
(default ``~/.cache/wharf-bench``) and reused while the fill parameters match. What a run adds
besides them (pushed blobs, the skopeo repositories) is removed before and after each run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from bench.layout import SmallImage, fill
from wharf.storage import paths

__all__ = ["CATALOG_PREFIX", "TAGS_REPOSITORY", "Roots", "default_data_dir"]

TAGS_REPOSITORY = "bench/tags"
CATALOG_PREFIX = "bench/catalog/r"
#: Repositories under ``bench/`` that belong to the fill; everything else there is per run.
_FILLED = {"tags", "catalog"}
_STAMP_VERSION = 1


def default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "wharf-bench"


class Roots:
    """``<data>/wharf-root`` and ``<data>/docker-registry-root``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.wharf = data_dir / "wharf-root"
        self.reference = data_dir / "docker-registry-root"
        self.stamp = data_dir / "fill.json"

    @property
    def both(self) -> tuple[Path, Path]:
        return self.wharf, self.reference

    def prepare(
        self,
        image: SmallImage,
        tags: int,
        repositories: int,
        log: Callable[[str], None],
        *,
        listings: bool = True,
    ) -> None:
        """Fill both roots for the listings unless an earlier run left the same fill; without
        ``listings`` keep whatever fill is there."""
        keep = set(image.blobs) | {image.digest}
        if not listings:
            for root in self.both:
                root.mkdir(parents=True, exist_ok=True)
            self.scrub(keep)
            return
        wanted = {
            "version": _STAMP_VERSION,
            "tags": tags,
            "repositories": repositories,
            "manifest": image.digest,
        }
        if self.stamp.exists() and json.loads(self.stamp.read_text()) == wanted:
            log(f"reusing the filled roots in {self.data_dir}")
            self.scrub(keep)
            return
        if self.data_dir.exists():
            log(f"removing the roots of another fill in {self.data_dir} (slow on this disk)")
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        tag_names = [f"t{number:05d}" for number in range(tags)]
        names = [f"{CATALOG_PREFIX}{number:05d}" for number in range(repositories)]
        for root in self.both:
            started = time.perf_counter()
            files = fill(root, image, [TAGS_REPOSITORY], tag_names)
            files += fill(root, image, names, ["latest"])
            log(f"filled {root}: {files:,} files in {time.perf_counter() - started:.0f} s")
        self.stamp.write_text(json.dumps(wanted))

    def scrub(self, keep_blobs: set[str]) -> None:
        """Remove what runs add: repositories under ``bench/`` besides the fill, and every
        blob but ``keep_blobs``."""
        for root in self.both:
            base = root / paths.repositories_dir().lstrip("/") / "bench"
            if base.is_dir():
                for entry in base.iterdir():
                    if entry.name not in _FILLED:
                        shutil.rmtree(entry)
            blobs = root / paths.blobs_algorithm_dir("sha256").lstrip("/")
            keep = {digest.removeprefix("sha256:") for digest in keep_blobs}
            if blobs.is_dir():
                for prefix in blobs.iterdir():
                    for blob in prefix.iterdir():
                        if blob.name not in keep:
                            shutil.rmtree(blob)
                    if not any(prefix.iterdir()):
                        prefix.rmdir()
