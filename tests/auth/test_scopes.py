"""Scopes and credentials as clients send them."""

from __future__ import annotations

import base64

import pytest

from wharf.auth import Access
from wharf.auth.credentials import basic_credentials, bearer_token
from wharf.auth.scopes import MAX_SCOPES, format_scopes, parse_scopes


def test_parse_scopes() -> None:
    assert parse_scopes(["repository:a/b:pull,push", "registry:catalog:*"]) == [
        Access("repository", "a/b", "pull"),
        Access("repository", "a/b", "push"),
        Access("registry", "catalog", "*"),
    ]
    # OAuth2 separates scopes with spaces; names may hold colons; a class is dropped.
    assert parse_scopes(["repository:x:pull repository:host:5000/y:push"]) == [
        Access("repository", "x", "pull"),
        Access("repository", "host:5000/y", "push"),
    ]
    assert parse_scopes(["repository(plugin):p:pull"]) == [Access("repository", "p", "pull")]
    assert parse_scopes([]) == []
    assert parse_scopes([""]) == []


@pytest.mark.parametrize("scope", ["repository", "repository:a", ":a:pull", "repository::pull"])
def test_malformed_scopes(scope: str) -> None:
    with pytest.raises(ValueError, match="malformed scope"):
        parse_scopes([scope])


def test_scope_limits() -> None:
    with pytest.raises(ValueError, match="more than"):
        parse_scopes([f"repository:r{i}:pull" for i in range(MAX_SCOPES + 1)])
    with pytest.raises(ValueError, match="too long"):
        parse_scopes(["repository:" + "a" * 600 + ":pull"])


def test_format_scopes_groups_by_resource() -> None:
    accesses = [
        Access("repository", "a", "pull"),
        Access("repository", "b", "pull"),
        Access("repository", "a", "push"),
        Access("repository", "a", "pull"),
    ]
    assert format_scopes(accesses) == "repository:a:pull,push repository:b:pull"
    assert format_scopes([]) == ""


def _basic(raw: bytes) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def test_basic_credentials() -> None:
    assert basic_credentials(_basic(b"alice:pass:word")) == ("alice", "pass:word")
    assert basic_credentials({"authorization": "basic " + base64.b64encode(b"a:").decode()}) == (
        "a",
        "",
    )
    assert basic_credentials(_basic("jos\u00e9:\u00e7a".encode())) == ("jos\u00e9", "\u00e7a")
    for headers in (
        {},
        {"authorization": ""},
        {"authorization": "Basic"},
        {"authorization": "Basic not-base64!"},
        _basic(b"no-colon"),
        _basic(b":no-user"),
        _basic(b"\xff\xfe:x"),
        {"authorization": "Bearer abc"},
        {"authorization": "Basic " + "A" * 20000},
    ):
        assert basic_credentials(headers) is None


def test_bearer_token() -> None:
    assert bearer_token({"authorization": "Bearer abc.def.ghi"}) == "abc.def.ghi"
    assert bearer_token({"authorization": "bearer  abc"}) == "abc"
    assert bearer_token({"authorization": "Bearer"}) is None
    assert bearer_token({"authorization": "Basic abc"}) is None
    assert bearer_token({}) is None
