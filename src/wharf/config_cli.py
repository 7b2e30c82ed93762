"""``wharf config check [--lenient] [CONFIG]``: what ``wharf serve`` would say about a
configuration, without serving it (zot's ``verify``).

It loads the configuration and makes every check the server's parent process makes before
starting workers (storage driver parameters, TLS, auth and Redis files, the extras installed,
the address resolving), then prints the configuration as read, environment overrides applied
and secrets masked, on stdout. Exit status 0 when it is valid, 2 with the one-line error
otherwise; warnings go to stderr. Unlike ``wharf serve`` it creates no storage directory and
binds no port: whether the port is free says nothing about the configuration.
"""

from __future__ import annotations

import argparse
import os
import sys

from wharf.config.load import CONFIG_PATH_ENV, ConfigError, load
from wharf.config.show import render

__all__ = ["EXIT_CONFIG", "add_arguments", "add_lenient_argument", "run"]

EXIT_CONFIG = 2


def add_lenient_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="unknown keys, and Distribution's keys that mean nothing to wharf, are warnings "
        "instead of errors (for a configuration moving over from Distribution)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="validate a configuration and print it as wharf reads it"
    )
    check.add_argument(
        "config",
        nargs="?",
        help=f"Distribution-style config.yml (default: ${CONFIG_PATH_ENV}, else the defaults)",
    )
    add_lenient_argument(check)


def run(args: argparse.Namespace) -> int:
    from wharf import extras, preflight, server

    try:
        loaded = load(args.config, os.environ, lenient=args.lenient)
    except ConfigError as error:
        return _fail(error)
    config = loaded.config
    try:
        extras.check(config, os.environ)
        preflight.check(config)
        where = server.listener(config)
    except ValueError as error:  # ConfigError, or what a check let through as a ValueError
        return _fail(error)
    warnings = list(loaded.warnings)
    exposure = preflight.exposure_warning(config, where.host)
    if exposure is not None:
        warnings.append(exposure)
    for warning in warnings:
        print(f"wharf: warning: {warning}", file=sys.stderr)
    sys.stdout.write(render(loaded.tree, loaded.ignored, config.source))
    return 0


def _fail(error: ValueError) -> int:
    # Always text: a person or a CI job reads this, not the log collector ``serve`` writes for.
    print(f"wharf: error: {error}", file=sys.stderr)
    return EXIT_CONFIG
