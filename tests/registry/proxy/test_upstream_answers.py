"""What a mirror makes of an upstream's answers, against a scripted upstream: a real HTTP
server on loopback that answers the registry API as told (slowly, with 429 or 5xx, with a
token service that counts the tokens it issues)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import WharfServer
from wharf.config.mirrors import MirrorConfig
from wharf.config.model import StorageConfig
from wharf.registry.check import CheckReport, check_storage
from wharf.storage.driver.factory import create_driver

pytestmark = [pytest.mark.server]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Script:
    """What the upstream answers: blobs and manifests by digest, a tag, failures to inject,
    and how slowly blob bytes come."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    status: int | None = None  # answered to every registry request when set
    retry_after: str | None = None
    trickle: float = 0.0  # seconds between the pieces of a blob
    gzip_blobs: bool = False  # blob bodies sent with Content-Encoding: gzip
    token_required: bool = False
    tokens_issued: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, auth


class ScriptedUpstream:
    def __init__(self, script: Script) -> None:
        self.script = script
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                upstream.handle(self)

            do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def handle(self, request: Any) -> None:
        script = self.script
        path = request.path.partition("?")[0]
        authorization = request.headers.get("Authorization", "")
        script.requests.append((request.command, path, authorization))
        if path == "/token":
            script.tokens_issued += 1
            body = json.dumps({"token": f"t{script.tokens_issued}", "expires_in": 300}).encode()
            request._send(200, body, Content_Type="application/json")
            return
        if script.token_required and not authorization.startswith("Bearer t"):
            challenge = f'Bearer realm="{self.url}/token",service="scripted"'
            request._send(401, b"{}", WWW_Authenticate=challenge)
            return
        if script.status is not None:
            headers = {"Retry_After": script.retry_after} if script.retry_after else {}
            request._send(script.status, b'{"errors":[]}', **headers)
            return
        kind, _, reference = path.rpartition("/")
        if kind.endswith("/manifests"):
            digest = script.tags.get(reference, reference)
            body = script.manifests.get(digest)
            if body is None:
                request._send(404, b"{}")
                return
            media_type = json.loads(body).get("mediaType", OCI_MANIFEST)
            request._send(200, body, Content_Type=media_type, Docker_Content_Digest=digest)
            return
        if kind.endswith("/blobs") and reference in script.blobs:
            blob = script.blobs[reference]
            if script.gzip_blobs and request.command == "GET":
                encoded = gzip.compress(blob)
                request._send(
                    200, encoded, Content_Encoding="gzip", Docker_Content_Digest=reference
                )
                return
            if request.command == "HEAD" or not script.trickle:
                request._send(200, blob, Docker_Content_Digest=reference)
                return
            request.send_response(200)
            request.send_header("Content-Length", str(len(blob)))
            request.end_headers()
            step = -(-len(blob) // 5)
            for start in range(0, len(blob), step):
                request.wfile.write(blob[start : start + step])
                request.wfile.flush()
                time.sleep(script.trickle)
            return
        request._send(404, b"{}")

    def __enter__(self) -> ScriptedUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def script() -> Script:
    config = json.dumps({"os": "linux"}).encode()
    layer = bytes(range(256)) * 8192  # 2 MiB
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return Script(
        blobs={_digest(config): config, _digest(layer): layer},
        manifests={_digest(manifest): manifest},
        tags={"v1": _digest(manifest)},
    )


@pytest.fixture
def mirror(script: Script) -> Iterator[tuple[WharfServer, ScriptedUpstream]]:
    with ScriptedUpstream(script) as upstream:
        config = {"mirrors": [{"prefix": "up", "url": upstream.url, "tagcheck": "0s"}]}
        with WharfServer(workers=1, config=config) as server:
            yield server, upstream


def _layer(script: Script) -> tuple[str, bytes]:
    return max(script.blobs.items(), key=lambda item: len(item[1]))


def test_the_first_client_gets_bytes_before_the_whole_blob_is_fetched(
    mirror: tuple[WharfServer, ScriptedUpstream], script: Script
) -> None:
    server, _ = mirror
    script.trickle = 0.4  # five pieces: two seconds in all
    digest, blob = _layer(script)
    started = time.monotonic()
    received = b""
    first_byte = None
    with httpx.stream("GET", f"{server.url}/v2/up/app/blobs/{digest}", timeout=30) as response:
        assert response.status_code == 200
        for piece in response.iter_bytes():
            if first_byte is None:
                first_byte = time.monotonic() - started
            received += piece
    total = time.monotonic() - started
    assert received == blob
    assert first_byte is not None
    assert first_byte < total / 2, (first_byte, total)


def test_a_blob_sent_content_encoded_is_stored_as_the_blob(
    mirror: tuple[WharfServer, ScriptedUpstream], script: Script
) -> None:
    server, _ = mirror
    script.gzip_blobs = True  # as a CDN may compress what it sends
    digest, blob = _layer(script)
    for _ in range(2):  # fetched, then from the cache
        response = httpx.get(f"{server.url}/v2/up/app/blobs/{digest}", timeout=30)
        assert response.status_code == 200
        assert response.content == blob
        assert response.headers["docker-content-digest"] == digest


@pytest.mark.parametrize(
    ("status", "code"), [(429, "TOOMANYREQUESTS"), (500, "UNAVAILABLE"), (503, "UNAVAILABLE")]
)
def test_upstream_failures_are_the_specs_errors(
    mirror: tuple[WharfServer, ScriptedUpstream], script: Script, status: int, code: str
) -> None:
    server, _ = mirror
    script.status = status
    script.retry_after = "7" if status == 429 else None
    with httpx.Client(base_url=server.url) as http:
        for path in ("/v2/up/app/manifests/v1", f"/v2/up/app/blobs/{_layer(script)[0]}"):
            answer = http.get(path)
            assert answer.status_code == (429 if status == 429 else 503), answer.text
            assert answer.json()["errors"][0]["code"] == code
            if status == 429:
                assert answer.headers["Retry-After"] == "7"


def test_a_tag_is_served_from_the_cache_while_the_upstream_fails(
    mirror: tuple[WharfServer, ScriptedUpstream], script: Script
) -> None:
    server, _ = mirror
    with httpx.Client(base_url=server.url) as http:
        first = http.get("/v2/up/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert first.status_code == 200
        script.status = 503
        again = http.get("/v2/up/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert again.status_code == 200
        assert again.content == first.content


def test_an_anonymous_token_is_fetched_once_and_reused(
    mirror: tuple[WharfServer, ScriptedUpstream], script: Script
) -> None:
    server, _ = mirror
    script.token_required = True
    with httpx.Client(base_url=server.url) as http:
        for digest in script.blobs:
            assert http.get(f"/v2/up/app/blobs/{digest}").status_code == 200
        assert http.get("/v2/up/app/manifests/v1").status_code == 200
    assert script.tokens_issued == 1
    # No credentials configured: the token was asked for anonymously.
    token_requests = [r for r in script.requests if r[1] == "/token"]
    assert token_requests == [("GET", "/token", "")]


def test_ns_only_chooses_among_configured_mirrors(
    mirror: tuple[WharfServer, ScriptedUpstream], script: Script
) -> None:
    server, upstream = mirror
    with httpx.Client(base_url=server.url) as http:
        elsewhere = http.get("/v2/app/manifests/v1", params={"ns": "127.0.0.1:1"})
        assert elsewhere.status_code == 404  # a local repository: nothing fetched anywhere
        hostile = http.get("/v2/app/manifests/v1", params={"ns": upstream.url})
        assert hostile.status_code == 404
    assert not [r for r in script.requests if "/v2/app/" in r[1]]


def test_pushes_to_a_mirror_are_refused(mirror: tuple[WharfServer, ScriptedUpstream]) -> None:
    server, _ = mirror
    with httpx.Client(base_url=server.url) as http:
        for method, path in (
            ("POST", "/v2/up/app/blobs/uploads/"),
            ("PUT", "/v2/up/app/manifests/v2"),
            ("DELETE", "/v2/up/app/manifests/v1"),
        ):
            answer = http.request(method, path, content=b"{}")
            assert answer.status_code == 405, (method, path, answer.text)
            assert answer.json()["errors"][0]["code"] == "UNSUPPORTED"
        local = http.post("/v2/local/app/blobs/uploads/")
        assert local.status_code == 202  # outside every mirror: an ordinary repository


@pytest.mark.parametrize(
    "validation",
    [
        {},
        {"manifests": {"indexes": {"platforms": "all"}, "images": {"layers": "all"}}},
        {
            "manifests": {
                "indexes": {
                    "platforms": "list",
                    "platformlist": [{"os": "linux", "architecture": "arm64"}],
                }
            }
        },
    ],
    ids=["default", "all", "list-arm64"],
)
def test_an_index_is_cached_without_the_platforms_never_pulled(
    script: Script, validation: dict[str, Any]
) -> None:
    """The mirror stores an index as soon as a client asks for it, and of its images only
    those pulled: whatever ``validation`` asks of a push, and ``wharf check`` finds nothing
    missing there."""
    image = next(iter(script.manifests))
    other = json.loads(script.manifests[image])
    other["annotations"] = {"platform": "arm64, never pulled"}
    other_body = json.dumps(other).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(body),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for digest, body, arch in (
                    (image, script.manifests[image], "amd64"),
                    (_digest(other_body), other_body, "arm64"),
                )
            ],
        }
    ).encode()
    script.manifests[_digest(other_body)] = other_body
    script.manifests[_digest(index)] = index
    script.tags["multi"] = _digest(index)
    with ScriptedUpstream(script) as upstream:
        config = {
            "mirrors": [{"prefix": "up", "url": upstream.url, "tagcheck": "0s"}],
            "validation": validation,
        }
        with (
            WharfServer(workers=1, config=config) as server,
            httpx.Client(base_url=server.url) as http,
        ):
            accept = {"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
            got = http.get("/v2/up/app/manifests/multi", headers=accept)
            assert got.status_code == 200, got.text
            assert got.content == index
            assert http.get(f"/v2/up/app/manifests/{image}", headers=accept).status_code == 200
            fetched = {path for method, path, _ in script.requests if method == "GET"}
            assert f"/v2/app/manifests/{_digest(other_body)}" not in fetched
            revisions = server.root / "docker/registry/v2/repositories/up/app/_manifests/revisions"
            stored = {path.name for path in revisions.glob("sha256/*")}
            assert stored == {_digest(index)[7:], image[7:]}
            report = _check(server.root, MirrorConfig(url=upstream.url, prefix="up"))
            assert report.clean, [problem.line() for problem in report.problems]


def _check(root: Path, mirror: MirrorConfig) -> CheckReport:
    """``wharf check`` over the mirror's storage, knowing it mirrors."""

    async def run() -> CheckReport:
        driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(root)}))
        try:
            return await check_storage(driver, mirrors=(mirror,), recheck_delay=0)
        finally:
            await driver.close()

    return asyncio.run(run())
