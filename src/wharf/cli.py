"""``wharf`` command line: ``wharf serve [--lenient] [CONFIG]``, ``wharf config check
[--lenient] [CONFIG]``, ``wharf garbage-collect [...] CONFIG``, ``wharf check [...] CONFIG``,
``wharf --version``.

Each subcommand is one entry of ``COMMANDS``: its help, a function adding its arguments and
the function running it (returning the exit status).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wharf import __version__
from wharf.cli_errors import log_settings, report_error
from wharf.config.load import CONFIG_PATH_ENV, ConfigError, load
from wharf.config.model import Config, LogConfig
from wharf.logs import setup_logging

__all__ = ["COMMANDS", "Command", "main"]

log = logging.getLogger("wharf")

#: Exit status for a configuration that cannot be used (argparse uses 2 for usage errors).
EXIT_CONFIG = 2
#: Exit status when the server cannot start although the configuration is valid (an address
#: in use, a port it may not bind).
EXIT_FAILURE = 1


@dataclass(frozen=True, slots=True)
class Command:
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        help=f"Distribution-style config.yml (default: ${CONFIG_PATH_ENV}, else built-in defaults)",
    )
    from wharf.config_cli import add_lenient_argument

    add_lenient_argument(parser)


def _serve(args: argparse.Namespace) -> int:
    """Everything a worker would check is checked here first, in the parent: a bad
    configuration is one line and exit status 2, never workers dying and restarting."""
    from wharf import extras, preflight, server  # server imports uvicorn, which others need not

    try:
        loaded = load(args.config, os.environ, lenient=args.lenient)
    except ConfigError as exc:
        return _fail(str(exc), log_settings(args.config, os.environ))
    config = loaded.config
    # Before the checks, so that what they log (an htpasswd line skipped) is formatted too.
    setup_logging(config.log)
    try:
        extras.check(config, os.environ)  # before anything imports what an extra installs
        preflight.check(config)
        where = server.listener(config)
        storage = _prepare_storage(config)
    except ValueError as exc:  # ConfigError, or what a check let through as a ValueError
        return _fail(str(exc), config.log)
    for warning in loaded.warnings:
        log.warning("config: %s", warning)
    workers = server.worker_count(config)
    exposure = preflight.exposure_warning(config, where.host)

    def announce() -> None:
        log.info(
            "wharf %s listening on %s, storage %s, %d worker%s (config: %s)",
            __version__,
            str(where).removeprefix("http://"),
            storage,
            workers,
            "" if workers == 1 else "s",
            config.source,
        )
        if exposure is not None:
            log.warning("%s", exposure)

    try:
        server.run(config, announce=announce)
    except server.ListenError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    return 0


def _prepare_storage(config: Config) -> str:
    """Describe the storage for the first log line; create a filesystem root at start, so
    that a root that cannot be created is reported now rather than on the first push."""
    storage = config.storage
    if storage.driver == "filesystem":
        root = os.path.abspath(str(storage.parameters["rootdirectory"]))
        try:
            os.makedirs(root, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"storage.filesystem.rootdirectory: cannot create {root}: {reason}"
            ) from exc
        return f"filesystem at {root}"
    if storage.driver == "s3":
        return f"s3 bucket {storage.parameters.get('bucket', '?')}"
    return storage.driver


def _fail(message: str, log_config: LogConfig) -> int:
    report_error(message, log_config)
    return EXIT_CONFIG


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    from wharf import config_cli

    config_cli.add_arguments(parser)


def _config(args: argparse.Namespace) -> int:
    from wharf import config_cli

    return config_cli.run(args)


def _garbage_collect_arguments(parser: argparse.ArgumentParser) -> None:
    from wharf import gc_cli

    gc_cli.add_arguments(parser)


def _garbage_collect(args: argparse.Namespace) -> int:
    from wharf import gc_cli

    return gc_cli.run(args)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    from wharf import check_cli

    check_cli.add_arguments(parser)


def _check(args: argparse.Namespace) -> int:
    from wharf import check_cli

    return check_cli.run(args)


COMMANDS: dict[str, Command] = {
    "serve": Command("run the registry", _serve_arguments, _serve),
    "config": Command(
        "check a configuration and print it as wharf reads it (config check)",
        _config_arguments,
        _config,
    ),
    "garbage-collect": Command(
        "remove blobs and manifests nothing references",
        _garbage_collect_arguments,
        _garbage_collect,
    ),
    "check": Command(
        "verify the storage (blob digests, links, tags, referrers); --repair mends it",
        _check_arguments,
        _check,
    ),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wharf", description="A container registry.")
    parser.add_argument("--version", action="version", version=f"wharf {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        command.arguments(subcommands.add_parser(name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return COMMANDS[args.command].run(args)
