"""``wharf check [--repair] [--json] [--jobs N] CONFIG``.

Verifies the storage the configuration names (see :mod:`wharf.registry.check`), beside a
running registry or not: progress on stderr, then one line per problem and a summary on
stdout (or, with ``--json``, one JSON document). Exit status 0 when nothing is wrong (or
everything wrong was repaired), 1 when problems remain or the check could not finish, 2 for
a configuration that cannot be used.

The configuration is never the built-in defaults: their ``./wharf-data`` is relative to the
directory the command runs in, which need not be the registry's, and an empty store there
would pass for a clean one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from wharf.coherence.shared import open_generations
from wharf.config.load import CONFIG_PATH_ENV, ConfigError, load
from wharf.config.model import Config
from wharf.config_cli import add_lenient_argument
from wharf.extras import check as check_extras
from wharf.logs import setup_logging
from wharf.registry.check import DEFAULT_CONCURRENCY, CheckReport, check_storage
from wharf.registry.gc.progress import progress_for
from wharf.storage.driver import DriverError
from wharf.storage.driver.factory import create_driver, validate_storage

__all__ = ["add_arguments", "run"]

EXIT_PROBLEMS = 1
EXIT_CONFIG = 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", nargs="?", help=f"config.yml of the registry (required, or ${CONFIG_PATH_ENV})"
    )
    add_lenient_argument(parser)
    parser.add_argument(
        "--repair",
        action="store_true",
        help="remove or re-link what is broken (never a blob that verifies), listing each repair",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        help=f"blobs hashed at once (default {DEFAULT_CONCURRENCY})",
    )


def run(args: argparse.Namespace) -> int:
    if not (args.config or os.environ.get(CONFIG_PATH_ENV)):
        print(
            f"wharf check: error: the registry's config.yml is required "
            f"(as an argument or in ${CONFIG_PATH_ENV})",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        loaded = load(args.config, os.environ, lenient=args.lenient)
        config = loaded.config
        if config.storage.driver == "inmemory":
            raise ConfigError("storage: in-memory storage cannot be checked by another process")
        check_extras(config, {})
        validate_storage(config.storage)
    except ConfigError as error:
        print(f"wharf: error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log)
    for warning in loaded.warnings:
        logging.getLogger("wharf").warning("config: %s", warning)
    try:
        return asyncio.run(_main(args, config))
    except KeyboardInterrupt:
        return 130


async def _main(args: argparse.Namespace, config: Config) -> int:
    driver = create_driver(config.storage)
    # The serving registry's change tokens: no worker serves what a repair removes.
    generations = open_generations(config) if args.repair else None
    try:
        report = await check_storage(
            driver,
            repair=args.repair,
            progress=progress_for(sys.stderr),
            on_change=generations.changed if generations else None,
            on_change_everything=generations.changed_everything if generations else None,
            concurrency=args.jobs,
            validation=config.validation,
            mirrors=config.mirrors,
        )
    except DriverError as error:
        print(f"wharf: check failed: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    finally:
        await driver.close()
        if generations is not None:
            await generations.aclose()
    _print(report, as_json=args.json)
    return EXIT_PROBLEMS if report.unresolved else 0


def _print(report: CheckReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        for problem in report.problems:
            print(problem.line())
        for line in report.summary():
            print(line)
    sys.stdout.flush()
