"""skopeo pulls through wharf's storage middleware: blob GETs answer 307 to the host the
middleware names, a real HTTP server there serves the bytes, and the image arrives whole.

- ``redirect`` on filesystem storage: a static file server over the storage's root
  directory serves ``<baseurl>/docker/registry/v2/blobs/.../data``;
- ``rewrite`` on S3 (moto): the presigned URLs are sent to a proxy on another port, which
  forwards them to moto.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import Skopeo, binary
from tests.support.faultproxy import FaultProxy
from tests.support.images import BuiltImage, build_image, read_layout_index, sha256_digest
from tests.support.s3servers import S3Server
from tests.support.server import WharfServer

pytestmark = [
    pytest.mark.client,
    pytest.mark.server,
    pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed"),
]

PREFIX = "/files"


class _FileServer(http.server.ThreadingHTTPServer):
    requests: list[tuple[str, str, int]]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files of a directory under PREFIX; every request recorded."""

    server: _FileServer

    def translate_path(self, path: str) -> str:
        if not path.startswith(PREFIX + "/"):
            return "/nonexistent"
        return super().translate_path(path[len(PREFIX) :])

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.requests.append((self.command, self.path, int(code)))

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[_FileServer, Path]]:
    root = tmp_path / "data"
    root.mkdir()
    server = _FileServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _push_and_pull(tmp_path: Path, registry: WharfServer) -> BuiltImage:
    image = build_image(tmp_path / "source", tag="v1", layers=3, layer_size=100_000)
    skopeo = Skopeo(tmp_path / "skopeo", server=registry)
    remote = f"docker://{registry.host}/mw/image:v1"
    skopeo.copy(image.source, remote)
    pulled = tmp_path / "pulled"
    skopeo.copy(remote, f"oci:{pulled}:v1")
    (entry,) = read_layout_index(pulled)["manifests"]
    assert entry["digest"] == image.digest
    for digest in image.blob_digests:
        data = (pulled / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert sha256_digest(data) == digest
    return image


def _blob_path(digest: str) -> str:
    hex_digest = digest.removeprefix("sha256:")
    return f"/docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"


def test_pull_through_redirect_reaches_the_file_server(
    tmp_path: Path, file_server: tuple[_FileServer, Path]
) -> None:
    server, root = file_server
    base = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    registry = WharfServer(
        storage={"filesystem": {"rootdirectory": str(root)}},
        config={"middleware": {"storage": [{"name": "redirect", "options": {"baseurl": base}}]}},
    )
    with registry:
        image = _push_and_pull(tmp_path, registry)
    fetched = {path for method, path, status in server.requests if status == 200}
    for digest in image.blob_digests:
        assert PREFIX + _blob_path(digest) in fetched, server.requests
    assert all(method in ("GET", "HEAD") for method, _, _ in server.requests)


@pytest.mark.s3
def test_pull_through_rewrite_reaches_the_proxy(tmp_path: Path, moto_server: S3Server) -> None:
    with FaultProxy(moto_server.endpoint) as proxy:
        host = proxy.endpoint.removeprefix("http://")
        parameters = moto_server.fresh_parameters()
        registry = WharfServer(
            storage={"s3": parameters},
            config={
                "middleware": {
                    "storage": [{"name": "rewrite", "options": {"scheme": "http", "host": host}}]
                }
            },
        )
        with registry:
            image = _push_and_pull(tmp_path, registry)
        gets = {r.key for r in proxy.recorded() if r.operation == "GetObject" and r.status == 200}
    for digest in image.blob_digests:
        assert _blob_path(digest).lstrip("/") in gets, gets
