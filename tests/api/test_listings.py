from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import error_codes, push_image
from wharf.api.app import WharfApp

pytestmark = pytest.mark.asyncio


async def test_tags_list_sorted_and_paginated(client: httpx.AsyncClient) -> None:
    _, body = await push_image(client, "tagged", "zeta")
    for tag in ("alpha", "Beta", "gamma", "1.0"):
        response = await client.put(
            f"/v2/tagged/manifests/{tag}",
            content=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert response.status_code == 201
    everything = await client.get("/v2/tagged/tags/list")
    assert everything.json() == {
        "name": "tagged",
        "tags": ["1.0", "Beta", "alpha", "gamma", "zeta"],
    }
    assert "Link" not in everything.headers
    page = await client.get("/v2/tagged/tags/list", params={"n": 2})
    assert page.json()["tags"] == ["1.0", "Beta"]
    assert page.headers["Link"] == '</v2/tagged/tags/list?n=2&last=Beta>; rel="next"'
    following = await client.get("/v2/tagged/tags/list", params={"n": 2, "last": "Beta"})
    assert following.json()["tags"] == ["alpha", "gamma"]
    last_page = await client.get("/v2/tagged/tags/list", params={"n": 2, "last": "gamma"})
    assert last_page.json()["tags"] == ["zeta"]
    assert "Link" not in last_page.headers
    exact = await client.get("/v2/tagged/tags/list", params={"n": 5})
    assert len(exact.json()["tags"]) == 5
    assert "Link" not in exact.headers
    zero = await client.get("/v2/tagged/tags/list", params={"n": 0})
    assert zero.json()["tags"] == []


async def test_tags_list_bad_n(client: httpx.AsyncClient) -> None:
    await push_image(client, "badn", "v1")
    for value in ("-1", "abc", "1e3"):
        response = await client.get("/v2/badn/tags/list", params={"n": value})
        assert response.status_code == 400
        assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]


async def test_tags_list_unknown_repository(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/nothing/tags/list")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


@pytest.mark.parametrize("indexed", [False, True], ids=["walked", "indexed"])
async def test_catalog(app: WharfApp, client: httpx.AsyncClient, indexed: bool) -> None:
    if indexed:
        assert await app.registry.catalog.index.build()
    for name in ("b/two", "a/one", "c", "a/one/nested"):
        await push_image(client, name, "v1")
    response = await client.get("/v2/_catalog")
    assert response.json() == {"repositories": ["a/one", "a/one/nested", "b/two", "c"]}
    page = await client.get("/v2/_catalog", params={"n": 2})
    assert page.json() == {"repositories": ["a/one", "a/one/nested"]}
    assert page.headers["Link"] == '</v2/_catalog?n=2&last=a%2Fone%2Fnested>; rel="next"'
    rest = await client.get("/v2/_catalog", params={"n": 2, "last": "a/one/nested"})
    assert rest.json() == {"repositories": ["b/two", "c"]}
    await push_image(client, "d/new", "v1")
    assert "d/new" in (await client.get("/v2/_catalog")).json()["repositories"]
    assert await app.registry.catalog.index.built() == indexed


async def test_catalog_n_is_capped(client: httpx.AsyncClient) -> None:
    await push_image(client, "cap", "v1")
    response = await client.get("/v2/_catalog", params={"n": 10**9})
    assert response.status_code == 200
    assert response.json() == {"repositories": ["cap"]}


async def test_n_must_be_ascii_digits(client: httpx.AsyncClient) -> None:
    await push_image(client, "digits", "v1")
    for path in ("/v2/digits/tags/list", "/v2/_catalog"):
        response = await client.get(path, params={"n": "²"})  # a digit to str.isdigit
        assert response.status_code == 400
        assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]
