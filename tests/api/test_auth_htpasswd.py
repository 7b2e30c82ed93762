"""``auth.htpasswd`` through the HTTP API, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import error_codes, push_image
from tests.auth.support import auth_app, basic, write_htpasswd

ALICE = basic("alice", "wonderland")
BOB = basic("bob", "builder")


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    return write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})


@pytest.fixture
async def client(htpasswd: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with auth_app({"htpasswd": {"realm": "wharf", "path": str(htpasswd)}}) as (_, http):
        yield http


@pytest.fixture
async def ruled(htpasswd: Path) -> AsyncIterator[httpx.AsyncClient]:
    access: list[dict[str, Any]] = [
        {"repository": "**", "pull": ["*"]},
        {"repository": "team/*", "push": ["alice"], "delete": ["alice"]},
        {"repository": "public/*", "anonymous": ["pull"]},
    ]
    auth = {"htpasswd": {"realm": "wharf", "path": str(htpasswd), "access": access}}
    async with auth_app(auth) as (_, http):
        yield http


def assert_challenged(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Basic realm="wharf"'
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert error_codes(response) == ["UNAUTHORIZED"]


async def test_base_needs_credentials(client: httpx.AsyncClient) -> None:
    assert_challenged(await client.get("/v2/"))
    assert_challenged(await client.get("/v2/", headers=basic("alice", "wrong")))
    assert_challenged(await client.get("/v2/", headers=basic("mallory", "wonderland")))
    response = await client.get("/v2/", headers=ALICE)
    assert response.status_code == 200
    assert response.json() == {}


async def test_push_and_pull_with_credentials(client: httpx.AsyncClient) -> None:
    client.headers.update(ALICE)
    digest, manifest = await push_image(client, "team/app", "v1")
    client.headers.pop("Authorization")
    assert_challenged(await client.get("/v2/team/app/manifests/v1"))
    response = await client.get("/v2/team/app/manifests/v1", headers=BOB)
    assert response.status_code == 200
    assert response.content == manifest
    assert response.headers["Docker-Content-Digest"] == digest


async def test_answers_kept_for_one_caller_still_need_credentials(
    ruled: httpx.AsyncClient,
) -> None:
    ruled.headers.update(ALICE)
    digest, _ = await push_image(ruled, "team/app", "v1")
    ruled.headers.pop("Authorization")
    for reference in ("v1", digest):
        path = f"/v2/team/app/manifests/{reference}"
        for _ in range(2):  # the second is answered from the cache
            assert (await ruled.get(path, headers=BOB)).status_code == 200
            assert (await ruled.head(path, headers=BOB)).status_code == 200
        assert_challenged(await ruled.get(path))
        assert_challenged(await ruled.get(path, headers=basic("bob", "wrong")))
        assert (await ruled.head(path)).status_code == 401
    for _ in range(2):
        assert (await ruled.get("/v2/team/app/tags/list", headers=BOB)).status_code == 200
    assert_challenged(await ruled.get("/v2/team/app/tags/list"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/_catalog"),
        ("GET", "/v2/team/app/tags/list"),
        ("HEAD", "/v2/team/app/manifests/v1"),
        ("PUT", "/v2/team/app/manifests/v1"),
        ("DELETE", "/v2/team/app/manifests/v1"),
        ("GET", f"/v2/team/app/blobs/sha256:{'a' * 64}"),
        ("POST", "/v2/team/app/blobs/uploads/"),
        ("GET", f"/v2/team/app/referrers/sha256:{'a' * 64}"),
    ],
)
async def test_every_endpoint_needs_credentials(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="wharf"'


async def test_no_token_endpoint_with_htpasswd(client: httpx.AsyncClient) -> None:
    assert (await client.get("/token", headers=ALICE)).status_code == 404


async def test_rules_deny_with_403(ruled: httpx.AsyncClient) -> None:
    ruled.headers.update(ALICE)
    await push_image(ruled, "team/app", "v1")
    ruled.headers.update(BOB)
    assert (await ruled.get("/v2/team/app/manifests/v1")).status_code == 200
    response = await ruled.post("/v2/team/app/blobs/uploads/")
    assert response.status_code == 403
    assert error_codes(response) == ["DENIED"]
    response = await ruled.delete("/v2/team/app/manifests/v1")
    assert response.status_code == 403
    # The refused requests changed nothing.
    tags = await ruled.get("/v2/team/app/tags/list")
    assert tags.json() == {"name": "team/app", "tags": ["v1"]}


async def test_rules_open_public_pulls(ruled: httpx.AsyncClient) -> None:
    ruled.headers.update(ALICE)
    assert (await ruled.post("/v2/public/app/blobs/uploads/")).status_code == 403
    ruled.headers.pop("Authorization")
    response = await ruled.get("/v2/public/app/tags/list")
    assert response.status_code == 404  # let in, and the repository does not exist
    assert error_codes(response) == ["NAME_UNKNOWN"]
    assert_challenged(await ruled.get("/v2/team/app/tags/list"))
    assert_challenged(await ruled.get("/v2/"))
