"""Blob push and pull through wharf on a cloud store's emulator, next to the store's floor.

Shared by ``bench.azure`` and ``bench.gcs``. One emulator on loopback, one wharf on the same
machine with its storage there (redirects off, so that wharf streams the bytes). Each round
pushes a fresh blob through wharf into one repository (POST, one streamed PATCH, PUT with
the digest) and pulls it back (GET, streamed), then makes the same transfers with the store's
SDK alone: the floor, which no registry in front of the same store can beat. The table gives
the medians and wharf's ratio to the floor (target: 0.8 or more), and replaces the store's
section of ``bench/STORES.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.server import WharfServer  # noqa: E402

__all__ = [
    "MIB", "ROOT", "Floor", "Store", "arguments", "pull_through_wharf", "push_through_wharf", "run",
]  # fmt: skip

MIB = 1 << 20
RESULTS = ROOT / "bench" / "STORES.md"
_PIECE = MIB
#: The SDK's push and pull of ``data``: (seconds to push, seconds to pull).
Floor = Callable[[bytes], tuple[float, float]]


@dataclass(frozen=True)
class Store:
    """One emulator, started: what wharf's ``storage`` section is, and the SDK floor."""

    title: str  # the section heading, e.g. "gcs on fake-gcs-server"
    storage: dict[str, Any]
    floor: Floor
    floor_name: str  # how the SDK moved the bytes
    env: dict[str, str] | None = None
    #: Seconds the store alone takes for what a push's commit asks of it (on emulators that
    #: copy bytes there), measured after each floor push; None where that costs nothing.
    commit_floor: Callable[[], float] | None = None
    #: The same transfers made by a plain HTTP client written for the store's API alone,
    #: where that is faster than the SDK: reported beside the SDK's floor, as the limit no
    #: client of this store gets past here.
    plain: Floor | None = None
    plain_name: str = ""


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), _PIECE):
        yield bytes(view[start : start + _PIECE])


def push_through_wharf(
    client: httpx.Client, data: bytes, digest: str, name: str
) -> tuple[float, float]:
    """Seconds for the whole push, and for the bytes only (POST and PATCH, before the PUT
    that commits and moves them)."""
    started = time.perf_counter()
    response = client.post(f"/v2/{name}/blobs/uploads/")
    response.raise_for_status()
    response = client.patch(response.headers["Location"], content=_pieces(data))
    response.raise_for_status()
    sent = time.perf_counter() - started
    location = response.headers["Location"]
    separator = "&" if "?" in location else "?"
    response = client.put(f"{location}{separator}digest={digest}")
    response.raise_for_status()
    return time.perf_counter() - started, sent


def pull_through_wharf(client: httpx.Client, digest: str, name: str, size: int) -> float:
    started = time.perf_counter()
    received = 0
    with client.stream("GET", f"/v2/{name}/blobs/{digest}") as response:
        response.raise_for_status()
        for part in response.iter_raw(1 << 20):
            received += len(part)
    assert received == size, (received, size)
    return time.perf_counter() - started


def arguments(doc: str, default_rounds: int = 3) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=default_rounds)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="the markdown file whose section is replaced"
    )
    return parser.parse_args()


def run(store: Store, args: argparse.Namespace) -> str:
    """The rounds on ``store``; its markdown section, also written into ``args.out``."""
    size = args.mib * MIB
    times: dict[str, list[float]] = {
        "wharf push": [], "wharf patch": [], "wharf pull": [], "sdk push": [], "sdk pull": [],
        "sdk push and commit": [], "plain push": [], "plain pull": [],
    }  # fmt: skip
    storage = {**store.storage, "redirect": {"disable": True}}
    with (
        WharfServer(storage=storage, workers=0, env=store.env) as wharf,
        httpx.Client(base_url=wharf.url, timeout=600) as client,
    ):
        for number in range(args.rounds):
            data = os.urandom(size)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            # One repository: what is timed is a blob's transfer, as the floor's is an
            # object's; the first round also adds the repository to the catalog.
            name = "bench/store"
            pushed, sent = push_through_wharf(client, data, digest, name)
            times["wharf push"].append(pushed)
            times["wharf patch"].append(sent)
            times["wharf pull"].append(pull_through_wharf(client, digest, name, size))
            pushed, pulled = store.floor(data)
            times["sdk push"].append(pushed)
            times["sdk pull"].append(pulled)
            if store.commit_floor is not None:
                times["sdk push and commit"].append(pushed + store.commit_floor())
            if store.plain is not None:
                pushed, pulled = store.plain(data)
                times["plain push"].append(pushed)
                times["plain pull"].append(pulled)
            rates = ", ".join(f"{k} {size / v[-1] / 1e6:.0f} MB/s" for k, v in times.items() if v)
            print(f"{store.title}, round {number + 1}: {rates}", file=sys.stderr, flush=True)
    rate = {key: size / statistics.median(value) / 1e6 for key, value in times.items() if value}
    lines = [
        f"## {store.title}",
        "",
        f"{args.mib} MiB blob, median of {args.rounds} rounds, {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average "
        f"{os.getloadavg()[0]:.1f} at the end. Floor: {store.floor_name}.",
        "",
        "| transfer | wharf | SDK alone (floor) | ratio | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    for verb in ("push", "pull"):
        wharf_rate, floor = rate[f"wharf {verb}"], rate[f"sdk {verb}"]
        plain = rate.get(f"plain {verb}")
        verdict = "holds" if wharf_rate / floor >= 0.8 else "**misses**"
        lines.append(
            f"| {verb} | {wharf_rate:.0f} MB/s | {floor:.0f} MB/s | {wharf_rate / floor:.2f}x "
            f"| >= 0.8x | {verdict} |"
        )
        if plain is not None:
            lines.append(
                f"| {verb}, next to {store.plain_name} | {wharf_rate:.0f} MB/s | {plain:.0f} MB/s "
                f"| {wharf_rate / plain:.2f}x | | |"
            )
        if verb == "push":
            patch = rate["wharf patch"]
            lines.append(
                f"| push: the bytes only (POST, PATCH; not the PUT that commits and moves) "
                f"| {patch:.0f} MB/s | {floor:.0f} MB/s | {patch / floor:.2f}x | | |"
            )
            if "sdk push and commit" in rate:
                committed = rate["sdk push and commit"]
                verdict = "holds" if wharf_rate / committed >= 0.8 else "**misses**"
                lines.append(
                    f"| push, next to the floor plus the store's own compose and copy of the "
                    f"bytes (SDK) | {wharf_rate:.0f} MB/s | {committed:.0f} MB/s "
                    f"| {wharf_rate / committed:.2f}x | >= 0.8x | {verdict} |"
                )
    section = "\n".join(lines) + "\n"
    print(section)
    _replace_section(args.out, store.title, section)
    return section


def _replace_section(path: Path, title: str, section: str) -> None:
    header = (
        "# wharf on cloud stores' emulators, against the store's own SDK\n\n"
        "Written by `python -m bench.azure` and `python -m bench.gcs` (see `bench/stores.py`);"
        " each replaces its own sections.\n"
    )
    text = path.read_text() if path.exists() else header
    heading = f"## {title}\n"
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    path.write_text(text)
