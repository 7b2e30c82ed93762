"""Logging set-up from ``log:``: one line per record on stderr, as text or as JSON.

The same ``dictConfig`` is handed to the HTTP server (granian or uvicorn), so that its own
lines and those of every worker process come out in the same format.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

from wharf.config.model import LogConfig
from wharf.observability.context import current_request_id

__all__ = ["JSONFormatter", "TextFormatter", "level_number", "logging_config", "setup_logging"]

_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
#: Loggers of the servers we run, routed to our handler instead of their own.
_SERVER_LOGGERS = ("_granian", "granian.access", "uvicorn", "uvicorn.error", "uvicorn.access")
#: LogRecord attributes that are not user-supplied ``extra=`` fields (uvicorn adds the last).
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


def level_number(level: str) -> int:
    return _LEVELS[level]


#: The last whole second formatted, as (second, text): every line of a busy second shares it.
_second: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    global _second
    whole = int(record.created)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int(record.msecs):03d}Z"


def _level_name(record: logging.LogRecord) -> str:
    return "warn" if record.levelno == logging.WARNING else record.levelname.lower()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields = {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }
    # Every line logged while a request is served names it, whoever logs it.
    request_id = current_request_id()
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    return fields


class TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z info  wharf.cli: message key=value``."""

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {_level_name(record):5} {record.name}: {record.getMessage()}"
        pairs = {**self.fields, **_extras(record)}
        if pairs:
            line += " " + " ".join(f"{key}={value}" for key, value in pairs.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``msg``, fields, ``exc``."""

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": _level_name(record),
            "logger": record.name,
            "msg": record.getMessage(),
            **self.fields,
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(log: LogConfig) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document for ``log``; usable in any process."""
    formatter = JSONFormatter if log.formatter == "json" else TextFormatter
    level = level_number(log.level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "wharf": {
                "()": f"{formatter.__module__}.{formatter.__qualname__}",
                "fields": log.fields,
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "wharf",
            }
        },
        "loggers": {
            name: {"handlers": [], "level": level, "propagate": True} for name in _SERVER_LOGGERS
        },
        "root": {"handlers": ["stderr"], "level": level},
    }


def setup_logging(log: LogConfig) -> dict[str, Any]:
    """Configure this process's logging; returns the document for the server to reuse."""
    document = logging_config(log)
    logging.config.dictConfig(document)
    return document
