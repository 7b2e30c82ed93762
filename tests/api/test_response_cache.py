"""Answers kept per worker (manifest GET and HEAD): the same bytes as made anew, one per Accept
header, and never one the repository has moved past, also when another worker made the change.
Tag lists are kept only under the storage's own version of the tag names (the filesystem's
directory time): another writer of the storage may add a tag."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import DOCKER_MANIFEST, OCI_MANIFEST, error_codes, push_image
from wharf.api.app import WharfApp, create_app
from wharf.config import Config, HTTPConfig, StorageConfig
from wharf.reference import Digest, RepositoryName, Tag
from wharf.storage import paths

pytestmark = pytest.mark.asyncio


def _answers(app: WharfApp) -> tuple[int, int]:
    cache = app.context.responses.manifests
    assert cache is not None
    return cache.hits, cache.misses


def _pages(app: WharfApp) -> tuple[int, int]:
    cache = app.context.responses.tag_lists
    return cache.hits, cache.misses


def _without_request_id(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "x-request-id"]


async def test_repeated_pulls_are_answered_from_the_cache(
    app: WharfApp, client: httpx.AsyncClient
) -> None:
    digest, body = await push_image(client, "hot", "v1")
    accept = {"Accept": OCI_MANIFEST}
    first = await client.get("/v2/hot/manifests/v1", headers=accept)
    hits, misses = _answers(app)
    for _ in range(3):
        again = await client.get("/v2/hot/manifests/v1", headers=accept)
        assert again.content == body == first.content
        assert _without_request_id(again) == _without_request_id(first)
    head = await client.head("/v2/hot/manifests/v1", headers=accept)
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["Docker-Content-Digest"] == digest
    assert _answers(app) == (hits + 4, misses)


async def test_if_none_match_on_a_cached_answer(client: httpx.AsyncClient) -> None:
    digest, _ = await push_image(client, "etag", "v1")
    for _ in range(2):
        full = await client.get("/v2/etag/manifests/v1")
        assert full.status_code == 200
        same = await client.get("/v2/etag/manifests/v1", headers={"If-None-Match": f'"{digest}"'})
        assert same.status_code == 304
        assert same.content == b""
        assert same.headers["ETag"] == f'"{digest}"'
        assert same.headers["Docker-Content-Digest"] == digest
        assert same.headers["Content-Length"] == "0"
        other = await client.get("/v2/etag/manifests/v1", headers={"If-None-Match": '"x"'})
        assert other.status_code == 200


async def test_one_answer_per_accept_header(client: httpx.AsyncClient) -> None:
    await push_image(client, "accepting", "v1")
    for _ in range(2):
        oci = await client.get("/v2/accepting/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert oci.status_code == 200
        docker_only = await client.get(
            "/v2/accepting/manifests/v1", headers={"Accept": DOCKER_MANIFEST}
        )
        assert docker_only.status_code == 404
        assert error_codes(docker_only) == ["MANIFEST_UNKNOWN"]


async def test_an_invalid_reference_is_never_cached(client: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await client.get("/v2/bad/manifests/-tag")).status_code == 404
        assert (await client.get("/v2/BAD/manifests/v1")).status_code in (400, 404)


async def test_tags_list_pages_follow_changes_also_of_other_writers(
    app: WharfApp, client: httpx.AsyncClient
) -> None:
    for tag in ("a", "b", "c"):
        digest, _ = await push_image(client, "paged", tag)
    await asyncio.sleep(0.1)  # past a clock tick: a change now shows in the directory's time
    for _ in range(2):
        again = await client.get("/v2/paged/tags/list", params={"n": 2})
        assert again.json() == {"name": "paged", "tags": ["a", "b"]}
        assert again.headers["Link"] == '</v2/paged/tags/list?n=2&last=b>; rel="next"'
        rest = await client.get("/v2/paged/tags/list", params={"n": 2, "last": "b"})
        assert rest.json()["tags"] == ["c"]
        assert "Link" not in rest.headers
        assert (await client.get("/v2/paged/tags/list")).json()["tags"] == ["a", "b", "c"]
    # Made once, then kept, where the storage versions its listings (the filesystem; where
    # its times are whole seconds, only two seconds after a change: nothing is kept before).
    versioned = await app.registry.driver.listing_version(paths.tags_dir(RepositoryName("paged")))
    assert _pages(app) == ((3, 3) if versioned is not None else (0, 0))
    # A tag another writer (Distribution on the same storage) stores is listed at once.
    name = RepositoryName("paged")
    await app.registry.driver.put_content(
        paths.tag_current_link(name, Tag("bb")), paths.link_content(Digest.parse(digest))
    )
    rest = await client.get("/v2/paged/tags/list", params={"n": 2, "last": "b"})
    assert rest.json()["tags"] == ["bb", "c"]
    assert (await client.get("/v2/paged/tags/list")).json()["tags"] == ["a", "b", "bb", "c"]
    await app.registry.driver.delete(paths.tag_dir(name, Tag("bb")))
    await push_image(client, "paged", "0")
    assert (await client.get("/v2/paged/tags/list", params={"n": 2})).json()["tags"] == ["0", "a"]
    assert (await client.delete("/v2/paged/manifests/c")).status_code == 202
    rest = await client.get("/v2/paged/tags/list", params={"n": 2, "last": "b"})
    assert rest.json()["tags"] == []
    for _ in range(2):
        bad = await client.get("/v2/paged/tags/list", params={"n": "x"})
        assert error_codes(bad) == ["PAGINATION_NUMBER_INVALID"]
        assert (await client.get("/v2/unknown/tags/list")).status_code == 404


@pytest.fixture
async def workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[WharfApp]]:
    """Two apps over the same storage and the same shared-state file, as two workers."""
    config = Config(
        storage=StorageConfig(
            parameters={"rootdirectory": str(tmp_path / "data")}, delete_enabled=True
        ),
        http=HTTPConfig(secret="s"),
    )
    apps = [create_app(config), create_app(config)]
    yield apps
    for app in apps:
        await app.aclose()


async def test_another_workers_changes_are_seen_at_once(workers: list[WharfApp]) -> None:
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://wharf")
        for app in workers
    ]
    reader, writer = clients
    try:
        first, _ = await push_image(writer, "shared", "latest", seed="one")
        for _ in range(2):
            got = await reader.get("/v2/shared/manifests/latest")
            assert got.headers["Docker-Content-Digest"] == first
            assert (await reader.head(f"/v2/shared/manifests/{first}")).status_code == 200
        assert _answers(workers[0])[0] == 2
        for _ in range(2):
            tags = await reader.get("/v2/shared/tags/list")
            assert tags.json()["tags"] == ["latest"]
        second, _ = await push_image(writer, "shared", "v2", seed="two")
        assert (await reader.get("/v2/shared/tags/list")).json()["tags"] == ["latest", "v2"]
        await push_image(writer, "shared", "latest", seed="two")
        got = await reader.get("/v2/shared/manifests/latest")
        assert got.headers["Docker-Content-Digest"] == second
        assert (await writer.delete("/v2/shared/manifests/latest")).status_code == 202
        assert (await reader.get("/v2/shared/manifests/latest")).status_code == 404
        assert (await reader.get("/v2/shared/tags/list")).json()["tags"] == ["v2"]
        assert (await writer.delete(f"/v2/shared/manifests/{first}")).status_code == 202
        assert (await reader.head(f"/v2/shared/manifests/{first}")).status_code == 404
    finally:
        for client in clients:
            await client.aclose()
