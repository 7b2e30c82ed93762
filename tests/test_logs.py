"""Log lines: text or JSON, static fields, level mapping."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.server import WharfServer
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


# --- what clients send reaches lines only escaped ----------------------------------------

HOSTILE = "/v2/a/manifests/bad\r\nX:1\x00\x1b[2J\x7f\x85\u2028\u202e\udcff\U000e0001\\"
HOSTILE_ESCAPED = (
    "/v2/a/manifests/bad\\r\\nX:1\\x00\\x1b[2J\\x7f\\x85\\u2028\\u202e\\udcff\\U000e0001\\\\"
)


def access_record(path: str, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {
            "name": "wharf.access",
            "msg": "%s %s %d",
            "args": ("GET", path, 404),
            "levelno": logging.INFO,
            "levelname": "INFO",
        }
    )
    made.__dict__.update({"method": "GET", "path": path, "status": 404, **extra})
    return made


def test_text_lines_escape_what_is_not_printable() -> None:
    line = TextFormatter().format(access_record(HOSTILE))
    assert line.isprintable()
    assert line.endswith(f"GET {HOSTILE_ESCAPED} 404 method=GET path={HOSTILE_ESCAPED} status=404")


def test_text_fields_that_would_run_into_the_next_are_quoted() -> None:
    line = TextFormatter({"empty": ""}).format(access_record('/v2/a b/x status=200 "'))
    assert 'path="/v2/a b/x status=200 \\"" status=404' in line
    assert 'empty=""' in line


def test_a_traceback_keeps_its_lines_indented_and_escaped() -> None:
    try:
        raise ValueError("bad path\r\n2026-01-02T03:04:05.678Z info  wharf.access: forged")
    except ValueError:
        made = access_record("/v2/x")
        made.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(made).split("\n")
    assert first.isprintable()
    assert rest
    assert all(line.startswith("  ") and line.isprintable() for line in rest)
    assert "  ValueError: bad path\\r" in rest
    assert "  2026-01-02T03:04:05.678Z info  wharf.access: forged" in rest


def test_json_lines_escape_what_is_not_printable() -> None:
    line = JSONFormatter().format(access_record(HOSTILE))
    assert line.isprintable()
    assert "bad\\r\\nX:1\\u0000\\u001b[2J\\u007f\\u0085\\u2028\\u202e\\udcff" in line
    entry = json.loads(line)
    assert entry["path"] == HOSTILE
    assert entry["msg"] == f"GET {HOSTILE} 404"


@settings(max_examples=300, deadline=None)
@given(path=st.text(), extra=st.text())
def test_no_text_reaches_a_line_unescaped(path: str, extra: str) -> None:
    text = TextFormatter({"service": extra}).format(access_record(path, user=extra))
    assert text.isprintable()
    assert "\n" not in text
    line = JSONFormatter({"service": extra}).format(access_record(path, user=extra))
    assert line.isprintable()
    entry = json.loads(line)
    assert (entry["path"], entry["user"], entry["service"]) == (path, extra, extra)


# --- a real server: hostile paths answered cleanly, logged escaped -------------------------

#: Requests whose paths hold, once percent-decoded, line breaks and NULs; what each is answered.
HOSTILE_REQUESTS = [
    ("PUT", "/v2/seed/app/manifests/bad%0d%0aX:1", 400, "TAG_INVALID"),
    ("GET", "/v2/seed/app/manifests/bad%0d%0aX:1", 404, "MANIFEST_UNKNOWN"),
    ("DELETE", "/v2/seed/app/manifests/bad%0d%0aX:1", 404, "MANIFEST_UNKNOWN"),
    ("GET", "/v2/seed/app/manifests/bad%00X", 404, "MANIFEST_UNKNOWN"),
    ("GET", "/v2/seed/app/blobs/sha256:%0d%0a%00", 400, "DIGEST_INVALID"),
    ("GET", "/v2/seed/app/referrers/bad%0d%0aX:1", 400, "DIGEST_INVALID"),
    ("GET", "/v2/se%0d%0aed/app/tags/list", 400, "NAME_INVALID"),
    ("POST", "/v2/seed/app/blobs/uploads/?digest=bad%0d%0aX:1%00", 400, "DIGEST_INVALID"),
]


def _raw_request(host: str, method: str, target: str) -> tuple[int, list[bytes], bytes]:
    """Send one request exactly as written; the status, the header lines and the body."""
    address, _, port = host.rpartition(":")
    body = b"{}" if method in ("PUT", "POST") else b""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
        f"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((address, int(port)), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        received = b""
        while more := connection.recv(65536):
            received += more
    header_block, _, answer = received.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.split(b"\r\n")
    return int(status_line.split()[1]), header_lines, answer


def _access_lines(log: str, formatter: str) -> list[str]:
    """The access log's lines of the hostile requests (not the start's probe of /v2/)."""
    marker = '"logger": "wharf.access"' if formatter == "json" else " wharf.access: "
    return [line for line in log.split("\n") if marker in line and "/v2/se" in line]


@pytest.mark.server
@pytest.mark.parametrize("http_server", ["uvicorn", "granian"])
@pytest.mark.parametrize("formatter", ["text", "json"])
def test_a_real_server_answers_and_logs_hostile_paths_cleanly(
    formatter: str, http_server: str
) -> None:
    config = {"log": {"level": "info", "formatter": formatter}, "http": {"server": http_server}}
    with WharfServer(storage={"inmemory": {}}, config=config) as server:
        for method, target, status, code in HOSTILE_REQUESTS:
            answered, header_lines, body = _raw_request(server.host, method, target)
            assert answered == status, (method, target, body)
            assert [error["code"] for error in json.loads(body)["errors"]] == [code]
            for header in header_lines:
                # Every byte of every header line printable ASCII (tabs aside).
                assert all(32 <= byte < 127 or byte == 9 for byte in header), header
        deadline = time.monotonic() + 10
        while len(_access_lines(server.log(), formatter)) < len(HOSTILE_REQUESTS):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        raw = server.log_path.read_bytes()
    assert b"\r" not in raw
    assert not any((byte < 32 and byte not in b"\n") or byte == 127 for byte in raw)
    text = raw.decode()
    assert all(line.isprintable() for line in text.split("\n"))
    if formatter == "json":
        paths = {entry["path"] for entry in map(json.loads, _access_lines(text, formatter))}
        assert "/v2/seed/app/manifests/bad\r\nX:1" in paths
        assert "/v2/seed/app/manifests/bad\x00X" in paths
    else:
        assert "path=/v2/seed/app/manifests/bad\\r\\nX:1 " in text
        assert "path=/v2/seed/app/manifests/bad\\x00X " in text
