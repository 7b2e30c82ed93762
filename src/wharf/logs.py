"""Logging set-up from ``log:``: one line per record on stderr, as text or as JSON.

The same ``dictConfig`` is handed to the HTTP server (granian or uvicorn), so that its own
lines and those of every worker process come out in the same format.

Messages and fields carry what clients sent (paths arrive percent-decoded, so ``%0d%0a``
is a real line break by then): both formatters escape every character that is not
printable, so that no request can end a line, forge the next one or hide text from the
terminal reading the log.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

from wharf.config.model import LogConfig
from wharf.observability.context import CURRENT

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


_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_character(character: str) -> str:
    named = _NAMED_ESCAPES.get(character)
    if named is not None:
        return named
    code = ord(character)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _escape(text: str) -> str:
    """``text`` with its backslashes and unprintable characters (controls, line and
    paragraph separators, format characters, lone surrogates) written as Python escapes."""
    if text.isprintable() and "\\" not in text:
        return text  # nearly every line: two scans in C
    return "".join(c if c.isprintable() and c != "\\" else _escape_character(c) for c in text)


def _field(value: object) -> str:
    """A ``key=value`` value, quoted as logfmt does when it would otherwise run into the
    next field."""
    if type(value) is int or type(value) is float:
        return str(value)  # the access log's counters: nothing to escape or quote
    text = _escape(value if isinstance(value, str) else str(value))
    if not text or " " in text or '"' in text or "=" in text:
        return '"' + text.replace('"', '\\"') + '"'
    return text


def _json_escape(line: str) -> str:
    # json.dumps already escapes C0 controls, quotes and backslashes; what it leaves (DEL,
    # C1 controls, U+2028 and the like) can only stand inside strings, where \u is valid.
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else _json_unicode(c) for c in line)


def _json_unicode(character: str) -> str:
    code = ord(character)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


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
    # Every line logged while a request is served names it, whoever logs it, and its trace.
    info = CURRENT.get()
    if info is not None:
        fields.setdefault("request_id", info.id)
        if info.trace_id is not None:
            fields.setdefault("trace_id", info.trace_id)
            fields.setdefault("span_id", info.span_id)
    return fields


class TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z info  wharf.cli: message key=value``."""

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        message = _escape(record.getMessage())
        line = f"{_timestamp(record)} {_level_name(record):5} {record.name}: {message}"
        pairs = {**self.fields, **_extras(record)}
        if pairs:
            line += " " + " ".join(f"{key}={_field(value)}" for key, value in pairs.items())
        if record.exc_info:
            # A traceback keeps its lines, each indented: whatever its messages hold, no
            # line of it starts as a record does.
            for part in self.formatException(record.exc_info).split("\n"):
                line += "\n  " + _escape(part)
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
        return _json_escape(json.dumps(entry, default=str, ensure_ascii=False))


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
