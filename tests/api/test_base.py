from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import error_codes

pytestmark = pytest.mark.asyncio


async def test_base_answers_with_api_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.json() == {}


async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/foo/bar/nothing-here")
    assert response.status_code == 404
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize(
    "name",
    ["UPPER/case", "a//b", "-leading", "trailing-", "a/.b", "x" * 256, "a..b", "a/_b"],
)
async def test_invalid_names_are_name_invalid(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/v2/{name}/tags/list")
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["NAME_INVALID"]


async def test_name_of_255_characters_is_valid(client: httpx.AsyncClient) -> None:
    name = "/".join(["a" * 127, "b" * 127])
    assert len(name) == 255
    response = await client.get(f"/v2/{name}/tags/list")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


async def test_method_not_allowed_is_unsupported(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/foo/tags/list")
    assert response.status_code == 405
    assert error_codes(response) == ["UNSUPPORTED"]
