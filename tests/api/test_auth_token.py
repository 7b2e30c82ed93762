"""Token auth through the HTTP API, in process: the built-in service at /token, scopes on
every endpoint, and tokens from an external issuer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import error_codes, push_blob, push_image, sha256
from tests.auth.support import (
    Authority,
    auth_app,
    basic,
    cert_pem,
    challenge_params,
    claims,
    der_b64,
    mint,
    write_htpasswd,
)

REALM = "https://registry.test/token"
SERVICE = "registry.test"
ALICE = basic("alice", "wonderland")
BOB = basic("bob", "builder")
ACCESS: list[dict[str, Any]] = [
    {"repository": "**", "pull": ["*"]},
    {"repository": "team/*", "push": ["alice"], "delete": ["alice"]},
    {"repository": "public/*", "anonymous": ["pull"]},
    {"catalog": ["alice"]},
]


@pytest.fixture
def auth(tmp_path: Path) -> dict[str, Any]:
    users = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})
    return {
        "token": {"realm": REALM, "service": SERVICE, "issuer": "wharf"},
        "tokenservice": {"users": str(users), "access": ACCESS},
    }


@pytest.fixture
async def client(auth: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with auth_app(auth) as (_, http):
        yield http


async def fetch_token(
    client: httpx.AsyncClient, scope: str | list[str] | None, credentials: dict[str, str] | None
) -> str:
    params: dict[str, Any] = {"service": SERVICE}
    if scope:
        params["scope"] = scope
    response = await client.get("/token", params=params, headers=credentials or {})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert response.headers["Cache-Control"] == "no-store"
    return str(body["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_challenge(response: httpx.Response, scope: str | None, error: str | None) -> None:
    assert response.status_code == 401, response.text
    if response.request.method != "HEAD":
        assert error_codes(response) == ["UNAUTHORIZED"]
    params = challenge_params(response.headers["WWW-Authenticate"])
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert params.pop("realm") == REALM
    assert params.pop("service") == SERVICE
    assert params.pop("scope", None) == scope
    assert params.pop("error", None) == error
    assert params == {}


async def test_the_docker_token_flow(client: httpx.AsyncClient) -> None:
    # 1. the client pings and learns where to get tokens
    response = await client.get("/v2/")
    assert_challenge(response, None, None)
    # 2. login: a token for no scope proves the credentials
    token = await fetch_token(client, None, ALICE)
    assert (await client.get("/v2/", headers=bearer(token))).status_code == 200
    # 3. push: the registry names the scope it needs, the client asks for it
    response = await client.post("/v2/team/app/blobs/uploads/", headers=bearer(token))
    assert_challenge(response, "repository:team/app:pull,push", "insufficient_scope")
    scope = challenge_params(response.headers["WWW-Authenticate"])["scope"]
    client.headers.update(bearer(await fetch_token(client, scope, ALICE)))
    _, manifest = await push_image(client, "team/app", "v1")
    # 4. another user pulls with a pull token
    client.headers.update(
        bearer(await fetch_token(client, "repository:team/app:pull", BOB)),
    )
    response = await client.get("/v2/team/app/manifests/v1")
    assert response.status_code == 200
    assert response.content == manifest


async def test_a_user_gets_only_what_the_rules_allow(client: httpx.AsyncClient) -> None:
    client.headers.update(bearer(await fetch_token(client, "repository:team/app:pull,push", BOB)))
    response = await client.post("/v2/team/app/blobs/uploads/")
    # Distribution's answer to a token without the scope: 401 insufficient_scope, not 403.
    assert_challenge(response, "repository:team/app:pull,push", "insufficient_scope")
    assert (await client.get("/v2/team/app/tags/list")).status_code == 404  # pull is allowed


async def test_anonymous_pull_where_the_rules_allow_it(client: httpx.AsyncClient) -> None:
    async def pull_token(repository: str) -> str:
        return await fetch_token(client, f"repository:{repository}:pull", None)

    response = await client.get(
        "/v2/public/app/tags/list", headers=bearer(await pull_token("public/app"))
    )
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]
    response = await client.get(
        "/v2/team/app/tags/list", headers=bearer(await pull_token("team/app"))
    )
    assert_challenge(response, "repository:team/app:pull", "insufficient_scope")


SCOPED = [
    ("GET", "/v2/team/app/manifests/v1", "pull"),
    ("HEAD", "/v2/team/app/manifests/v1", "pull"),
    ("PUT", "/v2/team/app/manifests/v1", "push"),
    ("DELETE", "/v2/team/app/manifests/v1", "delete"),
    ("GET", "/v2/team/app/blobs/{digest}", "pull"),
    ("HEAD", "/v2/team/app/blobs/{digest}", "pull"),
    ("DELETE", "/v2/team/app/blobs/{digest}", "delete"),
    ("POST", "/v2/team/app/blobs/uploads/", "push"),
    ("GET", "/v2/team/app/tags/list", "pull"),
    ("GET", "/v2/team/app/referrers/{digest}", "pull"),
]


@pytest.mark.parametrize(("method", "path", "action"), SCOPED)
async def test_every_endpoint_checks_its_scope(
    client: httpx.AsyncClient, method: str, path: str, action: str
) -> None:
    path = path.format(digest=sha256(b"x"))
    needed = "pull,push" if action == "push" else action
    others = {"pull", "push", "delete"} - set(needed.split(","))
    lacking = await fetch_token(client, f"repository:team/app:{','.join(sorted(others))}", ALICE)
    response = await client.request(method, path, headers=bearer(lacking))
    assert_challenge(response, f"repository:team/app:{needed}", "insufficient_scope")
    holding = await fetch_token(client, f"repository:team/app:{needed}", ALICE)
    response = await client.request(method, path, headers=bearer(holding))
    assert response.status_code != 401
    other = await fetch_token(client, f"repository:team/other:{needed}", ALICE)
    response = await client.request(method, path, headers=bearer(other))
    assert response.status_code == 401


async def test_star_in_a_token_allows_every_action(tmp_path: Path) -> None:
    authority = Authority.create("issuer")
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(cert_pem(authority.certificate))
    auth = {
        "token": {
            "realm": REALM,
            "service": SERVICE,
            "issuer": "iss",
            "rootcertbundle": str(bundle),
        }
    }
    access = [{"type": "repository", "name": "team/app", "actions": ["*"]}]
    token = mint(
        claims(access=access, issuer="iss", audience=SERVICE),
        authority.key,
        x5c=[der_b64(authority.certificate)],
    )
    async with auth_app(auth) as (_, client):
        client.headers.update(bearer(token))
        await push_image(client, "team/app", "v1")
        assert (await client.delete("/v2/team/app/manifests/v1")).status_code == 202


async def test_catalog_scope(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/v2/_catalog", headers=bearer(await fetch_token(client, None, ALICE))
    )
    assert_challenge(response, "registry:catalog:*", "insufficient_scope")
    for user, status in ((ALICE, 200), (BOB, 401)):
        token = await fetch_token(client, "registry:catalog:*", user)
        assert (await client.get("/v2/_catalog", headers=bearer(token))).status_code == status


async def test_mount_needs_pull_on_the_source(client: httpx.AsyncClient) -> None:
    data = b"shared layer"
    digest = sha256(data)
    client.headers.update(bearer(await fetch_token(client, "repository:team/a:pull,push", ALICE)))
    await push_blob(client, "team/a", data)
    mount = {"mount": digest, "from": "team/a"}
    only_target = await fetch_token(client, "repository:team/b:pull,push", ALICE)
    response = await client.post(
        "/v2/team/b/blobs/uploads/", params=mount, headers=bearer(only_target)
    )
    assert response.status_code == 202  # not mounted: an upload session instead
    both = await fetch_token(
        client, ["repository:team/b:pull,push", "repository:team/a:pull"], ALICE
    )
    response = await client.post("/v2/team/b/blobs/uploads/", params=mount, headers=bearer(both))
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == digest
    # Without "from", knowing a digest is no proof of access: no automatic mount with auth.
    elsewhere = await fetch_token(client, "repository:team/c:pull,push", ALICE)
    response = await client.post(
        "/v2/team/c/blobs/uploads/", params={"mount": digest}, headers=bearer(elsewhere)
    )
    assert response.status_code == 202


# --- tokens from an external issuer --------------------------------------------------------


@pytest.fixture
def issuer(tmp_path: Path) -> tuple[Authority, dict[str, Any]]:
    authority = Authority.create("external token issuer")
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(cert_pem(authority.certificate))
    auth = {
        "token": {
            "realm": REALM,
            "service": SERVICE,
            "issuer": "external",
            "rootcertbundle": str(bundle),
        }
    }
    return authority, auth


PULL_APP = [{"type": "repository", "name": "team/app", "actions": ["pull"]}]


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        ({}, True),
        ({"audience": [SERVICE, "other"]}, True),
        ({"audience": "other.registry"}, False),
        ({"issuer": "someone-else"}, False),
        ({"lifetime": -3600}, False),
        ({"not_before": 4_000_000_000}, False),
    ],
)
async def test_external_tokens(
    issuer: tuple[Authority, dict[str, Any]], changes: dict[str, Any], accepted: bool
) -> None:
    authority, auth = issuer
    body = claims(access=PULL_APP, **{"issuer": "external", "audience": SERVICE, **changes})
    token = mint(body, authority.key, x5c=[der_b64(authority.certificate)])
    async with auth_app(auth) as (_, client):
        response = await client.get("/v2/team/app/tags/list", headers=bearer(token))
        if accepted:
            assert response.status_code == 404
        else:
            assert_challenge(response, "repository:team/app:pull", "invalid_token")


async def test_token_signed_by_another_key(issuer: tuple[Authority, dict[str, Any]]) -> None:
    authority, auth = issuer
    stranger = Authority.create("external token issuer")  # same name, other key
    body = claims(access=PULL_APP, issuer="external", audience=SERVICE)
    forged = [
        mint(body, stranger.key, x5c=[der_b64(stranger.certificate)]),
        mint(body, stranger.key, x5c=[der_b64(authority.certificate)]),
        mint(body, stranger.key, kid="unknown"),
    ]
    async with auth_app(auth) as (_, client):
        for token in forged:
            response = await client.get("/v2/team/app/tags/list", headers=bearer(token))
            assert_challenge(response, "repository:team/app:pull", "invalid_token")


async def test_built_in_tokens_are_refused_by_another_registry(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    token = await fetch_token(client, "repository:team/app:pull", ALICE)
    users = write_htpasswd(tmp_path / "other-htpasswd", {"alice": "wonderland"})
    other = {
        "token": {"realm": REALM, "service": SERVICE, "issuer": "wharf"},
        "tokenservice": {"users": str(users), "access": ACCESS},
    }
    async with auth_app(other, secret="another-secret") as (_, stranger):
        response = await stranger.get("/v2/team/app/tags/list", headers=bearer(token))
        assert_challenge(response, "repository:team/app:pull", "invalid_token")


# --- the /token endpoint itself ------------------------------------------------------------


async def test_token_endpoint_errors(client: httpx.AsyncClient) -> None:
    response = await client.get("/token", params={"service": SERVICE}, headers=basic("alice", "x"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{SERVICE}"'
    assert response.json()["error"] == "invalid_grant"
    response = await client.get("/token", params={"service": "elsewhere"}, headers=ALICE)
    assert response.status_code == 400
    response = await client.get("/token", params={"scope": "nonsense"}, headers=ALICE)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")
    response = await client.get(
        "/token", params=[("scope", f"repository:r{i}:pull") for i in range(80)]
    )
    assert response.status_code == 414  # too many query fields: the URI is too long
    response = await client.put("/token")
    assert response.status_code == 405
    assert error_codes(response) == ["UNSUPPORTED"]


async def test_oauth2_password_and_refresh_grants(client: httpx.AsyncClient) -> None:
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "wonderland",
        "service": SERVICE,
        "client_id": "docker",
        "access_type": "offline",
        "scope": "repository:team/app:pull,push repository:team/other:pull",
    }
    response = await client.post("/token", data=form)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "repository:team/app:pull,push repository:team/other:pull"
    assert response.headers["Cache-Control"] == "no-store"
    refresh = body["refresh_token"]
    client.headers.update(bearer(body["access_token"]))
    await push_image(client, "team/app", "v1")
    response = await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": SERVICE,
            "scope": "repository:team/app:delete",
            "client_id": "docker",
        },
    )
    assert response.status_code == 200, response.text
    client.headers.update(bearer(response.json()["access_token"]))
    assert (await client.delete("/v2/team/app/manifests/v1")).status_code == 202
    # The refresh token itself opens nothing.
    response = await client.get("/v2/", headers=bearer(refresh))
    assert_challenge(response, None, "invalid_token")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password", "username": "alice", "password": "x"}, 401, "invalid_grant"),
        ({"grant_type": "password", "username": "alice"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "x.y.z"}, 400, "invalid_grant"),
        ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type"),
        ({"scope": "repository:a:pull"}, 400, "unsupported_grant_type"),
    ],
)
async def test_oauth2_errors(
    client: httpx.AsyncClient, form: dict[str, str], status: int, error: str
) -> None:
    response = await client.post("/token", data=form)
    assert (response.status_code, response.json()["error"]) == (status, error)


async def test_oauth2_needs_a_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", json={"grant_type": "password"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    response = await client.post(
        "/token",
        content=b"\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    response = await client.post(
        "/token",
        content=b"a=" + b"x" * (65 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


async def test_token_path_and_prefix(auth: dict[str, Any]) -> None:
    auth["tokenservice"]["path"] = "/auth/token"
    async with auth_app(auth, prefix="/registry") as (_, client):
        assert (await client.get("/registry/auth/token", headers=ALICE)).status_code == 200
        assert (await client.get("/token", headers=ALICE)).status_code == 404
        assert (await client.get("/auth/token", headers=ALICE)).status_code == 404


async def test_realm_never_comes_from_the_request(client: httpx.AsyncClient) -> None:
    # No open redirect: clients send credentials to the realm, so no header may choose it.
    response = await client.get(
        "/v2/team/app/tags/list",
        headers={
            "Host": "evil.example",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "http",
        },
    )
    assert challenge_params(response.headers["WWW-Authenticate"])["realm"] == REALM
