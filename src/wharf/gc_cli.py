"""``wharf garbage-collect [--dry-run] [--delete-untagged] [--online] [--grace D] [--force]
CONFIG``.

Without ``--online`` it collects as Distribution's ``registry garbage-collect`` does: every
blob nothing references goes, however young, so no registry may accept writes meanwhile. It
refuses to start while a registry serves the same storage (``--force`` starts anyway), and
stops before its next removal when one starts (see
:class:`~wharf.registry.gc.coordination.OfflineCollection`). With ``--online`` blobs, links
and manifests younger than the grace period stay, and the collection coordinates with the
running registry (see :mod:`wharf.registry.gc.safety`). ``--interval`` repeats it for ever,
as a sidecar would.

The configuration is never the built-in defaults: their ``./wharf-data`` is relative to the
directory the command runs in, which need not be the registry's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import timedelta

from wharf.coherence.shared import open_generations
from wharf.config.load import CONFIG_PATH_ENV, ConfigError, load, parse_duration
from wharf.config.model import Config
from wharf.config_cli import add_lenient_argument
from wharf.extras import check as check_extras
from wharf.extras import exceptions_of
from wharf.logs import setup_logging
from wharf.registry.gc.collector import CollectorBusy, GcOptions, GcResult, collect
from wharf.registry.gc.coordination import (
    Coordination,
    CoordinationError,
    OfflineCollection,
    Presence,
    RegistryServing,
)
from wharf.registry.gc.guard import create_coordination, default_lockdir
from wharf.registry.gc.progress import progress_for
from wharf.registry.gc.schedule import run_schedule
from wharf.storage.driver import DriverError
from wharf.storage.driver.factory import create_driver, validate_storage

__all__ = ["add_arguments", "run"]

log = logging.getLogger("wharf.gc")

EXIT_FAILED = 1
EXIT_CONFIG = 2
#: As argparse's own usage errors.
EXIT_USAGE = 2


def _failed() -> tuple[type[Exception], ...]:
    """What a collection's coordination raises: Redis's errors too once a ``redis`` section
    imported redis-py (it is an optional extra)."""
    return (CoordinationError, OSError, *exceptions_of("redis", "RedisError"))


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", nargs="?", help=f"config.yml of the registry (required, or ${CONFIG_PATH_ENV})"
    )
    add_lenient_argument(parser)
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
        "--force",
        action="store_true",
        help="collect offline even while a registry serves the storage "
        "(blobs of its pushes in progress may go)",
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
        offline=not online and grace is None,
    )


def run(args: argparse.Namespace) -> int:
    if not (args.config or os.environ.get(CONFIG_PATH_ENV)):
        print(
            f"wharf garbage-collect: error: the registry's config.yml is required "
            f"(as an argument or in ${CONFIG_PATH_ENV})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        loaded = load(args.config, os.environ, lenient=args.lenient)
        config = loaded.config
        if config.storage.driver == "inmemory":
            raise ConfigError("storage: in-memory storage cannot be collected by another process")
        check_extras(config, {})
        validate_storage(config.storage)
    except ConfigError as error:
        print(f"wharf: error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log)
    for warning in loaded.warnings:
        log.warning("config: %s", warning)
    options = _options(args, config)
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
    coordination = create_coordination(config)
    marker: Presence | None = None
    try:
        if not (args.online or args.interval):
            if options.dry_run:
                await _warn_if_serving(coordination)
            else:
                marker = await _alone(coordination, force=bool(args.force))
                if marker is None:
                    return EXIT_FAILED
                if not args.force:
                    coordination = OfflineCollection(coordination)
        return await _collect(args, config, coordination, options)
    except _failed() as error:
        print(f"wharf: garbage collection failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if marker is not None:
            await marker.release()
        await coordination.close()


async def _warn_if_serving(coordination: Coordination) -> None:
    if await coordination.present("serving"):
        log.warning(
            "a registry serves this storage: blobs of its pushes in progress are counted as "
            "unreferenced (a collection without --online would refuse to run)"
        )


async def _alone(coordination: Coordination, *, force: bool) -> Presence | None:
    """The offline marker, held before looking for registries, so that a registry starting
    meanwhile sees it; None (after saying why) while a registry serves the storage."""
    marker = await coordination.hold("offline")
    if not await coordination.present("serving"):
        log.info("collecting offline: no registry may accept writes meanwhile (or use --online)")
        return marker
    if force:
        log.warning(
            "a registry serves this storage: collecting offline all the same (--force); "
            "blobs of its pushes in progress may be removed"
        )
        return marker
    await marker.release()
    print(
        "wharf: a registry is serving this storage: collect beside it with --online, "
        "or stop it first (--force collects offline all the same)",
        file=sys.stderr,
    )
    return None


async def _collect(
    args: argparse.Namespace, config: Config, coordination: Coordination, options: GcOptions
) -> int:
    driver = create_driver(config.storage)
    # The serving registry's change tokens: no worker serves what this collection removes.
    generations = open_generations(config)
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
    except RegistryServing as error:
        print(
            f"wharf: {error}: the offline collection stopped before its next removal "
            "(run it again with --online, or once the registry is stopped)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (CoordinationError, DriverError) as error:
        print(f"wharf: garbage collection failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await driver.close()
        await generations.aclose()
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
