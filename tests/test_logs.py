"""Log lines: text or JSON, static fields, level mapping."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wharf.config.model import LogConfig
from wharf.logs import JSONFormatter, TextFormatter, level_number, logging_config

SRC = Path(__file__).resolve().parents[1] / "src"


def record(
    message: str = "hello %s", level: int = logging.WARNING, **extra: object
) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {"name": "wharf.test", "msg": message, "args": ("world",), "levelno": level}
    )
    made.levelname = logging.getLevelName(level)
    made.__dict__.update(extra)
    return made


def test_text_line() -> None:
    line = TextFormatter({"service": "registry"}).format(record(request_id="r1"))
    assert line.endswith(" warn  wharf.test: hello world service=registry request_id=r1")
    assert line[:4].isdigit()
    assert line[23] == "Z"


def test_json_line() -> None:
    line = JSONFormatter({"service": "registry"}).format(
        record(level=logging.ERROR, request_id="r1")
    )
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["logger"] == "wharf.test"
    assert entry["msg"] == "hello world"
    assert entry["service"] == "registry"
    assert entry["request_id"] == "r1"
    assert entry["time"].endswith("Z")


def test_json_line_with_an_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = record()
        made.exc_info = sys.exc_info()
    entry = json.loads(JSONFormatter().format(made))
    assert "ValueError: boom" in entry["exc"]


@pytest.mark.parametrize(
    ("level", "number"),
    [
        ("error", logging.ERROR),
        ("warn", logging.WARNING),
        ("info", logging.INFO),
        ("debug", logging.DEBUG),
    ],
)
def test_levels(level: str, number: int) -> None:
    assert level_number(level) == number
    document = logging_config(LogConfig(level=level))
    assert document["root"]["level"] == number
    assert document["loggers"]["_granian"]["level"] == number


def test_setup_logging_writes_json_lines_to_stderr() -> None:
    script = textwrap.dedent(
        """\
        import logging
        from wharf.config.model import LogConfig
        from wharf.logs import setup_logging
        setup_logging(LogConfig(level="info", formatter="json", fields={"service": "registry"}))
        logging.getLogger("wharf").debug("hidden")
        logging.getLogger("wharf").info("shown")
        logging.getLogger("uvicorn.error").warning("from the server")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout == ""
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [entry["msg"] for entry in entries] == ["shown", "from the server"]
    assert {entry["service"] for entry in entries} == {"registry"}
