"""Run every measurement on wharf and docker-registry, interleaved, and write the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from tests.support.clients import Skopeo
from tests.support.images import build_image
from tests.support.server import free_port, wait_for_http

from bench import machine
from bench.base import Environment, Item, Unavailable
from bench.blobs import BlobSource, pull_rate, push_rate
from bench.client import MANIFEST_ACCEPT, Client
from bench.cpu import CpuMeter
from bench.items import ITEMS, Manifests
from bench.layout import small_image
from bench.loadgen import build_hload, run_hload, run_wrk
from bench.registries import REFERENCE, FilesystemStore, Target, start_reference, start_wharf
from bench.report import (
    Metric,
    Results,
    noise_warning,
    render_noise,
    render_rounds,
    render_table,
)
from bench.settings import Settings, add_arguments
from bench.storage import Roots, default_data_dir

__all__ = ["main"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "RESULTS.md"
TOOLS = ("wrk", "skopeo", "docker-registry")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing and not Path("/usr/bin/docker-registry").exists():
        raise SystemExit(f"missing: {', '.join(missing)}; bench/run installs them")


def _environment(settings: Settings, workdir: Path) -> Environment:
    log("building hload, the test images and the blob data")
    hload = build_hload(workdir)
    source_size = max(settings.blob_bytes, settings.rss_bytes if settings.wants("rss") else 0)
    env = Environment(
        settings=settings,
        workdir=workdir,
        hload=hload,
        small=small_image(workdir / "small-image"),
        source=BlobSource(source_size),
    )
    if settings.wants("skopeo") or settings.wants("s3") or settings.wants("mirror"):
        started = time.perf_counter()
        env.image = build_image(
            workdir / "skopeo-image",
            tag="v1",
            layers=settings.image_layers,
            layer_size=settings.image_bytes // settings.image_layers,
            seed=42,
        )
        size = sum(layer.size for layer in env.image.layers) + env.image.config.size
        log(f"skopeo image: {size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s")
    return env


@contextlib.contextmanager
def _sink(size: int) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sink", "--port", str(port), "--size", str(size)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if process.stdout is None or process.stdout.readline().strip() != "ready":
            raise RuntimeError("bench.sink did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _client_ceiling(settings: Settings, env: Environment) -> list[tuple[str, str]]:
    """The benchmark client against a server that does no work: its own limits."""
    rows = _skopeo_floor(env)
    if not (settings.wants("push") or settings.wants("pull")):
        return rows
    log("client ceiling against bench.sink")
    with _sink(settings.blob_bytes) as url, Client(url) as client:
        for label, chunk in (("monolithic", None), ("chunked", settings.chunk_bytes)):
            rate = push_rate(
                client,
                "ceiling",
                env.source,
                size=settings.blob_bytes,
                chunk=chunk,
                count=settings.pushes,
            )
            rows.append((f"Blob push, {label}", f"{rate:,.0f} MB/s"))
        digest = "sha256:" + "0" * 64
        for streams in (1, 4):
            rate, _ = pull_rate(
                url,
                "ceiling",
                digest,
                size=settings.blob_bytes,
                streams=streams,
                total=settings.pull_bytes,
            )
            rows.append((f"Blob pull, {streams} stream{'s' * (streams > 1)}", f"{rate:,.0f} MB/s"))
    return rows


def _skopeo_floor(env: Environment) -> list[tuple[str, str]]:
    """skopeo pushing the image to, and pulling it from, ``bench.skopeo_sink`` (a registry
    that stores nothing and serves the image's own files): what skopeo needs on its own."""
    image = env.image
    if image is None:
        return []
    log("skopeo floor against bench.skopeo_sink")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.skopeo_sink",
            f"--port={port}",
            f"--layout={image.layout}",
            f"--manifest={image.digest}",
            f"--media-type={image.media_type}",
        ],
        cwd=REPO_ROOT,
    )
    pushes, pulls = [], []
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/", 30, process)
        for attempt in range(2):
            work = env.workdir / f"skopeo-floor-{attempt}"
            with Skopeo(work) as skopeo:
                started = time.perf_counter()
                skopeo.copy(image.source, f"docker://127.0.0.1:{port}/push/image:v1")
                pushes.append(time.perf_counter() - started)
                started = time.perf_counter()
                skopeo.copy(f"docker://127.0.0.1:{port}/pull/image:v1", f"oci:{work / 'image'}:v1")
                pulls.append(time.perf_counter() - started)
            shutil.rmtree(work)
    finally:
        process.terminate()
        process.wait(timeout=10)
    env.skopeo_floor = min(pushes) + min(pulls)
    return [
        ("skopeo push of the image to the sink (stores nothing)", f"{min(pushes):.2f} s"),
        ("skopeo pull of the image from the sink (the image's own files)", f"{min(pulls):.2f} s"),
    ]


def _skopeo_bound(env: Environment, results: Results) -> list[tuple[str, str]]:
    """The lowest skopeo round-trip ratio any registry could reach in this run: skopeo's
    time against the sink over docker-registry's median."""
    reference = results.median("skopeo_round_trip", REFERENCE)
    if env.skopeo_floor is None or not reference:
        return []
    bound = env.skopeo_floor / reference
    return [("skopeo push + pull against the sink / docker-registry's median", f"{bound:.2f}x")]


def _calibrate(settings: Settings, env: Environment, wharf: Target) -> list[tuple[str, str]]:
    """wrk and hload on the same GET, so HEAD figures (hload only) can be trusted."""
    if not settings.wants("manifest"):
        return []
    url = f"{wharf.url}/v2/{Manifests.repository}/manifests/latest"
    headers = {"Accept": MANIFEST_ACCEPT}
    c, t, d, cpu = settings.connections, settings.load_threads, settings.seconds, settings.load_cpu
    by_wrk = run_wrk(
        url, workdir=env.workdir, headers=headers, connections=c, threads=t, seconds=d, cpu=cpu
    )
    by_hload = run_hload(
        env.hload, url, method="GET", headers=headers, connections=c, threads=t, seconds=d, cpu=cpu
    )
    return [
        ("wharf manifest GET by tag, wrk", f"{by_wrk.requests_per_s:,.0f} req/s"),
        ("wharf manifest GET by tag, hload", f"{by_hload.requests_per_s:,.0f} req/s"),
    ]


def _report(
    settings: Settings,
    metrics: list[Metric],
    results: Results,
    ceiling: list[tuple[str, str]],
    seconds: float,
    description: list[tuple[str, str]],
) -> str:
    main = [metric for metric in metrics if metric.group == "main"]
    table, missed = render_table(main, results)
    cpu_table, _ = render_table([metric for metric in metrics if metric.group == "cpu"], results)
    lines = [
        "# wharf benchmark results",
        "",
        f"`bench/run` ({settings.rounds} round{'s' * (settings.rounds > 1)}, medians; "
        f"wharf with {settings.workers or 'one per core'} workers; run took "
        f"{seconds / 60:.1f} min). Ratios are wharf / docker-registry: above 1 is better for "
        "rates, below 1 is better for times and latencies.",
        "",
        *([warning, ""] if (warning := noise_warning(results, os.cpu_count() or 1)) else []),
        table,
        "",
        "Targets missed: " + (", ".join(missed) if missed else "none") + ".",
        "",
        "## Server CPU per unit of work",
        "",
        "CPU time (user + system) of the serving processes during each sample, divided by the "
        "work done: how much of the two cores each registry needs, independent of how busy "
        "the machine was. Lower is better.",
        "",
        cpu_table,
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in description),
        f"| Load average at end | {' '.join(f'{v:.2f}' for v in os.getloadavg())} |",
        "",
        "## Method",
        "",
        "- Both registries run side by side on filesystem storage, each with its own root in "
        "one data directory, delete enabled, upload purging off, logging at info with the "
        "access log off; every measurement runs on both registries in turn, wharf first in odd "
        "rounds and docker-registry first in even ones (the second of a pair inherits the "
        "first one's page cache, writeback and freed memory). Item 7 starts a second pair on "
        "one OpenStack Swift (s3api) server, a bucket each, redirects off; each Swift daemon "
        + (
            f"runs {settings.swift_worker_count} worker processes"
            if settings.swift_worker_count
            else "serves from its own process"
        )
        + ".",
        f"- The load generator shares the {os.cpu_count()} cores "
        "with the servers; it runs "
        + (f"pinned to CPUs {settings.load_cpu}" if settings.load_cpu else "unpinned")
        + f" with {settings.load_threads} threads. Manifest GET: wrk with a Lua script "
        "(Accept headers). Manifest HEAD: bench/hload.c, since wrk 4.1 cannot parse HEAD "
        "responses (wg/wrk#198); the calibration below shows both tools on the same GET.",
        "- Pushes: every push is a new blob (a counter in its first bytes); the registry "
        "verifies the digest and must answer 201. `sync` runs before each push, outside the "
        "timing. wharf fsyncs the data when it commits an upload; docker-registry 2.8 never "
        "fsyncs, so its figures include no durability cost.",
        "- Pulls read into one reusable buffer, without hashing (a verified pull with a digest "
        "check runs once at setup). MB is 10^6 bytes.",
        "- skopeo: from an OCI layout to a new repository each round and back to a new OCI "
        "layout (skopeo writes the pulled layers in parallel); the image's blob files are "
        "removed from the registry after each round, so every push uploads every layer.",
        "- Listings are filled on disk in Distribution's layout (bench/layout.py) before the "
        "registries start. Peak RSS: VmRSS of the serving processes (wharf's workers, or "
        "docker-registry's one process) sampled every 10 ms during the upload.",
        "",
        "## Client ceiling",
        "",
        "What the clients manage without a registry in the way: skopeo against "
        "`bench/skopeo_sink.py` (a registry that drops what is pushed and serves the image's "
        "own files), the push and pull client against `bench/sink.py` (a server that does no "
        "work), and the two load generators on the same GET:",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in ceiling),
        "",
        "## Every round",
        "",
        render_rounds(metrics, results),
        "",
        "CPU taken by other processes on the machine during each sample, in cores (of "
        f"{os.cpu_count()}): the noise behind the figures above (bench/cpu.py).",
        "",
        render_noise(results),
        "",
    ]
    return "\n".join(lines)


def _skip(item: Item, reason: str, results: Results) -> None:
    log(f"skipping {item.name}: {reason}")
    for metric in item.metrics():
        results.skipped[metric.key] = reason


def _measure_round(
    items: list[Item], targets: list[Target], results: Results, round_number: int
) -> None:
    # Which registry goes first alternates by round: the second one of a pair inherits the
    # first one's page cache, writeback and freed memory (reported to the hypervisor here).
    order = targets if round_number % 2 else targets[::-1]
    for item in items:
        for target in order:
            started = time.perf_counter()
            with CpuMeter(item.pids(target)) as meter:
                values = item.measure(target, round_number)
            for key, value in values.items():
                results.add(key, target.name, value)
            results.add_noise(item.name, target.name, meter.foreign_cores)
            shown = ", ".join(f"{key} {value:,.1f}" for key, value in values.items())
            log(
                f"round {round_number} {item.name} {target.name}: {shown} "
                f"({time.perf_counter() - started:.0f} s, other processes "
                f"{meter.foreign_cores:.2f} cores)"
            )


def run(settings: Settings, data_dir: Path, output: Path | None, json_path: Path | None) -> int:
    started = time.perf_counter()
    _check_tools()
    description = machine.describe()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp:
        workdir = Path(tmp)
        env = _environment(settings, workdir)
        items = [cls(env) for cls in ITEMS if settings.wants(cls.name)]
        metrics = [metric for item in items for metric in item.metrics()]
        runnable = []
        for item in items:
            reason = item.unavailable()
            if reason is None:
                runnable.append(item)
            else:
                _skip(item, reason, results)
        roots = Roots(data_dir)
        roots.prepare(
            env.small,
            settings.tags,
            settings.repositories,
            log,
            listings=settings.wants("listings"),
        )
        ceiling = _client_ceiling(settings, env)
        targets: list[Target] = []
        try:
            targets.append(start_wharf(FilesystemStore(roots.wharf), settings.workers))
            targets.append(start_reference(FilesystemStore(roots.reference)))
            log(
                f"wharf at {targets[0].url} ({len(targets[0].serving_pids())} workers), "
                f"docker-registry at {targets[1].url}"
            )
            for item in list(runnable):
                try:
                    for target in targets:
                        item.setup(target)
                except Unavailable as error:
                    runnable.remove(item)
                    _skip(item, str(error), results)
            for round_number in range(1, settings.rounds + 1):
                _measure_round(runnable, targets, results, round_number)
            log("load generator calibration: the same GET with wrk and hload")
            ceiling += _calibrate(settings, env, targets[0])
            ceiling += _skopeo_bound(env, results)
        except Exception:
            for target in targets:
                log(f"--- {target.name} log (tail) ---\n{target.log()[-3000:]}")
            raise
        finally:
            for item in items:
                item.close()
            for target in targets:
                target.stop()
            roots.scrub(set(env.small.blobs) | {env.small.digest})
    report = _report(
        settings, metrics, results, ceiling, time.perf_counter() - started, description
    )
    print(report)
    if output is not None:
        output.write_text(report)
        log(f"wrote {output}")
    if json_path is not None:
        json_path.write_text(
            json.dumps(
                {
                    "settings": asdict(settings),
                    "samples": results.samples,
                    "skipped": results.skipped,
                    "other_cpu_cores": results.noise,
                    "metrics": [asdict(metric) for metric in metrics],
                    "ceiling": ceiling,
                },
                indent=1,
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run", description="wharf against docker-registry 2.8.2, side by side"
    )
    add_arguments(parser, [cls.name for cls in ITEMS])
    args = parser.parse_args(argv)
    settings = Settings.from_args(args)
    if args.output:
        output: Path | None = Path(args.output)
    else:
        output = None if args.quick else DEFAULT_OUTPUT
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    return run(settings, data_dir, output, Path(args.json) if args.json else None)
