"""Storage middleware (``middleware.storage``): CloudFront signed URLs that verify against the
key pair's public key, the S3 URL for clients inside AWS's ranges (from a local ip-ranges
file), ``redirect`` and ``rewrite`` URLs, and the one-line errors of bad options; the blob
redirects through the in-process app on moto."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.api.helpers import push_blob
from tests.support.s3servers import S3Server
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.config.middleware import MiddlewareConfig
from wharf.config.sources import ConfigError
from wharf.storage.driver.factory import create_driver, validate_storage

BLOB = "/docker/registry/v2/blobs/sha256/ab/" + "ab" * 32 + "/data"
KEY_PAIR_ID = "APKAEXAMPLEKEYPAIR"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    """The private key as CloudFront hands it out: PKCS#1 PEM."""
    path = tmp_path / "pk-APKAEXAMPLEKEYPAIR.pem"
    path.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture
def ip_ranges(tmp_path: Path) -> Path:
    """An ip-ranges.json in AWS's format, with two regions and both IP versions."""
    document = {
        "syncToken": "1700000000",
        "createDate": "2024-01-01-00-00-00",
        "prefixes": [
            {"ip_prefix": "203.0.113.0/24", "region": "us-east-1", "service": "AMAZON"},
            {"ip_prefix": "203.0.113.0/25", "region": "us-east-1", "service": "S3"},
            {"ip_prefix": "198.51.100.0/24", "region": "eu-west-1", "service": "AMAZON"},
            {"ip_prefix": "not-a-prefix", "region": "eu-west-1", "service": "AMAZON"},
        ],
        "ipv6_prefixes": [
            {"ipv6_prefix": "2001:db8::/32", "region": "us-east-1", "service": "AMAZON"},
        ],
    }
    path = tmp_path / "ip-ranges.json"
    path.write_text(json.dumps(document))
    return path


def storage(
    driver: str, parameters: dict[str, Any], *middleware: tuple[str, dict[str, Any]]
) -> StorageConfig:
    entries = tuple(
        MiddlewareConfig(name, options, f"middleware.storage.{index}")
        for index, (name, options) in enumerate(middleware)
    )
    return StorageConfig(driver=driver, parameters=parameters, middleware=entries)


def verify_cloudfront(url: str, key: rsa.RSAPrivateKey) -> tuple[str, int, str]:
    """Check the signature of a canned-policy signed URL as CloudFront does; the URL signed,
    its expiry and the key pair id."""
    resource, _, query = url.partition("?")
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    assert set(params) == {"Expires", "Signature", "Key-Pair-Id"}
    expires = int(params["Expires"])
    policy = json.dumps(
        {
            "Statement": [
                {"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}
            ]
        },
        separators=(",", ":"),
    ).encode()
    signature = params["Signature"]
    assert set(signature) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~"
    )
    raw = base64.b64decode(signature.translate(str.maketrans("-_~", "+=/")), validate=True)
    # Raises InvalidSignature unless the policy was signed with RSA-SHA1 by the key.
    key.public_key().verify(raw, policy, padding.PKCS1v15(), hashes.SHA1())
    return resource, expires, params["Key-Pair-Id"]


# --- CloudFront --------------------------------------------------------------------------------


@pytest.mark.s3
async def test_cloudfront_url_verifies_with_the_public_key(
    moto_server: S3Server, key_file: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    parameters = moto_server.fresh_parameters(rootdirectory="/registry/root/")
    options = {"baseurl": "cdn.example.com", "privatekey": str(key_file)}
    config = storage("s3", parameters, ("cloudfront", {**options, "keypairid": KEY_PAIR_ID}))
    validate_storage(config)
    driver = create_driver(config)
    try:
        before = int(time.time())
        url = await driver.redirect_url(BLOB)
        assert url is not None
        resource, expires, key_pair_id = verify_cloudfront(url, rsa_key)
        # https:// added to the base URL, the S3 key (root directory included) appended.
        assert resource == "https://cdn.example.com/registry/root" + BLOB
        assert key_pair_id == KEY_PAIR_ID
        assert before + 20 * 60 <= expires <= int(time.time()) + 20 * 60  # default: 20m
        other = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        with pytest.raises(InvalidSignature):
            verify_cloudfront(url, other)
        head = await driver.redirect_url(BLOB, "HEAD")
        assert head is not None
        assert head.startswith("https://cdn.example.com/")
        assert await driver.redirect_url(BLOB, "PUT") is None
    finally:
        await driver.close()


@pytest.mark.s3
async def test_cloudfront_duration_and_a_pkcs8_key(
    moto_server: S3Server, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    pkcs8 = tmp_path / "key.pem"
    pkcs8.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    options = {
        "baseurl": "http://cdn.test:8080/prefix",
        "privatekey": str(pkcs8),
        "keypairid": "K2",
        "duration": "90s",
    }
    driver = create_driver(storage("s3", moto_server.fresh_parameters(), ("cloudfront", options)))
    try:
        url = await driver.redirect_url(BLOB)
        assert url is not None
        resource, expires, key_pair_id = verify_cloudfront(url, rsa_key)
        assert resource == "http://cdn.test:8080/prefix" + BLOB
        assert key_pair_id == "K2"
        assert abs(expires - (time.time() + 90)) <= 2
    finally:
        await driver.close()


AppFactory = Callable[..., WharfApp]


@pytest.fixture
async def make_app() -> AsyncIterator[AppFactory]:
    apps: list[WharfApp] = []

    def factory(config: StorageConfig) -> WharfApp:
        app = create_app(Config(storage=config, http=HTTPConfig(secret="test-secret")))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


async def _location(app: WharfApp, path: str, client: str, **headers: str) -> str:
    transport = httpx.ASGITransport(app=app, client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
        response = await http.get(path, headers=headers)
    assert response.status_code == 307, response.text
    return response.headers["location"]


@pytest.mark.s3
@pytest.mark.parametrize("filtered", ["aws", "awsregion"])
async def test_clients_inside_aws_get_the_s3_url(
    moto_server: S3Server,
    make_app: AppFactory,
    key_file: Path,
    ip_ranges: Path,
    rsa_key: rsa.RSAPrivateKey,
    filtered: str,
) -> None:
    options: dict[str, Any] = {
        "baseurl": "https://cdn.example.com/",
        "privatekey": str(key_file),
        "keypairid": KEY_PAIR_ID,
        "ipfilteredby": filtered,
        "iprangesurl": ip_ranges.as_uri() if filtered == "aws" else str(ip_ranges),
    }
    if filtered == "awsregion":
        options["awsregion"] = " US-East-1 , ap-south-2"
    config = storage("s3", moto_server.fresh_parameters(), ("cloudfront", options))
    validate_storage(config)
    app = make_app(config)
    data = b"a layer inside and outside AWS"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
        digest = await push_blob(http, "mw/cloudfront", data)
    path = f"/v2/mw/cloudfront/blobs/{digest}"

    def is_s3(url: str) -> bool:
        return url.startswith(moto_server.endpoint + "/")

    # us-east-1 (the peer, a forwarded address, X-Real-Ip; IPv6; IPv4 mapped into IPv6)
    for location in [
        await _location(app, path, "203.0.113.200"),
        await _location(app, path, "127.0.0.1", **{"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}),
        await _location(app, path, "127.0.0.1", **{"X-Real-Ip": "203.0.113.7"}),
        await _location(app, path, "2001:db8::42"),
        await _location(app, path, "::ffff:203.0.113.9"),
    ]:
        assert is_s3(location), location
        async with httpx.AsyncClient() as http:
            response = await http.get(location)  # the presigned URL serves the blob
        assert response.status_code == 200
        assert response.content == data
    # eu-west-1: inside AWS, outside the regions asked for
    eu = await _location(app, path, "198.51.100.5")
    assert is_s3(eu) == (filtered == "aws"), eu
    # outside AWS, or an address that does not parse: CloudFront
    for location in [
        await _location(app, path, "192.0.2.1"),
        await _location(app, path, "127.0.0.1"),
        await _location(app, path, "127.0.0.1", **{"X-Forwarded-For": "not-an-address"}),
        await _location(app, path, "203.0.113.7", **{"X-Forwarded-For": "192.0.2.9"}),
    ]:
        resource, _, key_pair_id = verify_cloudfront(location, rsa_key)
        assert resource.startswith("https://cdn.example.com/docker/registry/v2/blobs/sha256/")
        assert key_pair_id == KEY_PAIR_ID


@pytest.mark.s3
async def test_unreadable_ranges_send_everyone_to_cloudfront(
    moto_server: S3Server, key_file: Path, ip_ranges: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The file is read when first needed (and again after updatefrequency): a file that
    went bad after the start leaves every client on CloudFront, as Distribution does."""
    from wharf.observability.context import CURRENT, RequestInfo

    options = {
        "baseurl": "https://cdn.example.com/",
        "privatekey": str(key_file),
        "keypairid": KEY_PAIR_ID,
        "ipfilteredby": "aws",
        "iprangesurl": str(ip_ranges),
        "updatefrequency": "1h",
    }
    config = storage("s3", moto_server.fresh_parameters(), ("cloudfront", options))
    validate_storage(config)
    with ip_ranges.open("w") as file:
        file.write("{not json")
    driver = create_driver(config)
    token = CURRENT.set(RequestInfo("r1", "GET", "/", {"client": ("203.0.113.1", 1)}))
    try:
        url = await driver.redirect_url(BLOB)
        assert url is not None
        verify_cloudfront(url, rsa_key)
    finally:
        CURRENT.reset(token)
        await driver.close()


# --- redirect and rewrite ---------------------------------------------------------------------


async def test_redirect_joins_the_base_url_and_the_storage_path(tmp_path: Path) -> None:
    parameters = {"rootdirectory": str(tmp_path / "data")}
    options = {"baseurl": "http://files.example:8000/srv/registry/"}
    driver = create_driver(storage("filesystem", parameters, ("redirect", options)))
    assert await driver.redirect_url(BLOB) == "http://files.example:8000/srv/registry" + BLOB
    assert await driver.redirect_url(BLOB, "DELETE") is None
    bare = create_driver(storage("inmemory", {}, ("redirect", {"baseurl": "https://h"})))
    assert await bare.redirect_url(BLOB) == "https://h" + BLOB


@pytest.mark.s3
async def test_rewrite_changes_scheme_host_and_path_of_the_s3_url(moto_server: S3Server) -> None:
    parameters = moto_server.fresh_parameters()
    bucket = parameters["bucket"]
    plain = create_driver(storage("s3", parameters))
    options = {"scheme": "https", "host": "cdn.example:8443", "trimpathprefix": f"/{bucket}"}
    rewritten = create_driver(storage("s3", parameters, ("rewrite", options)))
    try:
        original = await plain.redirect_url(BLOB)
        url = await rewritten.redirect_url(BLOB)
        assert original is not None
        assert url is not None
        before, after = urllib.parse.urlsplit(original), urllib.parse.urlsplit(url)
        assert (after.scheme, after.netloc) == ("https", "cdn.example:8443")
        assert before.path == f"/{bucket}" + after.path
        assert after.path == BLOB  # the key, the bucket trimmed
        assert after.query == before.query  # the signature kept
    finally:
        await plain.close()
        await rewritten.close()
    # Where the driver below serves blobs itself, so does the registry.
    filesystem = create_driver(storage("inmemory", {}, ("rewrite", {"host": "x.example"})))
    assert await filesystem.redirect_url(BLOB) is None


# --- bad options: one line at start -----------------------------------------------------------


def _bad_options(key_file: Path, tmp_path: Path) -> list[tuple[str, StorageConfig, str]]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    s3 = {"bucket": "b", "region": "us-east-1"}
    good = {"baseurl": "cdn.example", "privatekey": str(key_file), "keypairid": "K"}
    cases: list[tuple[str, StorageConfig, str]] = [
        (
            "unknown name",
            storage("inmemory", {}, ("cloudfrnt", {})),
            "middleware.storage.0.name: unknown storage middleware 'cloudfrnt' (known: "
            "cloudfront, redirect, rewrite)",
        ),
        (
            "no baseurl",
            storage("s3", s3, ("cloudfront", {**good, "baseurl": ""})),
            "middleware.storage.0.options.baseurl: required",
        ),
        (
            "missing key file",
            storage("s3", s3, ("cloudfront", {**good, "privatekey": str(tmp_path / "nope")})),
            f"middleware.storage.0.options.privatekey: cannot read {tmp_path / 'nope'}: "
            "No such file or directory",
        ),
        (
            "not PEM",
            storage("s3", s3, ("cloudfront", {**good, "privatekey": str(garbage)})),
            f"middleware.storage.0.options.privatekey: {garbage} holds no PEM private key",
        ),
        (
            "not RSA",
            storage("s3", s3, ("cloudfront", {**good, "privatekey": str(ec_key)})),
            f"middleware.storage.0.options.privatekey: {ec_key} holds no RSA key",
        ),
        (
            "no keypairid",
            storage("s3", s3, ("cloudfront", {**good, "keypairid": None})),
            "middleware.storage.0.options.keypairid: required",
        ),
        (
            "not s3",
            storage("inmemory", {}, ("redirect", {"baseurl": "http://h"}), ("cloudfront", good)),
            "middleware.storage.1.name: storage middleware 'cloudfront' works on the s3 "
            "storage driver only, not 'inmemory'",
        ),
        (
            "bad filter",
            storage("s3", s3, ("cloudfront", {**good, "ipfilteredby": "gcp"})),
            "middleware.storage.0.options.ipfilteredby: must be one of none, aws, awsregion",
        ),
        (
            "awsregion without regions",
            storage("s3", s3, ("cloudfront", {**good, "ipfilteredby": "awsregion"})),
            "middleware.storage.0.options.awsregion: required with ipfilteredby: awsregion",
        ),
        (
            "regions without awsregion",
            storage("s3", s3, ("cloudfront", {**good, "awsregion": "us-east-1"})),
            "middleware.storage.0.options.awsregion: used only with ipfilteredby: awsregion",
        ),
        (
            "missing ranges file",
            storage(
                "s3",
                s3,
                ("cloudfront", {**good, "ipfilteredby": "aws", "iprangesurl": "/no/ranges"}),
            ),
            "middleware.storage.0.options.iprangesurl: cannot read /no/ranges",
        ),
        (
            "duration without unit",
            storage("s3", s3, ("cloudfront", {**good, "duration": 1200})),
            "middleware.storage.0.options.duration: expected a duration with a unit like 20m",
        ),
        (
            "unknown option",
            storage("s3", s3, ("cloudfront", {**good, "keypair": "K"})),
            "middleware.storage.0.options.keypair: unknown option of storage middleware "
            "'cloudfront'",
        ),
        (
            "redirect without baseurl",
            storage("inmemory", {}, ("redirect", {})),
            "middleware.storage.0.options.baseurl: required",
        ),
        (
            "redirect without scheme",
            storage("inmemory", {}, ("redirect", {"baseurl": "files.example/x"})),
            "middleware.storage.0.options.baseurl: no scheme in 'files.example/x'",
        ),
        (
            "rewrite host with a path",
            storage("inmemory", {}, ("rewrite", {"host": "h.example/x"})),
            "middleware.storage.0.options.host: a host name and optional port",
        ),
    ]
    return cases


def test_bad_options_are_one_line(key_file: Path, tmp_path: Path) -> None:
    for name, config, message in _bad_options(key_file, tmp_path):
        with pytest.raises(ConfigError) as caught:
            validate_storage(config)
        text = str(caught.value)
        assert text.startswith(message), (name, text)
        assert "\n" not in text, name


def test_middleware_forwards_every_method_of_the_contract() -> None:
    """A method the contract gains must be forwarded too, or the driver's own is bypassed."""
    from wharf.storage.driver.base import StorageDriver
    from wharf.storage.driver.middleware import Middleware

    methods = {
        name
        for name, value in vars(StorageDriver).items()
        if callable(value) and not name.startswith("_")
    }
    missing = {name for name in methods if name not in vars(Middleware)}
    assert not missing


async def test_ranges_from_a_url_are_refreshed(tmp_path: Path) -> None:
    """ip-ranges.json over HTTP: loaded on first use, loaded again once updatefrequency has
    passed (in the background, the old ranges answering meanwhile)."""
    import asyncio
    import http.server
    import ipaddress
    import threading
    from functools import partial

    from wharf.storage.driver.middleware.awsips import AwsRanges

    def write(prefix: str) -> None:
        document = {"prefixes": [{"ip_prefix": prefix, "region": "us-east-1"}]}
        (tmp_path / "ip-ranges.json").write_text(json.dumps(document))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    write("203.0.113.0/24")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ip-ranges.json"
    ranges = AwsRanges(url, ["US-EAST-1"], every=0.3)
    first, second = ipaddress.ip_address("203.0.113.5"), ipaddress.ip_address("192.0.2.5")
    try:
        assert await ranges.contains(first)
        assert not await ranges.contains(second)
        await asyncio.to_thread(write, "192.0.2.0/24")
        await asyncio.sleep(0.4)
        assert await ranges.contains(first)  # stale, a refresh started
        for _ in range(100):
            if await ranges.contains(second):
                break
            await asyncio.sleep(0.02)
        assert await ranges.contains(second)
        assert not await ranges.contains(first)
    finally:
        await ranges.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
