"""SIGTERM while an upload is streaming: the request in flight finishes (or, past
``http.draintimeout``, is cut), and either way the client resumes the upload on the restarted
server and completes it with the right digest."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import WharfServer
from tests.support.urls import with_query

pytestmark = [pytest.mark.server, pytest.mark.slow]

CHUNK = 256 << 10


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _slow_body(server: WharfServer, data: bytes, pause: float) -> Iterator[bytes]:
    """The body of a long PATCH; the server is told to stop a quarter of the way in."""
    for index in range(0, len(data), CHUNK):
        if index == len(data) // 4:
            assert server.process is not None
            os.killpg(server.process.pid, signal.SIGTERM)
        time.sleep(pause)
        yield data[index : index + CHUNK]


def _restart(server: WharfServer) -> None:
    assert server.process is not None
    assert server.process.wait(30) == 0
    server.process = None
    server.start()


def _resume(server: WharfServer, location: str, data: bytes) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        status = http.get(location)
        assert status.status_code == 204
        received = int(status.headers["Range"].split("-")[1]) + 1
        location = status.headers["Location"]
        if received < len(data):
            more = http.patch(
                location,
                content=data[received:],
                headers={"Content-Range": f"{received}-{len(data) - 1}"},
            )
            assert more.status_code == 202, more.text
            location = more.headers["Location"]
        done = http.put(with_query(location, digest=_digest(data)))
        assert done.status_code == 201, done.text
        assert http.get(f"/v2/stopping/blobs/{_digest(data)}").content == data


@pytest.mark.parametrize("runner", ["granian", "uvicorn"])
def test_the_request_in_flight_finishes(runner: str) -> None:
    data = os.urandom(4 << 20)
    with WharfServer(workers=2, config={"http": {"server": runner}}) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            location = http.post("/v2/stopping/blobs/uploads/").headers["Location"]
            response = http.patch(location, content=_slow_body(server, data, 0.05))
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{len(data) - 1}"
        _restart(server)
        _resume(server, location, data)


@pytest.mark.parametrize("runner", ["granian", "uvicorn"])
def test_past_the_drain_timeout_the_upload_is_cut_and_stays_resumable(runner: str) -> None:
    data = os.urandom(4 << 20)
    config = {"http": {"draintimeout": "1s", "server": runner}}
    with WharfServer(workers=1, config=config) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            location = http.post("/v2/stopping/blobs/uploads/").headers["Location"]
            if runner == "granian":  # the worker ends: cut without an answer
                with pytest.raises(httpx.TransportError):
                    http.patch(location, content=_slow_body(server, data, 0.3))
            else:  # the request is cancelled and told why
                response = http.patch(location, content=_slow_body(server, data, 0.3))
                assert response.status_code == 503, response.text
                assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        _restart(server)
        _resume(server, location, data)
