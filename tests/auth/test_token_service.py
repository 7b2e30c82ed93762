"""The built-in token service: what it grants, to whom, and how its tokens are checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from joserfc import jws

from tests.auth.support import basic, ec_key, pem_private, rsa_key, write_htpasswd
from wharf.auth import Access
from wharf.auth.factory import create_auth
from wharf.auth.token import TokenController
from wharf.auth.token_service import TokenRequestError, TokenService

SERVICE = "registry.test"


def setup(
    tmp_path: Path, *, secret: str = "shared-secret", **service: Any
) -> tuple[TokenService, TokenController]:
    users = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})
    options: dict[str, Any] = {
        "users": str(users),
        "access": [
            {"repository": "**", "pull": ["*"]},
            {"repository": "team/*", "push": ["alice"], "delete": ["alice"]},
            {"repository": "public/*", "anonymous": ["pull"]},
            {"catalog": ["alice"]},
        ],
        **service,
    }
    auth = {
        "token": {"realm": "https://registry.test/token", "service": SERVICE, "issuer": "wharf"},
        "tokenservice": options,
    }
    built = create_auth(auth, secret=secret)
    assert isinstance(built.controller, TokenController)
    assert built.token_service is not None
    return built.token_service, built.controller


def payload(token: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(jws.extract_compact(token.encode()).payload)
    return document


def header(token: str) -> dict[str, Any]:
    return dict(jws.extract_compact(token.encode()).headers())


async def test_issues_the_intersection_of_asked_and_allowed(tmp_path: Path) -> None:
    service, controller = setup(tmp_path)
    issued = await service.issue(
        "bob", ["repository:team/app:pull,push", "repository:other:pull"], service=SERVICE
    )
    claims = controller.verifier.verify(issued.token)
    assert claims.subject == "bob"
    assert claims.granted == {
        Access("repository", "team/app", "pull"),
        Access("repository", "other", "pull"),
    }
    assert issued.scope == "repository:team/app:pull repository:other:pull"
    body = payload(issued.token)
    assert body["iss"] == "wharf"
    assert body["aud"] == SERVICE
    assert body["exp"] - body["iat"] == issued.expires_in == 300
    assert body["access"] == [
        {"type": "repository", "name": "other", "actions": ["pull"]},
        {"type": "repository", "name": "team/app", "actions": ["pull"]},
    ]
    assert issued.issued_at.endswith("Z")


async def test_alice_gets_push_and_the_catalog(tmp_path: Path) -> None:
    service, controller = setup(tmp_path)
    issued = await service.issue(
        "alice", ["repository:team/app:pull,push,delete", "registry:catalog:*"]
    )
    granted = controller.verifier.verify(issued.token).granted
    assert Access("repository", "team/app", "delete") in granted
    assert Access("registry", "catalog", "*") in granted
    access = payload(issued.token)["access"]
    assert {"type": "repository", "name": "team/app", "actions": ["pull", "push", "delete"]} in (
        access
    )


async def test_anonymous_callers(tmp_path: Path) -> None:
    service, controller = setup(tmp_path)
    issued = await service.issue(None, ["repository:public/a:pull,push", "repository:team/a:pull"])
    claims = controller.verifier.verify(issued.token)
    assert claims.subject == ""
    assert claims.granted == {Access("repository", "public/a", "pull")}
    empty = await service.issue(None, [])
    assert controller.verifier.verify(empty.token).granted == set()


async def test_scopes_naming_nothing_are_not_granted(tmp_path: Path) -> None:
    service, controller = setup(tmp_path)
    issued = await service.issue(
        "alice",
        ["repository:UPPER/case:pull", "repository:a//b:pull", "plugin:x:pull", "registry:x:*"],
    )
    assert controller.verifier.verify(issued.token).granted == set()


async def test_refused_requests(tmp_path: Path) -> None:
    service, _ = setup(tmp_path)
    with pytest.raises(TokenRequestError) as caught:
        await service.issue("alice", [], service="another.registry")
    assert (caught.value.error, caught.value.status) == ("invalid_request", 400)
    with pytest.raises(TokenRequestError) as caught:
        await service.issue("alice", ["repository:x"])
    assert caught.value.error == "invalid_scope"


async def test_basic_user(tmp_path: Path) -> None:
    service, _ = setup(tmp_path)
    lowered = {k.lower(): v for k, v in basic("alice", "wonderland").items()}
    assert await service.basic_user(lowered) == "alice"
    assert await service.basic_user({}) is None
    for headers in (
        basic("alice", "wrong"),
        basic("nobody", "wonderland"),
        {"Authorization": "Basic %%%"},
    ):
        with pytest.raises(TokenRequestError) as caught:
            await service.basic_user({k.lower(): v for k, v in headers.items()})
        assert caught.value.status == 401


async def test_refresh_tokens(tmp_path: Path) -> None:
    service, controller = setup(tmp_path)
    issued = await service.password_grant(
        "alice", "wonderland", ["repository:team/a:pull"], offline=True
    )
    assert issued.refresh_token is not None
    refreshed = await service.refresh_grant(issued.refresh_token, ["repository:team/a:push"])
    assert controller.verifier.verify(refreshed.token).granted == {
        Access("repository", "team/a", "push")
    }
    assert refreshed.refresh_token == issued.refresh_token
    # A refresh token is not an access token, nor the other way round.
    with pytest.raises(Exception, match="audience"):
        controller.verifier.verify(issued.refresh_token)
    with pytest.raises(TokenRequestError, match="invalid refresh token"):
        await service.refresh_grant(issued.token, [])
    with pytest.raises(TokenRequestError, match="invalid refresh token"):
        await service.refresh_grant("garbage", [])


async def test_refresh_tokens_die_with_the_password(tmp_path: Path) -> None:
    service, _ = setup(tmp_path)
    assert service.users is not None
    service.users.check_interval = 0
    issued = await service.password_grant("bob", "builder", [], offline=True)
    assert issued.refresh_token is not None
    await service.refresh_grant(issued.refresh_token, [])
    write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "changed"})
    with pytest.raises(TokenRequestError, match="revoked"):
        await service.refresh_grant(issued.refresh_token, [])
    write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    with pytest.raises(TokenRequestError, match="revoked"):
        await service.refresh_grant(issued.refresh_token, [])


async def test_no_refresh_token_for_anonymous_callers(tmp_path: Path) -> None:
    service, _ = setup(tmp_path)
    assert (await service.issue(None, [], offline=True)).refresh_token is None
    with pytest.raises(TokenRequestError) as caught:
        await service.password_grant("alice", "wrong", [])
    assert caught.value.error == "invalid_grant"


async def test_workers_sharing_a_secret_accept_each_others_tokens(tmp_path: Path) -> None:
    for worker in ("1", "2", "3"):
        (tmp_path / worker).mkdir()
    first, _ = setup(tmp_path / "1")
    _, second = setup(tmp_path / "2")
    token = (await first.issue("alice", ["repository:team/a:pull"])).token
    assert header(token)["alg"] == "HS256"
    assert second.verifier.verify(token).subject == "alice"
    _, stranger = setup(tmp_path / "3", secret="another-secret")
    with pytest.raises(Exception, match="untrusted key"):
        stranger.verifier.verify(token)


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (ec_key, "ES256"),
        (rsa_key, "RS256"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
)
async def test_signing_key_from_a_file(tmp_path: Path, make: Any, algorithm: str) -> None:
    key_file = tmp_path / "token-key.pem"
    key_file.write_bytes(pem_private(make()))
    service, controller = setup(tmp_path, key=str(key_file))
    token = (await service.issue("alice", ["repository:team/a:pull"])).token
    assert header(token)["alg"] == algorithm
    assert controller.verifier.verify(token).subject == "alice"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key", "not an unencrypted PEM private key"),
        (
            pem_private(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
            "at least 2048 bits",
        ),
    ],
)
def test_bad_signing_keys(tmp_path: Path, content: bytes, message: str) -> None:
    key_file = tmp_path / "token-key.pem"
    key_file.write_bytes(content)
    with pytest.raises(ValueError, match=f"auth.tokenservice.key: .*{message}"):
        setup(tmp_path, key=str(key_file))
