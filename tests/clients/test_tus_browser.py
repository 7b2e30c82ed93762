"""tus-js-client in headless Chromium, uploading cross-origin to wharf: the page is served from
one origin and uploads to wharf on another, so the browser itself enforces CORS (preflights,
exposed headers). An origin wharf does not allow gets nothing through."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import binary
from tests.support.server import WharfServer

oras_provider = pytest.importorskip("oras.provider")

pytestmark = [pytest.mark.client, pytest.mark.server]

PAGE = Path(__file__).with_name("tus") / "browser.html"
TUS_JS = Path(__file__).resolve().parents[2] / ".ci/node/node_modules/tus-js-client/dist/tus.min.js"
SIZE = 300_000


def _browser() -> str:
    found = binary("chromium")
    if found is None or not TUS_JS.is_file():
        if os.environ.get("CI"):
            pytest.fail("chromium (Debian) or tus-js-client (npm, .ci/node) missing")
        pytest.skip("chromium (Debian) or tus-js-client (npm, .ci/node) missing")
    return found


class _Origin:
    """The page's origin: serves the page and tus-js-client, and takes the page's report."""

    def __init__(self) -> None:
        self.results: queue.Queue[dict[str, Any]] = queue.Queue()
        results = self.results

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                files = {
                    "/index.html": (PAGE, "text/html"),
                    "/tus.min.js": (TUS_JS, "text/javascript"),
                }
                if path not in files:
                    self.send_error(404)
                    return
                body = files[path][0].read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", files[path][1])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                results.put(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin() -> Iterator[_Origin]:
    served = _Origin()
    try:
        yield served
    finally:
        served.close()


def _upload_in_browser(origin: _Origin, server: WharfServer, tag: str, tmp: Path) -> dict[str, Any]:
    query = (
        f"endpoint={server.url}/tus/&size={SIZE}&chunk=100000&repository=browser/files&tag={tag}"
    )
    command = [
        _browser(),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp / 'profile'}",
        f"{origin.url}/index.html?{query}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return origin.results.get(timeout=60)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_cross_origin_upload_from_chromium(origin: _Origin, tmp_path: Path) -> None:
    expected = bytes((i * 31) % 251 for i in range(SIZE))
    cors = {"alloworigins": [origin.url], "maxage": "10m"}
    section = {"filesystem": {"rootdirectory": str(tmp_path / "data")}}
    server = WharfServer(storage=section, config={"tus": {"enabled": True, "cors": cors}})
    with server:
        result = _upload_in_browser(origin, server, "v1", tmp_path / "allowed")
        assert "error" not in result, result
        assert result["url"].startswith(f"{server.url}/tus/")

        registry = oras_provider.Registry(hostname=server.host, insecure=True)
        pulled = registry.pull(f"{server.host}/browser/files:v1", outdir=str(tmp_path / "out"))
        assert [Path(path).name for path in pulled] == ["browser.bin"]
        assert (tmp_path / "out" / "browser.bin").read_bytes() == expected

    other = {"alloworigins": ["http://elsewhere.example"]}
    server = WharfServer(storage=section, config={"tus": {"enabled": True, "cors": other}})
    with server:
        refused = _upload_in_browser(origin, server, "v2", tmp_path / "refused")
        assert "error" in refused, refused
