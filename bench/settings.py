"""What one benchmark run measures and how long it may take: sizes, durations, counts."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

__all__ = ["MIB", "Settings", "add_arguments"]

MIB = 1 << 20


@dataclass(frozen=True)
class Settings:
    rounds: int = 3
    #: wharf workers; 0 is wharf's default, one per core.
    workers: int = 0
    #: Worker processes per Swift daemon in item 7, in Swift's terms: None is one per core, as
    #: Swift is deployed; 0 serves from the daemon's own process.
    swift_workers: int | None = None
    #: Seconds per request-rate sample (wrk, hload).
    seconds: int = 8
    connections: int = 32
    #: Connections for the listings, whose answers are large and slow on docker-registry.
    list_connections: int = 8
    load_threads: int = 2
    #: CPU list for taskset, to pin the load generator; None leaves it unpinned.
    load_cpu: str | None = None
    blob_bytes: int = 256 * MIB
    chunk_bytes: int = 16 * MIB
    #: Blob pushes per push sample (each a new blob).
    pushes: int = 2
    #: Bytes pulled per pull sample, over all streams (whole blobs, at least one per stream).
    pull_bytes: int = 2048 * MIB
    rss_bytes: int = 1024 * MIB
    image_bytes: int = 300 * 1000 * 1000
    image_layers: int = 5
    tags: int = 10_000
    repositories: int = 10_000
    catalog_page: int = 1000
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()

    @property
    def swift_worker_count(self) -> int:
        """``swift_workers`` with its default resolved."""
        return (os.cpu_count() or 1) if self.swift_workers is None else self.swift_workers

    def wants(self, item: str) -> bool:
        return (not self.only or item in self.only) and item not in self.skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = bool(args.quick)
        return cls(
            rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
            workers=args.workers,
            swift_workers=args.swift_workers,
            seconds=args.seconds if args.seconds is not None else (2 if quick else 8),
            connections=args.connections,
            list_connections=args.list_connections,
            load_threads=args.load_threads,
            load_cpu=args.load_cpu,
            blob_bytes=args.blob_mib * MIB,
            chunk_bytes=args.chunk_mib * MIB,
            pushes=args.pushes if args.pushes is not None else (1 if quick else 2),
            pull_bytes=(
                args.pull_mib * MIB
                if args.pull_mib is not None
                else (args.blob_mib * MIB * 4 if quick else 2048 * MIB)
            ),
            rss_bytes=args.rss_mib * MIB,
            image_bytes=int(args.image_mb * 1000 * 1000),
            image_layers=args.image_layers,
            tags=args.tags,
            repositories=args.repositories,
            catalog_page=args.catalog_page,
            only=tuple(args.only or ()),
            skip=tuple(args.skip or ()),
        )


def add_arguments(parser: argparse.ArgumentParser, items: list[str]) -> None:
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run: 1 round, 2 s rate samples, 1 push")
    add("--rounds", type=int, help="rounds of every measurement on both (default 3)")
    add("--workers", type=int, default=0, help="wharf workers (default 0: one per core)")
    add(
        "--swift-workers",
        type=int,
        help="worker processes per Swift daemon in the S3 item (default one per core; 0: none, "
        "the daemon serves)",
    )
    add("--seconds", type=int, help="seconds per request-rate sample (default 8)")
    add("--connections", type=int, default=32, help="connections for manifests (32)")
    add("--list-connections", type=int, default=8, help="connections for listings (8)")
    add("--load-threads", type=int, default=2, help="load generator threads (2)")
    add("--load-cpu", help="pin the load generator with taskset -c LIST (default: unpinned)")
    add("--blob-mib", type=int, default=256, help="blob size for push and pull (256)")
    add("--chunk-mib", type=int, default=16, help="PATCH chunk size (16)")
    add("--pushes", type=int, help="pushes per push sample (default 2)")
    add("--pull-mib", type=int, help="MiB pulled per pull sample (default 2048)")
    add("--rss-mib", type=int, default=1024, help="upload size for the RSS peak (1024)")
    add("--image-mb", type=float, default=300, help="skopeo image size in MB (300)")
    add("--image-layers", type=int, default=5, help="skopeo image layers (5)")
    add("--tags", type=int, default=10_000, help="tags in the tags-list repository")
    add("--repositories", type=int, default=10_000, help="repositories in the catalog")
    add("--catalog-page", type=int, default=1000, help="catalog page size n (1000)")
    add("--only", action="append", choices=items, help="run only this item (repeatable)")
    add("--skip", action="append", choices=items, help="skip this item (repeatable)")
    add(
        "--output",
        help="write the report (markdown) here; default bench/RESULTS.md, none with --quick",
    )
    add("--json", help="write every sample as JSON here")
    add(
        "--data-dir",
        help="where the two registries' storage roots live between runs "
        "(default ~/.cache/wharf-bench; see bench/storage.py)",
    )
