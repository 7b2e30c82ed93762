"""``wharf garbage-collect [--dry-run] [--delete-untagged] [--online] [--grace D] CONFIG``.

Without ``--online`` it collects as Distribution's ``registry garbage-collect`` does: every
blob nothing references goes, however young, so the registry should be stopped or read-only.
With ``--online`` blobs, links and manifests younger than the grace period stay, and the
collection coordinates with the running registry (see :mod:`wharf.registry.gc.safety`).
``--interval`` repeats it for ever, as a sidecar would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import timedelta

from wharf.coherence.generations import Generations
from wharf.config.load import CONFIG_PATH_ENV, ConfigError, load_config, parse_duration
from wharf.config.model import Config
from wharf.logs import setup_logging
from wharf.registry.gc.collector import CollectorBusy, GcOptions, GcResult, collect
from wharf.registry.gc.coordination import CoordinationError
from wharf.registry.gc.guard import create_coordination, default_lockdir
from wharf.registry.gc.progress import progress_for
from wharf.registry.gc.schedule import run_schedule
from wharf.storage.driver import DriverError
from wharf.storage.driver.factory import create_driver

__all__ = ["add_arguments", "run"]

log = logging.getLogger("wharf.gc")

#: Set by ``wharf serve`` for its workers: collecting in their environment reaches their caches.
_SHARED_STATE_ENV = "WHARF_SHARED_STATE"
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", nargs="?", help=f"config.yml of the registry (default: ${CONFIG_PATH_ENV})"
    )
    parser.add_argument(
        "-d", "--dry-run", action="store_true", help="report what would be removed, remove nothing"
    )
    parser.add_argument(
        "-m",
        "--delete-untagged",
        action="store_true",
        help="also remove manifests no tag reaches (through index children or referrers)",
    )
    parser.add_argument(
        "--online",
        action="store_true",
        help="the registry keeps serving: keep what is younger than the grace period",
    )
    parser.add_argument(
        "--grace",
        type=_duration,
        help="keep blobs, links and manifests younger than this "
        "(default: storage.gc.grace, 1h, with --online; 0 without)",
    )
    parser.add_argument(
        "--interval",
        type=_duration,
        help="collect again every INTERVAL until stopped (implies --online)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="list every manifest and blob removed"
    )


def _options(args: argparse.Namespace, config: Config) -> GcOptions:
    online = bool(args.online or args.interval)
    grace = args.grace if args.grace is not None else (config.storage.gc.grace if online else None)
    return GcOptions(
        dry_run=bool(args.dry_run),
        delete_untagged=bool(
            args.delete_untagged or (online and config.storage.gc.delete_untagged)
        ),
        grace=grace or timedelta(0),
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, os.environ)
        if config.storage.driver == "inmemory":
            raise ConfigError("storage: in-memory storage cannot be collected by another process")
    except ConfigError as error:
        print(f"wharf: error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log)
    options = _options(args, config)
    if not (args.online or args.interval) and options.grace == timedelta(0):
        log.info(
            "collecting offline: the registry should be stopped or read-only (or use --online)"
        )
    _check_owner(config)
    if config.storage.driver != "filesystem" and config.redis is None:
        log.warning("no redis configured: only processes on this machine coordinate with this run")
    try:
        return asyncio.run(_main(args, config, options))
    except KeyboardInterrupt:
        return 130


def _check_owner(config: Config) -> None:
    """Lock files this run creates must stay usable by the registry's own user."""
    if config.storage.driver != "filesystem" or config.redis is not None:
        return
    root = str(config.storage.parameters.get("rootdirectory", ""))
    try:
        owner = os.stat(root).st_uid
    except OSError:
        return
    if owner != os.geteuid():
        log.warning(
            "running as uid %d, the storage belongs to uid %d: run as the registry's user, "
            "or the registry may not use the lock files this run creates (%s)",
            os.geteuid(),
            owner,
            default_lockdir(config.storage),
        )


async def _main(args: argparse.Namespace, config: Config, options: GcOptions) -> int:
    driver = create_driver(config.storage)
    coordination = create_coordination(config)
    shared = os.environ.get(_SHARED_STATE_ENV)
    generations = Generations(shared) if shared else None
    try:
        if args.interval:
            await run_schedule(
                driver,
                coordination,
                options,
                args.interval.total_seconds(),
                generations=generations,
                first_delay=0,
                report=lambda result: _report(result, verbose=args.verbose),
            )
        result = await collect(
            driver,
            coordination,
            options,
            progress=progress_for(sys.stderr),
            generations=generations,
        )
    except CollectorBusy as error:
        print(f"wharf: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (CoordinationError, DriverError) as error:
        print(f"wharf: garbage collection failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await coordination.close()
        await driver.close()
        if generations is not None:
            generations.close()
    _report(result, verbose=args.verbose)
    return EXIT_FAILED if result.sweep.errors else 0


def _report(result: GcResult, *, verbose: bool) -> None:
    if verbose:
        verb = "eligible for deletion" if result.options.dry_run else "removed"
        for manifest in result.sweep.manifests_removed:
            print(f"manifest {verb}: {manifest}")
        for blob in result.sweep.blobs_removed:
            print(f"blob {verb}: {blob}")
    for line in result.summary():
        print(line)
    sys.stdout.flush()
