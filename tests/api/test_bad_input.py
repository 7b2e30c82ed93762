"""Hostile input against the in-process app: names, tags, digests, Content-Range, Range,
query parameters, manifest JSON, Authorization headers, control characters and stalled bodies.

Every property is the same: never a 500; an error is one of the codes the spec gives for
that input; a refused request leaves the stored data exactly as it was; and nothing the
client sent reaches a response header or a log line unescaped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.helpers import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    push_image,
    sha256,
)
from tests.auth.support import write_htpasswd
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.logs import JSONFormatter, TextFormatter

T = TypeVar("T")

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REPO = "seed/app"
LAYER = b"seed layer " * 100
CONFIG = json.dumps({"architecture": "amd64", "os": "linux"}).encode()

# Error codes the distribution-spec (and Distribution) give for each kind of bad input.
NAME_CODES = {"NAME_INVALID", "NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"}
TAG_CODES = {"TAG_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_INVALID", "DIGEST_INVALID"}
DIGEST_CODES = {"DIGEST_INVALID", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "UNSUPPORTED"}
RANGE_CODES = {"RANGE_INVALID", "BLOB_UPLOAD_INVALID", "SIZE_INVALID"}
MANIFEST_CODES = {
    "MANIFEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "TAG_INVALID",
    "SIZE_INVALID",
    "DIGEST_INVALID",
}


@dataclass
class World:
    """One app with seeded content, driven from synchronous hypothesis tests."""

    runner: asyncio.Runner
    app: WharfApp
    client: httpx.AsyncClient
    manifest: bytes
    manifest_digest: str

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.runner.run(_wrap(awaitable))

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        return self.run(self.client.request(method, url, **options))

    def snapshot(self) -> dict[str, tuple[bool, str]]:
        """Every stored path with a digest of its content: what a refused request must keep."""

        async def walk() -> dict[str, tuple[bool, str]]:
            driver = self.app.registry.driver
            found: dict[str, tuple[bool, str]] = {}
            async for info in driver.walk("/"):
                if info.is_dir:
                    found[info.path] = (True, "")
                else:
                    content = await driver.get_content(info.path)
                    found[info.path] = (False, hashlib.sha256(content).hexdigest())
            return found

        return self.run(walk())

    def open_upload(self) -> str:
        response = self.request("POST", f"/v2/{REPO}/blobs/uploads/")
        assert response.status_code == 202
        return str(response.headers["Location"])


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


@pytest.fixture(scope="module", params=["inmemory", "filesystem"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    parameters: dict[str, Any] = {}
    if request.param == "filesystem":
        parameters["rootdirectory"] = str(tmp_path_factory.mktemp("bad-input"))
    config = Config(
        storage=StorageConfig(driver=request.param, parameters=parameters, delete_enabled=True),
        http=HTTPConfig(secret="test-secret"),
    )
    runner = asyncio.Runner()
    app = create_app(config)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wharf")

    async def seed() -> tuple[str, bytes]:
        for blob in (CONFIG, LAYER):
            response = await client.post(
                f"/v2/{REPO}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
            )
            assert response.status_code == 201
        return await push_image(client, REPO, "v1", seed="seed")

    digest, manifest = runner.run(seed())
    try:
        yield World(runner, app, client, manifest, digest)
    finally:
        runner.run(client.aclose())
        runner.run(app.aclose())
        runner.close()


def assert_clean_headers(response: httpx.Response) -> None:
    for name, value in response.headers.raw:
        for byte in name + value:
            assert 32 <= byte < 127 or byte == 9, (name, value)


def assert_clean_log_lines(records: list[logging.LogRecord]) -> None:
    """Each record, in both formats, is one printable line: what came in is escaped."""
    for made in records:
        text = TextFormatter().format(made)
        assert text.isprintable(), text
        entry = JSONFormatter().format(made)
        assert entry.isprintable(), entry
        json.loads(entry)


def check(
    world: World,
    response: httpx.Response,
    allowed: set[str],
    before: dict[str, tuple[bool, str]] | None = None,
) -> None:
    """The shared property: no 5xx, a spec code on errors, nothing changed when refused."""
    assert response.status_code < 500, response.text
    assert_clean_headers(response)
    if response.status_code >= 400 and response.request.method != "HEAD":
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            codes = {error["code"] for error in response.json()["errors"]}
            assert codes <= allowed, (codes, response.text)
        else:
            assert response.status_code == 404  # a path that is no endpoint
        if before is not None:
            assert world.snapshot() == before


# --- strategies ----------------------------------------------------------------------------

ANY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=0, max_size=300
)
NAME_ALPHABET = "abcz09._-/:%@+ ~!*'()?#AZ\u00e9\u2603"
NAMES = st.one_of(
    ANY_TEXT,
    st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=300),
    st.lists(
        st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)*", fullmatch=True), min_size=1, max_size=6
    ).map("/".join),
)
TAGS = st.one_of(ANY_TEXT, st.from_regex(r"[\w][\w.-]{0,140}", fullmatch=True))
HEX = "0123456789abcdefABCDEF"
DIGESTS = st.one_of(
    ANY_TEXT,
    st.builds(
        lambda alg, hex_: f"{alg}:{hex_}",
        st.sampled_from(["sha256", "sha512", "sha384", "md5", "SHA256", "", "sha256+b64"]),
        st.text(alphabet=HEX + "xyz=", min_size=0, max_size=140),
    ),
)
NUMBER = st.one_of(
    st.integers(min_value=-5, max_value=10**30).map(str),
    st.text(alphabet="0123456789-+ e.x", max_size=30),
)
CONTENT_RANGES = st.one_of(
    ANY_TEXT,
    st.builds(
        lambda unit, start, end, total: f"{unit}{start}-{end}{total}",
        st.sampled_from(["", "bytes ", "bytes=", "items "]),
        NUMBER,
        NUMBER,
        st.sampled_from(["", "/*", "/10", "/-1", "/x"]),
    ),
)
RANGES = st.one_of(
    ANY_TEXT,
    st.builds(
        lambda start, end, extra: f"bytes={start}-{end}{extra}",
        st.one_of(st.just(""), NUMBER),
        st.one_of(st.just(""), NUMBER),
        st.sampled_from(["", ",0-1", ", 5-", ";x"]),
    ),
)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    ANY_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "schemaVersion",
                    "mediaType",
                    "config",
                    "layers",
                    "manifests",
                    "subject",
                    "digest",
                    "size",
                    "annotations",
                    "artifactType",
                    "x",
                ]
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)
MEDIA_TYPES = st.one_of(
    st.sampled_from(
        [
            OCI_MANIFEST,
            OCI_INDEX,
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/json",
            "",
        ]
    ),
    ANY_TEXT,
)


def _valid_manifest(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, CONFIG),
        "layers": [descriptor(OCI_LAYER, LAYER)],
    }
    for key, value in changes.items():
        if value is _DROP:
            document.pop(key, None)
        else:
            document[key] = value
    return document


_DROP = object()
MUTATED_MANIFESTS = st.builds(
    lambda key, value: _valid_manifest(**{key: value}),
    st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "subject", "annotations"]),
    st.one_of(JSON_VALUES, st.just(_DROP)),
)


def _header(text: str) -> bytes:
    """A header value as raw bytes (UTF-8, which the app reads as Latin-1), minus the line
    breaks no HTTP parser would pass on."""
    return text.replace("\r", "").replace("\n", "").encode()


def _nested(depth: int) -> bytes:
    return b'{"schemaVersion":2,"x":' + b"[" * depth + b"]" * depth + b"}"


# --- properties ----------------------------------------------------------------------------


@SETTINGS
@given(name=NAMES, method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]))
def test_repository_names(world: World, name: str, method: str) -> None:
    before = world.snapshot()
    path = {
        "GET": f"/v2/{quote(name)}/tags/list",
        "HEAD": f"/v2/{quote(name)}/manifests/v1",
        "PUT": f"/v2/{quote(name)}/manifests/v1",
        "DELETE": f"/v2/{quote(name)}/manifests/v1",
        "POST": f"/v2/{quote(name)}/blobs/uploads/?digest={sha256(b'')}",
    }[method]
    content = b"" if method != "PUT" else world.manifest
    headers = {"Content-Type": OCI_MANIFEST} if method == "PUT" else {}
    response = world.request(method, path, content=content, headers=headers)
    check(world, response, NAME_CODES | {"MANIFEST_BLOB_UNKNOWN", "UNSUPPORTED"}, before)


@SETTINGS
@given(tag=TAGS, method=st.sampled_from(["GET", "PUT", "DELETE"]))
def test_tags(world: World, caplog: pytest.LogCaptureFixture, tag: str, method: str) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    before = world.snapshot()
    url = f"/v2/{REPO}/manifests/{quote(tag, safe='')}"
    if method == "PUT":
        response = world.request(
            method, url, content=world.manifest, headers={"Content-Type": OCI_MANIFEST}
        )
    else:
        response = world.request(method, url)
    check(world, response, TAG_CODES | {"UNSUPPORTED"}, before)
    assert_clean_log_lines(caplog.records)
    if method == "GET" and response.status_code == 200:
        assert response.content == world.manifest


@SETTINGS
@given(
    digest=DIGESTS,
    where=st.sampled_from(["blob", "blob-head", "blob-delete", "referrers", "manifest", "mount"]),
)
def test_digests(world: World, caplog: pytest.LogCaptureFixture, digest: str, where: str) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    before = world.snapshot()
    quoted = quote(digest, safe="")
    method, url, params = {
        "blob": ("GET", f"/v2/{REPO}/blobs/{quoted}", {}),
        "blob-head": ("HEAD", f"/v2/{REPO}/blobs/{quoted}", {}),
        "blob-delete": ("DELETE", f"/v2/{REPO}/blobs/{quoted}", {}),
        "referrers": ("GET", f"/v2/{REPO}/referrers/{quoted}", {}),
        "manifest": ("GET", f"/v2/{REPO}/manifests/{quoted}", {}),
        "mount": ("POST", "/v2/other/app/blobs/uploads/", {"mount": digest, "from": REPO}),
    }[where]
    response = world.request(method, url, params=params)
    allowed = DIGEST_CODES | {"NAME_INVALID", "TAG_INVALID", "BLOB_UPLOAD_INVALID"}
    if where == "mount":
        # A digest that cannot be mounted opens an upload instead, as the spec says.
        assert response.status_code == 202, response.text
        world.request("DELETE", response.headers["Location"])
        return
    check(world, response, allowed, before)
    assert_clean_log_lines(caplog.records)


@SETTINGS
@given(digest=DIGESTS, body=st.binary(max_size=64))
def test_upload_completion_digests(world: World, digest: str, body: bytes) -> None:
    location = world.open_upload()
    before = world.snapshot()
    response = world.request("PUT", location, params={"digest": digest}, content=body)
    if response.status_code == 201:
        assert response.headers["Docker-Content-Digest"] == sha256(body)
        return
    check(world, response, DIGEST_CODES | {"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN"})
    # A digest that does not parse changes nothing; one that mismatches ends the session.
    after = world.snapshot()
    if response.json()["errors"][0]["message"] != "provided digest did not match uploaded content":
        assert after == before
    else:
        assert set(after) <= set(before)
        assert not any("_uploads" in path and path not in before for path in after)
    world.request("DELETE", location)


@SETTINGS
@given(content_range=CONTENT_RANGES, body=st.binary(min_size=0, max_size=32))
def test_content_range(world: World, content_range: str, body: bytes) -> None:
    location = world.open_upload()
    world.request("PATCH", location, content=b"0123456789")  # the session holds 10 bytes
    before = world.snapshot()
    response = world.request(
        "PATCH",
        location,
        content=body,
        headers={
            "Content-Range": _header(content_range),
            "Content-Type": "application/octet-stream",
        },
    )
    if response.status_code == 202:
        start, _, end = response.headers["Range"].partition("-")
        assert (int(start), int(end)) == (0, 9 + len(body))
    else:
        check(world, response, RANGE_CODES | {"BLOB_UPLOAD_UNKNOWN"}, before)
    world.request("DELETE", location)


@SETTINGS
@given(range_header=RANGES)
def test_blob_ranges(world: World, range_header: str) -> None:
    response = world.request(
        "GET", f"/v2/{REPO}/blobs/{sha256(LAYER)}", headers={"Range": _header(range_header)}
    )
    check(world, response, {"RANGE_INVALID", "SIZE_INVALID"})
    if response.status_code == 206:
        first, last = (
            response.headers["Content-Range"].removeprefix("bytes ").split("/")[0].split("-")
        )
        assert response.content == LAYER[int(first) : int(last) + 1]
    elif response.status_code == 200:
        assert response.content == LAYER
    else:
        assert response.status_code in (416, 431)


@SETTINGS
@given(
    n=st.one_of(st.none(), NUMBER, ANY_TEXT),
    last=st.one_of(st.none(), ANY_TEXT),
    extra=st.integers(min_value=0, max_value=60),
    where=st.sampled_from([f"/v2/{REPO}/tags/list", "/v2/_catalog"]),
)
def test_query_parameters(
    world: World, n: str | None, last: str | None, extra: int, where: str
) -> None:
    params: list[tuple[str, str]] = [(f"p{i}", "x") for i in range(extra)]
    if n is not None:
        params.append(("n", n))
    if last is not None:
        params.append(("last", last))
    response = world.request("GET", where, params=params)
    check(world, response, {"PAGINATION_NUMBER_INVALID", "SIZE_INVALID", "UNSUPPORTED"})


def test_too_many_query_parameters(world: World) -> None:
    response = world.request("GET", f"/v2/{REPO}/tags/list", params=[("p", "x")] * 65)
    check(world, response, {"PAGINATION_NUMBER_INVALID", "SIZE_INVALID", "UNSUPPORTED"})


@SETTINGS
@given(
    document=st.one_of(JSON_VALUES, MUTATED_MANIFESTS),
    media_type=MEDIA_TYPES,
    tag=st.sampled_from(["v1", "fuzzed"]),
)
def test_manifest_json(world: World, document: Any, media_type: str, tag: str) -> None:
    before = world.snapshot()
    body = json.dumps(document).encode()
    response = world.request(
        "PUT",
        f"/v2/{REPO}/manifests/{tag}",
        content=body,
        headers={"Content-Type": _header(media_type)} if media_type else {},
    )
    if response.status_code == 201:
        # A valid manifest went in; put the seed back for the next example.
        world.request("DELETE", f"/v2/{REPO}/manifests/{response.headers['Docker-Content-Digest']}")
        world.request(
            "PUT",
            f"/v2/{REPO}/manifests/v1",
            content=world.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        return
    check(world, response, MANIFEST_CODES, before)


@SETTINGS
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.sampled_from([_nested(70), _nested(5000), b"\xef\xbb\xbf{}", b'{"a":1e999999}']),
        st.binary(max_size=200).map(lambda tail: b'{"schemaVersion":2,' + tail),
    )
)
def test_manifest_bytes(world: World, raw: bytes) -> None:
    before = world.snapshot()
    response = world.request(
        "PUT",
        f"/v2/{REPO}/manifests/fuzzed",
        content=raw,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code != 201
    check(world, response, MANIFEST_CODES, before)


def test_oversized_manifest(world: World) -> None:
    before = world.snapshot()
    body = b'{"schemaVersion":2,"x":"' + b"a" * (4 << 20) + b'"}'
    response = world.request(
        "PUT", f"/v2/{REPO}/manifests/big", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 413
    check(world, response, {"SIZE_INVALID"}, before)


# --- Authorization headers -----------------------------------------------------------------

AUTH_HEADERS = st.one_of(
    ANY_TEXT,
    st.builds(
        lambda scheme, rest: f"{scheme} {rest}",
        st.sampled_from(["Basic", "Bearer", "bearer", "BASIC", "Digest"]),
        st.one_of(
            st.text(
                alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=._-",
                max_size=400,
            ),
            st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),
        ),
    ),
)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("guarded")
    users = write_htpasswd(directory / "htpasswd", {"alice": "wonderland"})
    auth = {
        "token": {"realm": "https://registry.test/token", "service": "svc", "issuer": "wharf"},
        "tokenservice": {"users": str(users), "access": [{"repository": "**", "pull": ["*"]}]},
    }
    config = Config(
        storage=StorageConfig(driver="inmemory", parameters={}),
        http=HTTPConfig(secret="test-secret"),
        extra={"auth": auth},
    )
    runner = asyncio.Runner()
    app = create_app(config)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wharf")
    try:
        yield World(runner, app, client, b"", "")
    finally:
        runner.run(client.aclose())
        runner.run(app.aclose())
        runner.close()


@SETTINGS
@given(header=AUTH_HEADERS, where=st.sampled_from(["/v2/", f"/v2/{REPO}/tags/list", "/token"]))
def test_authorization_headers(guarded: World, header: str, where: str) -> None:
    response = guarded.request("GET", where, headers={"Authorization": _header(header)})
    assert response.status_code in (200, 400, 401), response.text
    if where != "/token":
        assert response.status_code == 401


# --- stalled bodies ------------------------------------------------------------------------


async def _stalled(app: WharfApp, method: str, path: str, query: bytes = b"") -> tuple[int, float]:
    """Send ``method path`` with a body that stops after a few bytes; the status and how
    long the app took to give up."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"wharf"), (b"content-type", b"application/octet-stream")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"partial", "more_body": True}
        await asyncio.sleep(3600)  # the client stalls
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    began = time.monotonic()
    await asyncio.wait_for(app(scope, receive, send), 10)
    return sent[0]["status"], time.monotonic() - began


@pytest.fixture
async def impatient() -> AsyncIterator[tuple[WharfApp, httpx.AsyncClient]]:
    config = Config(
        storage=StorageConfig(driver="inmemory", parameters={}),
        http=HTTPConfig(secret="test-secret", body_timeout=timedelta(seconds=0.2)),
    )
    app = create_app(config)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
            yield app, client
    finally:
        await app.aclose()


async def test_a_stalled_manifest_body_is_dropped_with_408(
    impatient: tuple[WharfApp, httpx.AsyncClient],
) -> None:
    app, _ = impatient
    status, took = await _stalled(app, "PUT", "/v2/slow/app/manifests/v1")
    assert status == 408
    assert took < 2


async def test_a_stalled_upload_frees_its_session(
    impatient: tuple[WharfApp, httpx.AsyncClient],
) -> None:
    app, client = impatient
    response = await client.post("/v2/slow/app/blobs/uploads/")
    location = httpx.URL(response.headers["Location"])
    _, took = await _stalled(app, "PATCH", location.path, location.query)
    assert took < 2
    # The session's lock was released: the upload goes on.
    response = await client.patch(str(location), content=b"more")
    assert response.status_code == 202, response.text


async def test_a_stalled_upload_is_answered_with_408(
    impatient: tuple[WharfApp, httpx.AsyncClient],
) -> None:
    app, client = impatient
    response = await client.post("/v2/slow/app/blobs/uploads/")
    location = httpx.URL(response.headers["Location"])
    status, _ = await _stalled(app, "PATCH", location.path, location.query)
    assert status == 408


def test_body_timeout_default() -> None:
    assert HTTPConfig().body_timeout == timedelta(seconds=60)


# --- control characters --------------------------------------------------------------------

# Paths arrive percent-decoded in the ASGI scope: ``%0d%0a`` is a real CR LF by then.
CONTROL_REQUESTS = [
    ("PUT", f"/v2/{REPO}/manifests/bad%0d%0aX:1", {}, 400, "TAG_INVALID"),
    ("PUT", f"/v2/{REPO}/manifests/x%7fy", {}, 400, "TAG_INVALID"),
    ("GET", f"/v2/{REPO}/manifests/bad%0d%0aX:1", {}, 404, "MANIFEST_UNKNOWN"),
    ("HEAD", f"/v2/{REPO}/manifests/bad%0d%0aX:1", {}, 404, None),
    ("DELETE", f"/v2/{REPO}/manifests/bad%0d%0aX:1", {}, 404, "MANIFEST_UNKNOWN"),
    ("GET", f"/v2/{REPO}/manifests/bad%00X:1", {}, 404, "MANIFEST_UNKNOWN"),
    ("GET", f"/v2/{REPO}/manifests/sha256:%0d%0a", {}, 404, "MANIFEST_UNKNOWN"),
    ("GET", f"/v2/{REPO}/blobs/bad%0d%0aX:1", {}, 400, "DIGEST_INVALID"),
    ("HEAD", f"/v2/{REPO}/blobs/sha256:%00", {}, 400, None),
    ("DELETE", f"/v2/{REPO}/blobs/sha256:%0d%0a", {}, 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{REPO}/referrers/bad%0d%0aX:1", {}, 400, "DIGEST_INVALID"),
    ("GET", "/v2/seed%0d%0a/app/tags/list", {}, 400, "NAME_INVALID"),
    ("GET", "/v2/seed%0a/app/manifests/v1", {}, 400, "NAME_INVALID"),
    ("GET", f"/v2/{REPO}/blobs/uploads/bad%0d%0aid", {}, 404, "BLOB_UPLOAD_UNKNOWN"),
    ("POST", f"/v2/{REPO}/blobs/uploads/", {"digest": "bad\r\nX:1\x00"}, 400, "DIGEST_INVALID"),
    ("POST", "/v2/other/app/blobs/uploads/", {"mount": "bad\r\nX:1", "from": REPO}, 202, None),
    ("POST", "/v2/other/app/blobs/uploads/", {"mount": "x", "from": "a\r\nb"}, 202, None),
    ("GET", f"/v2/{REPO}/tags/list", {"n": "1", "last": "\r\n\x00"}, 200, None),
    ("GET", "/v2/_catalog", {"n": "\r\n"}, 400, "PAGINATION_NUMBER_INVALID"),
]


@pytest.mark.parametrize(("method", "path", "params", "status", "code"), CONTROL_REQUESTS)
def test_control_characters_are_refused_cleanly_and_logged_escaped(
    world: World,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    params: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    caplog.set_level(logging.INFO)
    before = world.snapshot()
    content = world.manifest if method == "PUT" else b""
    headers = {"Content-Type": OCI_MANIFEST, "X-Request-Id": "id\r\nX-Forged: 1"}
    response = world.request(method, path, params=params, content=content, headers=headers)
    assert response.status_code == status, response.text
    if code is not None:
        assert [error["code"] for error in response.json()["errors"]] == [code]
    assert_clean_headers(response)
    assert "\r" not in response.headers["X-Request-Id"]
    if status == 202:
        assert "/blobs/uploads/" in response.headers["Location"]  # a session, not a mount
        world.request("DELETE", response.headers["Location"])
    elif status >= 400:
        assert world.snapshot() == before
    access = [made for made in caplog.records if made.name == "wharf.access"]
    assert [made.__dict__["path"] for made in access][:1] == [httpx.URL(path).path]
    assert_clean_log_lines(caplog.records)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("path", "params", "authorization", "status"),
    [
        ("/token", {"scope": "repository:se\r\ned:pull", "service": "svc"}, None, 400),
        ("/token", {"scope": "repository:seed:pull"}, _basic("al\r\nice", "x\r\n"), 401),
        ("/token", {"scope": "repository:seed:pull"}, _basic("alice", "wonderland\x00"), 401),
        ("/v2/seed%0d%0aapp/tags/list", {}, None, 400),
        (f"/v2/{REPO}/manifests/bad%0d%0aX:1", {}, "Bearer a.b\x01.c", 401),
        (f"/v2/{REPO}/manifests/bad%0d%0aX:1", {}, _basic("al\r\nice", "x"), 401),
    ],
)
def test_control_characters_in_credentials_and_scopes(
    guarded: World,
    caplog: pytest.LogCaptureFixture,
    path: str,
    params: dict[str, str],
    authorization: str | None,
    status: int,
) -> None:
    caplog.set_level(logging.INFO)
    headers = {} if authorization is None else {"Authorization": authorization.encode("latin-1")}
    response = guarded.request("GET", path, params=params, headers=headers)
    assert response.status_code == status, response.text
    assert_clean_headers(response)
    if status == 401 and path != "/token":
        # The challenge names the repository asked for, which is a valid name by then.
        assert f'scope="repository:{REPO}:pull"' in response.headers["WWW-Authenticate"]
    assert_clean_log_lines(caplog.records)
