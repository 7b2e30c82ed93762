"""Profile wharf's workers with py-spy while one benchmark item runs, and summarise.

    python -m bench.profile ITEM [--rounds N] [--out DIR] [--idle] [--native] [bench options]

Starts wharf alone (same configuration and storage roots as the benchmark), prepares the
item, then samples every worker with ``py-spy record --subprocesses`` for the duration of
ITEM's measurement and prints where the samples fall: the top functions by own samples and
by samples below them (inclusive), as shares of all samples. The collapsed stacks are kept in
``DIR/ITEM.txt`` (``inferno-flamegraph < DIR/ITEM.txt`` draws them). ``--idle`` keeps the
samples of waiting threads, to see where an I/O-bound request spends its time; ``--gil``
keeps only the thread holding the GIL, to see what serialises a worker; ``--native`` adds C
and Rust frames.
Needs py-spy (``pip install py-spy``) and permission to trace the workers (root, or
ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import _environment, log
from bench.items import ITEMS
from bench.registries import FilesystemStore, start_wharf
from bench.settings import Settings, add_arguments
from bench.storage import Roots, default_data_dir

__all__ = ["main", "summarise"]

_LINE_RE = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    """``name (path:line)`` without the line, and with the path shortened."""
    frame = _LINE_RE.sub(")", frame)
    for marker in ("site-packages/", "src/", "lib/python3."):
        at = frame.find(marker)
        if at != -1:
            open_paren = frame.find("(")
            return frame[: open_paren + 1] + frame[at + len(marker) :]
    return frame


def summarise(collapsed: str, top: int = 25) -> str:
    """Top functions by own and by inclusive samples in py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            _function(frame) for frame in stack.split(";") if not frame.startswith("process ")
        ]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for function in set(frames):
            inclusive[function] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} samples", "", "own samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    names = [cls.name for cls in ITEMS]
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("item", choices=names)
    parser.add_argument("--out", default="bench-profiles", help="directory for the stacks")
    parser.add_argument("--idle", action="store_true", help="keep samples of waiting threads")
    parser.add_argument("--native", action="store_true", help="C and Rust frames too")
    parser.add_argument("--gil", action="store_true", help="only threads holding the GIL")
    parser.add_argument("--rate", type=int, default=200, help="samples per second (200)")
    add_arguments(parser, names)
    args = parser.parse_args(argv)
    args.only = [args.item]
    if args.rounds is None:
        args.rounds = 1
    settings = Settings.from_args(args)
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wharf-profile-") as tmp:
        env = _environment(settings, Path(tmp))
        roots = Roots(Path(args.data_dir) if args.data_dir else default_data_dir())
        roots.prepare(
            env.small,
            settings.tags,
            settings.repositories,
            log,
            listings=args.item == "listings",
        )
        item = next(cls for cls in ITEMS if cls.name == args.item)(env)
        target = start_wharf(FilesystemStore(roots.wharf), settings.workers)
        try:
            item.setup(target)
            stacks = out / f"{args.item}.txt"
            command = [
                spy,
                "record",
                "--subprocesses",
                "--pid",
                str(target.main_pid),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--output",
                str(stacks),
            ]
            command += ["--idle"] * args.idle + ["--native"] * args.native + ["--gil"] * args.gil
            recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches to every worker
            for round_number in range(1, settings.rounds + 1):
                values = item.measure(target, round_number)
                log(", ".join(f"{key} {value:,.1f}" for key, value in values.items()))
            recorder.send_signal(signal.SIGINT)
            recorder.wait(timeout=60)
        finally:
            target.stop()
            roots.scrub(set(env.small.blobs) | {env.small.digest})
    print(summarise(stacks.read_text()))
    log(f"collapsed stacks in {stacks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
