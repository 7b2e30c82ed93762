"""How a command reports a configuration it cannot use: one line on stderr, as text
(``wharf: error: ...``) or, under ``log.formatter: json``, as one JSON object shaped as the
log's other lines, so that a collector reading the log parses it too.

When the configuration did not load, its ``log`` section is read as far as it can be (the file
and ``REGISTRY_LOG_*``), so that the error still comes out as the log would.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from wharf.config.load import CONFIG_PATH_ENV
from wharf.config.model import LogConfig
from wharf.config.sources import Context, apply_environment, read_file
from wharf.logs import JSONFormatter

__all__ = ["log_settings", "report_error"]


def report_error(message: str, log: LogConfig) -> None:
    if log.formatter != "json":
        print(f"wharf: error: {message}", file=sys.stderr)
        return
    record = logging.makeLogRecord(
        {"name": "wharf", "levelno": logging.ERROR, "levelname": "ERROR", "msg": message}
    )
    print(JSONFormatter(log.fields).format(record), file=sys.stderr)


def log_settings(path: str | None, environ: Mapping[str, str]) -> LogConfig:
    """The ``log`` settings of a configuration that did not load, as far as they can be read."""
    try:
        path = path or environ.get(CONFIG_PATH_ENV) or None
        tree = read_file(path) if path is not None else {}
        apply_environment(tree, environ, Context(lenient=True))
        section: Any = tree.get("log")
        if not isinstance(section, dict):
            return LogConfig()
        formatter = str(section.get("formatter", "text")).strip().lower()
        fields = section.get("fields")
        return LogConfig(
            formatter="json" if formatter in ("json", "logstash") else "text",
            fields=dict(fields) if isinstance(fields, dict) else {},
        )
    except Exception:  # the error being reported says what is wrong; text it is
        return LogConfig()
