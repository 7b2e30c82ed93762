"""wharf as a pull-through cache of real upstreams on loopback: Debian's docker-registry 2.8
behind htpasswd, and a wharf with its built-in token service, both filled with skopeo. skopeo
and podman pull through the mirror; what they get is what the upstream holds, digest for
digest; the mirror fetches only what is asked for, once, and keeps serving what it holds when
the upstream goes away."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.support import write_htpasswd
from tests.support.clients import Podman, Skopeo, binary
from tests.support.faultproxy import FaultProxy
from tests.support.images import (
    AMD64,
    ARM64,
    BuiltImage,
    BuiltIndex,
    build_image,
    build_index,
    sha256_digest,
)
from tests.support.redis_server import RedisServer, needs_redis
from tests.support.reference_registry import ReferenceRegistry, docker_registry_binary
from tests.support.server import WharfServer, free_port
from tests.support.webhook import WebhookReceiver
from wharf.config.model import StorageConfig
from wharf.registry.check import check_storage
from wharf.storage.driver.factory import create_driver

pytestmark = [
    pytest.mark.server,
    pytest.mark.client,
    pytest.mark.slow,
    pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed"),
    pytest.mark.skipif(docker_registry_binary() is None, reason="docker-registry is missing"),
]

OCI_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
USER, PASSWORD = "mirror", "s3cret-upstream"


@dataclass
class Upstreams:
    dist: ReferenceRegistry  # htpasswd (Basic)
    token: WharfServer  # the built-in token service (Bearer)
    image: BuiltImage
    index: BuiltIndex
    layouts: Path


def _fill(skopeo: Skopeo, source: str, target: str, *, all_images: bool = False) -> None:
    skopeo.copy(source, target, "--dest-creds", f"{USER}:{PASSWORD}", all_images=all_images)


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    base = tmp_path_factory.mktemp("upstreams")
    users = write_htpasswd(base / "htpasswd", {USER: PASSWORD})
    port = free_port()
    token_config = {
        "auth": {
            "token": {
                "realm": f"http://127.0.0.1:{port}/token",
                "service": f"127.0.0.1:{port}",
                "issuer": "upstream",
            },
            "tokenservice": {
                "users": str(users),
                "access": [{"repository": "**", "pull": ["*"], "push": ["*"]}],
            },
        }
    }
    dist = ReferenceRegistry(
        config={"auth": {"htpasswd": {"realm": "upstream", "path": str(users)}}}
    )
    token = WharfServer(config=token_config, port=port, workers=2)
    image = build_image(base / "image", tag="v1", layers=3, layer_size=300_000, seed=7)
    index = build_index(base / "index", tag="v1", platforms=(AMD64, ARM64), seed=300)
    with dist, token:
        skopeo = Skopeo(base / "skopeo")
        for server in (dist, token):
            _fill(skopeo, image.source, f"docker://{server.host}/library/app:v1")
            _fill(skopeo, index.source, f"docker://{server.host}/library/multi:v1", all_images=True)
        yield Upstreams(dist, token, image, index, base)


def _mirror_config(upstreams: Upstreams, **extra: Any) -> dict[str, Any]:
    return {
        "mirrors": [
            {
                "prefix": "dist",
                "url": upstreams.dist.url,
                "username": USER,
                "password": PASSWORD,
                **extra,
            },
            {
                "prefix": "tok",
                "url": upstreams.token.url,
                "hosts": [upstreams.token.host],
                "username": USER,
                "password": PASSWORD,
                **extra,
            },
        ]
    }


@pytest.fixture
def mirror(upstreams: Upstreams) -> Iterator[WharfServer]:
    with WharfServer(workers=2, config=_mirror_config(upstreams)) as server:
        yield server


def _clean(root: Path) -> None:
    driver = create_driver(StorageConfig("filesystem", {"rootdirectory": str(root)}))

    async def check() -> None:
        try:
            report = await check_storage(driver)
        finally:
            await driver.close()
        assert report.clean, [problem.line() for problem in report.problems]

    asyncio.run(check())


@pytest.mark.parametrize("prefix", ["dist", "tok"])
def test_skopeo_pulls_by_tag_and_digest_as_the_upstream_holds_it(
    upstreams: Upstreams, mirror: WharfServer, tmp_path: Path, prefix: str
) -> None:
    skopeo = Skopeo(tmp_path / "skopeo", server=mirror)
    upstream = upstreams.dist if prefix == "dist" else upstreams.token
    creds = ("--creds", f"{USER}:{PASSWORD}")
    expected = skopeo.inspect_raw(f"docker://{upstream.host}/library/app:v1", *creds)
    through = f"docker://{mirror.host}/{prefix}/library/app"
    assert skopeo.inspect_raw(f"{through}:v1") == expected
    digest = upstreams.image.digest
    skopeo.copy(f"{through}@{digest}", f"oci:{tmp_path / 'out'}:pulled")
    pulled = json.loads((tmp_path / "out" / "index.json").read_text())
    assert pulled["manifests"][0]["digest"] == digest
    for blob in upstreams.image.blob_digests:
        stored = tmp_path / "out" / "blobs" / "sha256" / blob.removeprefix("sha256:")
        assert stored.exists()
    refused = skopeo.run(
        "copy",
        "--dest-tls-verify=false",
        upstreams.image.source,
        f"docker://{mirror.host}/{prefix}/library/pushed:v1",
        check=False,
    )
    assert refused.returncode != 0
    _clean(mirror.root)


def test_one_platform_of_an_index_fetches_only_its_blobs(
    upstreams: Upstreams, mirror: WharfServer, tmp_path: Path
) -> None:
    skopeo = Skopeo(tmp_path / "skopeo", server=mirror)
    arm = next(image for image in upstreams.index.images if image.platform == ARM64)
    amd = next(image for image in upstreams.index.images if image.platform == AMD64)
    skopeo.copy(
        f"docker://{mirror.host}/tok/library/multi:v1",
        f"oci:{tmp_path / 'arm'}:v1",
        "--override-arch",
        "arm64",
        preserve_digests=False,
    )
    with httpx.Client(base_url=mirror.url) as http:
        index = http.get("/v2/tok/library/multi/manifests/v1", headers={"Accept": OCI_ACCEPT})
        assert index.headers["Docker-Content-Digest"] == upstreams.index.digest
    blobs = mirror.root / "docker/registry/v2/blobs/sha256"
    stored = {path.name for path in blobs.glob("*/*")}
    assert {d.removeprefix("sha256:") for d in arm.blob_digests} <= stored
    assert not {d.removeprefix("sha256:") for d in amd.blob_digests} & stored
    assert amd.digest.removeprefix("sha256:") not in stored


def test_podman_pulls_through_a_mirror_in_registries_conf(
    upstreams: Upstreams, mirror: WharfServer, tmp_path: Path
) -> None:
    if binary("podman") is None:
        pytest.skip("podman is not installed")
    with Podman(tmp_path / "podman", server=mirror) as podman:
        podman.registries_conf.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
            f'[[registry]]\nlocation = "{upstreams.token.host}"\ninsecure = true\n'
            f'[[registry.mirror]]\nlocation = "{mirror.host}/tok"\ninsecure = true\n'
        )
        reference = f"{upstreams.token.host}/library/app:v1"
        podman.run("pull", "--signature-policy", str(podman.policy), reference)
        pulled = podman.image_inspect(reference)
        assert pulled["Id"] == upstreams.image.config.digest.removeprefix("sha256:")
    with httpx.Client(base_url=mirror.url) as http:
        cached = http.head(f"/v2/tok/library/app/manifests/{upstreams.image.digest}")
        assert cached.status_code == 200


def test_ns_chooses_the_mirror(upstreams: Upstreams, mirror: WharfServer) -> None:
    with httpx.Client(base_url=mirror.url) as http:
        answer = http.get(
            "/v2/library/app/manifests/v1",
            params={"ns": upstreams.token.host},
            headers={"Accept": OCI_ACCEPT},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["Docker-Content-Digest"] == upstreams.image.digest
        unknown = http.get("/v2/library/app/manifests/v1", params={"ns": "elsewhere.example"})
        assert unknown.status_code == 404  # a local repository, which holds nothing


def test_a_tag_moved_upstream_is_seen_after_the_check_interval(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    config = _mirror_config(upstreams, tagcheck="2s")
    skopeo = Skopeo(tmp_path / "skopeo")
    moved = build_image(tmp_path / "moved", tag="v1", layers=1, layer_size=10_000, seed=77)
    with WharfServer(workers=1, config=config) as mirror, httpx.Client(base_url=mirror.url) as http:
        _fill(skopeo, upstreams.image.source, f"docker://{upstreams.token.host}/library/moving:t")
        first = http.get("/v2/tok/library/moving/manifests/t", headers={"Accept": OCI_ACCEPT})
        assert first.headers["Docker-Content-Digest"] == upstreams.image.digest
        _fill(skopeo, moved.source, f"docker://{upstreams.token.host}/library/moving:t")
        soon = http.get("/v2/tok/library/moving/manifests/t", headers={"Accept": OCI_ACCEPT})
        assert soon.headers["Docker-Content-Digest"] == upstreams.image.digest  # within 2s
        time.sleep(2.5)
        later = http.get("/v2/tok/library/moving/manifests/t", headers={"Accept": OCI_ACCEPT})
        assert later.headers["Docker-Content-Digest"] == moved.digest


def test_cached_content_is_served_while_the_upstream_is_down(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    upstream = ReferenceRegistry()
    with upstream:
        skopeo = Skopeo(tmp_path / "skopeo")
        skopeo.copy(upstreams.image.source, f"docker://{upstream.host}/library/app:v1")
        config = {"proxy": {"remoteurl": upstream.url}}
        with WharfServer(workers=2, config=config) as mirror:
            through = Skopeo(tmp_path / "through", server=mirror)
            through.copy(f"docker://{mirror.host}/library/app:v1", f"oci:{tmp_path / 'a'}:v1")
            upstream.stop()
            through.copy(f"docker://{mirror.host}/library/app:v1", f"oci:{tmp_path / 'b'}:v1")
            digest = upstreams.image.digest
            through.copy(f"docker://{mirror.host}/library/app@{digest}", f"oci:{tmp_path / 'c'}:v1")
            with httpx.Client(base_url=mirror.url) as http:
                missing = http.get("/v2/library/other/manifests/v1")
                assert missing.status_code == 503, missing.text
                assert missing.json()["errors"][0]["code"] == "UNAVAILABLE"
            upstream.start()


def test_an_upstream_that_dies_mid_blob_leaves_nothing_cached(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    with FaultProxy(upstreams.dist.url) as proxy:
        config = {
            "mirrors": [
                {"prefix": "dist", "url": proxy.endpoint, "username": USER, "password": PASSWORD}
            ]
        }
        layer = upstreams.image.layers[0].digest
        with (
            WharfServer(workers=2, config=config) as mirror,
            httpx.Client(base_url=mirror.url, timeout=30) as http,
        ):
            proxy.fail("GetObject", "cut", key_contains=f"blobs/{layer}")
            with pytest.raises(httpx.HTTPError):  # cut short: the client sees it
                http.get(f"/v2/dist/library/app/blobs/{layer}")
            assert not _stored(mirror.root, layer)
            again = http.get(f"/v2/dist/library/app/blobs/{layer}")
            assert again.status_code == 200
            assert sha256_digest(again.content) == layer
            _clean(mirror.root)


def _stored(root: Path, digest: str) -> bool:
    hex_digest = digest.removeprefix("sha256:")
    return (root / f"docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data").exists()


def test_twenty_clients_at_once_fetch_each_blob_once(upstreams: Upstreams, tmp_path: Path) -> None:
    with FaultProxy(upstreams.dist.url) as proxy:
        config = {
            "mirrors": [
                {"prefix": "dist", "url": proxy.endpoint, "username": USER, "password": PASSWORD}
            ]
        }
        with WharfServer(workers=2, config=config) as mirror:
            skopeo = Skopeo(tmp_path / "skopeo", server=mirror)

            def pull(number: int) -> None:
                skopeo.copy(
                    f"docker://{mirror.host}/dist/library/app:v1",
                    f"oci:{tmp_path / f'out{number}'}:v1",
                )

            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                list(pool.map(pull, range(20)))
            for blob in upstreams.image.blob_digests:
                fetched = [
                    r for r in proxy.recorded() if r.method == "GET" and r.path.endswith(blob)
                ]
                assert len(fetched) == 1, (blob, len(fetched))
            _clean(mirror.root)


def _gc(server: WharfServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wharf", "garbage-collect", "--online", "--grace", "0s",
         str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_expiry_and_collection_keep_what_a_cached_manifest_needs(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    """The blobs of a manifest still pulled stay, however long ago they were fetched; once
    the manifest itself expires, expiry unlinks them and a collection removes them."""
    with FaultProxy(upstreams.dist.url) as proxy:
        config = {
            "mirrors": [
                {
                    "prefix": "dist",
                    "url": proxy.endpoint,
                    "username": USER,
                    "password": PASSWORD,
                    "ttl": "3s",
                }
            ]
        }
        image = upstreams.image
        with (
            WharfServer(workers=2, config=config) as mirror,
            httpx.Client(base_url=mirror.url) as http,
        ):
            skopeo = Skopeo(tmp_path / "skopeo", server=mirror)
            through = f"docker://{mirror.host}/dist/library/app@{image.digest}"
            skopeo.copy(through, f"oci:{tmp_path / 'first'}:v1")
            deadline = time.monotonic() + 7
            while time.monotonic() < deadline:  # the manifest keeps being pulled, not its blobs
                time.sleep(0.5)
                pulled = http.head(
                    f"/v2/dist/library/app/manifests/{image.digest}",
                    headers={"Accept": OCI_ACCEPT},
                )
                assert pulled.status_code == 200
            _gc(mirror)
            for blob in image.blob_digests:
                assert _stored(mirror.root, blob), blob
            proxy.clear()
            skopeo.copy(through, f"oci:{tmp_path / 'second'}:v1")
            assert not [r for r in proxy.recorded() if "/blobs/" in r.path]  # all cached
            time.sleep(7)  # nothing pulled: everything expires
            _gc(mirror)
            for blob in image.blob_digests:
                assert not _stored(mirror.root, blob), blob
            again = http.get(f"/v2/dist/library/app/blobs/{image.layers[0].digest}")
            assert again.status_code == 200  # fetched again
            _clean(mirror.root)


@needs_redis
def test_two_instances_with_redis_mirror_one_upstream(upstreams: Upstreams, tmp_path: Path) -> None:
    with FaultProxy(upstreams.dist.url) as proxy, RedisServer() as redis:
        settings = {
            "redis": {"addr": redis.addr},
            "mirrors": [
                {"prefix": "dist", "url": proxy.endpoint, "username": USER, "password": PASSWORD}
            ],
        }
        first = WharfServer(workers=2, config=settings)
        storage = {"filesystem": {"rootdirectory": str(first.root)}}
        second = WharfServer(storage=storage, workers=2, config=settings)
        with first, second:

            def pull(number: int) -> None:
                server = (first, second)[number % 2]
                Skopeo(tmp_path / f"skopeo{number}", server=server).copy(
                    f"docker://{server.host}/dist/library/app:v1",
                    f"oci:{tmp_path / f'out{number}'}:v1",
                )

            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                list(pool.map(pull, range(10)))
            for blob in upstreams.image.blob_digests:
                fetched = [
                    r for r in proxy.recorded() if r.method == "GET" and r.path.endswith(blob)
                ]
                assert len(fetched) == 1, (blob, len(fetched))
            _clean(first.root)


def test_pulls_through_a_mirror_are_notified_and_counted(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    with WebhookReceiver() as receiver:
        config = {
            **_mirror_config(upstreams),
            "notifications": {"endpoints": [{"name": "hook", "url": receiver.url}]},
            "http": {"debug": {"addr": f"127.0.0.1:{free_port()}"}},
        }
        with WharfServer(workers=1, config=config) as mirror:
            skopeo = Skopeo(tmp_path / "skopeo", server=mirror)
            for number in range(2):  # a miss, then a hit
                skopeo.copy(
                    f"docker://{mirror.host}/dist/library/app:v1",
                    f"oci:{tmp_path / f'out{number}'}:v1",
                )
            events = receiver.wait_for(2 * (1 + len(upstreams.image.blob_digests)))
            pulls = [e for e in events if e["action"] == "pull"]
            assert {e["target"]["digest"] for e in pulls} >= {
                upstreams.image.digest,
                *upstreams.image.blob_digests,
            }
            debug = config["http"]["debug"]["addr"]
            deadline = time.monotonic() + 10
            while True:  # workers flush their metrics every second
                metrics = httpx.get(f"http://{debug}/metrics").text
                if 'result="hit"' in metrics or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert 'wharf_mirror_requests_total{kind="blob",result="miss",upstream="dist"}' in (
                metrics
            )
            assert 'kind="blob",result="hit",upstream="dist"' in metrics
            assert "wharf_mirror_fetched_bytes_total" in metrics


def test_credentials_from_a_credential_helper(upstreams: Upstreams, tmp_path: Path) -> None:
    """Distribution 3's proxy.exec: the helper answers ``get`` with the upstream's host on
    its standard input."""
    helper = tmp_path / "docker-credential-test"
    asked = tmp_path / "asked"
    helper.write_text(
        f'#!/bin/sh\ncat > "{asked}"\necho \'{{"Username": "{USER}", "Secret": "{PASSWORD}"}}\'\n'
    )
    helper.chmod(0o755)
    config = {"proxy": {"remoteurl": upstreams.dist.url, "exec": {"command": str(helper)}}}
    with WharfServer(workers=1, config=config) as mirror, httpx.Client(base_url=mirror.url) as http:
        pulled = http.get("/v2/library/app/manifests/v1", headers={"Accept": OCI_ACCEPT})
        assert pulled.status_code == 200, pulled.text
        assert pulled.headers["Docker-Content-Digest"] == upstreams.image.digest
        assert asked.read_text() == upstreams.dist.host
        assert PASSWORD not in mirror.log()
