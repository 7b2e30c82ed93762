"""The ``auth`` section: which backends it builds, and one-line errors for bad settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.auth.support import Authority, cert_pem, write_htpasswd
from wharf.auth.factory import create_access_controller, create_auth, validate_auth
from wharf.auth.htpasswd import HtpasswdController
from wharf.auth.token import TokenController
from wharf.config.load import ConfigError


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(cert_pem(Authority.create().certificate))
    garbage = tmp_path / "garbage"
    garbage.write_text("not what you expect\n")
    return {
        "htpasswd": str(htpasswd),
        "bundle": str(bundle),
        "garbage": str(garbage),
        "missing": str(tmp_path / "missing"),
    }


def token(**options: Any) -> dict[str, Any]:
    return {"realm": "https://registry.test/token", "service": "svc", "issuer": "iss", **options}


def test_no_auth_section() -> None:
    assert create_access_controller(None) is None
    assert create_access_controller({}) is None
    assert create_auth(None).token_service is None


def test_backends(files: dict[str, str]) -> None:
    htpasswd = {"htpasswd": {"realm": "r", "path": files["htpasswd"]}}
    assert isinstance(create_access_controller(htpasswd), HtpasswdController)
    external = {"token": token(rootcertbundle=files["bundle"])}
    built = create_auth(external)
    assert isinstance(built.controller, TokenController)
    assert built.token_service is None
    own = {"token": token(), "tokenservice": {"users": files["htpasswd"]}}
    built = create_auth(own, secret="s")
    assert isinstance(built.controller, TokenController)
    assert built.token_service is not None
    assert built.token_service.path == "/token"


def test_option_names_are_case_insensitive(files: dict[str, str]) -> None:
    # Environment overrides (REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE) keep Distribution's case.
    built = create_auth({"Token": {**token(), "RootCertBundle": files["bundle"]}})
    assert isinstance(built.controller, TokenController)


@pytest.mark.parametrize(
    ("auth", "secret", "message"),
    [
        ({"silly": {"realm": "r", "service": "s"}}, "", "configure exactly one of htpasswd, token"),
        (
            {"htpasswd": {"realm": "r", "path": "{htpasswd}"}, "token": token()},
            "",
            "exactly one",
        ),
        ({"tokenservice": {}}, "s", r"exactly one of htpasswd, token \(found: none\)"),
        (
            {"htpasswd": {"realm": "r", "path": "{htpasswd}"}, "tokenservice": {}},
            "s",
            "auth.tokenservice: needs auth.token",
        ),
        ({"htpasswd": {"path": "{htpasswd}"}}, "", "auth.htpasswd.realm: required"),
        ({"htpasswd": {"realm": "r"}}, "", "auth.htpasswd.path: required"),
        ({"htpasswd": {"realm": "r", "path": "{missing}"}}, "", "auth.htpasswd.path: no such file"),
        (
            {"htpasswd": {"realm": "r", "path": "{htpasswd}", "paht": "x"}},
            "",
            "auth.htpasswd: unknown option paht",
        ),
        ({"htpasswd": "just-a-string"}, "", "auth.htpasswd: expected a mapping"),
        ({"token": token(realm="/token")}, "", "auth.token.realm: must be an absolute http"),
        ({"token": token(issuer=None)}, "", "auth.token.issuer: required"),
        ({"token": token()}, "", "auth.token.rootcertbundle: token auth needs at least one"),
        (
            {"token": token(rootcertbundle="{garbage}")},
            "",
            "auth.token.rootcertbundle: .*not a PEM certificate bundle",
        ),
        ({"token": token(jwks="{garbage}")}, "", "auth.token.jwks: .*not a JSON Web Key Set"),
        (
            {"token": token(rootcertbundle="{bundle}", autoredirect=True)},
            "",
            "auth.token.autoredirect: not supported",
        ),
        (
            {"token": token(rootcertbundle="{bundle}", signingalgorithms=["none"])},
            "",
            "auth.token.signingalgorithms: unsupported none",
        ),
        (
            {"token": token(rootcertbundle="{bundle}", rootcertbundel="x")},
            "",
            "auth.token: unknown option rootcertbundel",
        ),
        (
            {"token": token(), "tokenservice": {"users": "{htpasswd}"}},
            "",
            "auth.tokenservice.key: required when http.secret is empty",
        ),
        (
            {"token": token(), "tokenservice": {"key": "{missing}"}},
            "s",
            "auth.tokenservice.key: no such file",
        ),
        (
            {"token": token(), "tokenservice": {"path": "/v2/token"}},
            "s",
            "auth.tokenservice.path: must be a path outside /v2/",
        ),
        (
            {"token": token(), "tokenservice": {"expiration": "soon"}},
            "s",
            "auth.tokenservice.expiration: invalid duration",
        ),
        (
            {"token": token(), "tokenservice": {"expiration": "-5m"}},
            "s",
            "auth.tokenservice.expiration: must be positive",
        ),
        (
            {"token": token(), "tokenservice": {"access": [{"repository": "a", "push": 3}]}},
            "s",
            r"auth.tokenservice.access\[0\].push: expected a list of strings",
        ),
        (
            {"token": token(signingalgorithms=["ES256"]), "tokenservice": {}},
            "s",
            "auth.token.signingalgorithms: the token service signs with HS256",
        ),
    ],
)
def test_errors_are_one_line_naming_the_option(
    files: dict[str, str], auth: dict[str, Any], secret: str, message: str
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items() if v is not None}
        if isinstance(value, str):
            return value.format(**files)
        return value

    with pytest.raises(ConfigError, match=message) as caught:
        create_auth(fill(auth), secret=secret)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_validate_auth(files: dict[str, str]) -> None:
    validate_auth(None)
    validate_auth({"token": token(), "tokenservice": {"users": files["htpasswd"]}})
    with pytest.raises(ConfigError, match=r"auth\.htpasswd\.path: no such file"):
        validate_auth({"htpasswd": {"realm": "r", "path": files["missing"]}})
