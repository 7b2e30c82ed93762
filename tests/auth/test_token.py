"""The token resource server: which tokens are accepted, and what they grant."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from tests.auth.support import (
    Authority,
    cert_pem,
    claims,
    der_b64,
    ec_key,
    mint,
    rsa_key,
    unsigned,
)
from wharf.auth import Access
from wharf.auth.keys import key_ids
from wharf.auth.options import Options
from wharf.auth.token import LEEWAY, InvalidToken, TokenController, TokenVerifier
from wharf.errors import Unauthorized

PULL_FOO = [{"type": "repository", "name": "foo", "actions": ["pull"]}]


def verifier(**options: Any) -> TokenVerifier:
    options.setdefault("issuer", "test-issuer")
    options.setdefault("service", "test-service")
    return TokenVerifier(**options)


@pytest.fixture
def key() -> Any:
    return ec_key()


@pytest.fixture
def trusted(key: Any) -> TokenVerifier:
    return verifier(trusted={"k1": ECKey.import_key(key.public_key())})


# --- accepted tokens -----------------------------------------------------------------------


def test_kid_names_a_jwks_key(trusted: TokenVerifier, key: Any) -> None:
    token = mint(claims(access=PULL_FOO), key, kid="k1")
    found = trusted.verify(token)
    assert found.subject == "alice"
    assert found.granted == {Access("repository", "foo", "pull")}


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512", "PS256", "PS512"])
def test_rsa_algorithms(algorithm: str) -> None:
    private = rsa_key()
    check = verifier(trusted={"r": RSAKey.import_key(private.public_key())})
    assert check.verify(mint(claims(), private, kid="r", alg=algorithm)).subject == "alice"


def test_hmac_key_from_jwks() -> None:
    secret = b"s" * 32
    check = verifier(trusted={"h": OctKey.import_key(secret)})
    assert check.verify(mint(claims(), secret, kid="h")).subject == "alice"


def test_eddsa() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    check = verifier(trusted={"e": OKPKey.import_key(private.public_key())})
    token = mint(claims(), OKPKey.import_key(private), kid="e", alg="EdDSA")
    assert check.verify(token).subject == "alice"


def test_self_signed_certificate_in_x5c() -> None:
    # The usual Distribution setup: the token service's own certificate is the root bundle.
    authority = Authority.create("token signer")
    check = verifier(roots=[authority.certificate])
    token = mint(claims(), authority.key, x5c=[der_b64(authority.certificate)])
    assert check.verify(token).subject == "alice"


def test_x5c_chain_through_an_intermediate() -> None:
    root = Authority.create("root")
    middle_key, middle_cert = root.issue("intermediate")
    # Re-issue the intermediate as a CA: Authority.issue makes leaves.
    intermediate = Authority(middle_key, _as_ca(root, middle_key, middle_cert))
    leaf_key, leaf_cert = intermediate.issue("signer")
    check = verifier(roots=[root.certificate])
    chain = [der_b64(leaf_cert), der_b64(intermediate.certificate)]
    assert check.verify(mint(claims(), leaf_key, x5c=chain)).subject == "alice"
    with pytest.raises(InvalidToken, match="certificate chain"):
        check.verify(mint(claims(), leaf_key, x5c=chain[:1]))  # intermediate missing


def test_jwk_header_with_its_certificate_chain() -> None:
    authority = Authority.create()
    leaf_key, leaf_cert = authority.issue("signer")
    jwk = ECKey.import_key(leaf_key.public_key()).as_dict()
    jwk["x5c"] = [der_b64(leaf_cert)]
    check = verifier(roots=[authority.certificate])
    assert check.verify(mint(claims(), leaf_key, jwk=jwk)).subject == "alice"


@pytest.mark.parametrize("kind", ["thumbprint", "libtrust"])
def test_kid_of_a_root_certificate_key(kind: str) -> None:
    authority = Authority.create()
    thumbprint, libtrust = key_ids(authority.key.public_key())
    kid = thumbprint if kind == "thumbprint" else libtrust
    check = verifier(roots=[authority.certificate])
    assert check.verify(mint(claims(), authority.key, kid=kid)).subject == "alice"


def test_libtrust_key_id_format() -> None:
    libtrust = key_ids(ec_key().public_key())[1]
    groups = libtrust.split(":")
    assert len(groups) == 12
    assert all(len(group) == 4 and group.isalnum() and group.isupper() for group in groups)


def test_audience_may_be_a_list(trusted: TokenVerifier, key: Any) -> None:
    token = mint(claims(audience=["other", "test-service"]), key, kid="k1")
    assert trusted.verify(token).subject == "alice"


def test_clock_skew_within_the_leeway(trusted: TokenVerifier, key: Any) -> None:
    now = time.time()
    expired_recently = mint(claims(lifetime=-(LEEWAY - 10)), key, kid="k1")
    assert trusted.verify(expired_recently, now=now)
    starts_soon = mint(claims(not_before=now + LEEWAY - 10), key, kid="k1")
    assert trusted.verify(starts_soon, now=now)


def test_star_grants_every_action() -> None:
    private = ec_key()
    controller = _controller(private)
    token = mint(
        claims(access=[{"type": "repository", "name": "foo", "actions": ["*"]}]), private, kid="k"
    )
    found = controller.verifier.verify(token)
    for action in ("pull", "push", "delete"):
        assert found.allows(Access("repository", "foo", action))
    assert not found.allows(Access("repository", "bar", "pull"))


# --- refused tokens ------------------------------------------------------------------------


def refused(check: TokenVerifier, token: str, match: str | None = None) -> None:
    with pytest.raises(InvalidToken, match=match):
        check.verify(token)


def test_signed_by_another_key(trusted: TokenVerifier) -> None:
    refused(trusted, mint(claims(), ec_key(), kid="k1"), "bad signature")


def test_unknown_kid(trusted: TokenVerifier, key: Any) -> None:
    refused(trusted, mint(claims(), key, kid="k2"), "untrusted key")


def test_no_way_to_find_the_key(trusted: TokenVerifier, key: Any) -> None:
    refused(trusted, mint(claims(), key), "no x5c, jwk or kid")


def test_expired(trusted: TokenVerifier, key: Any) -> None:
    refused(trusted, mint(claims(lifetime=-(LEEWAY + 5)), key, kid="k1"), "expired")


def test_without_exp(trusted: TokenVerifier, key: Any) -> None:
    body = claims()
    del body["exp"]
    refused(trusted, mint(body, key, kid="k1"), "expired")


def test_not_valid_yet(trusted: TokenVerifier, key: Any) -> None:
    later = time.time() + LEEWAY + 30
    refused(trusted, mint(claims(not_before=later), key, kid="k1"), "not valid yet")


def test_another_audience(trusted: TokenVerifier, key: Any) -> None:
    refused(trusted, mint(claims(audience="other-service"), key, kid="k1"), "audience")
    refused(trusted, mint(claims(audience=["a", "b"]), key, kid="k1"), "audience")


def test_another_issuer(trusted: TokenVerifier, key: Any) -> None:
    refused(trusted, mint(claims(issuer="someone-else"), key, kid="k1"), "issuer")


def test_algorithm_none(trusted: TokenVerifier) -> None:
    refused(trusted, unsigned(claims(), kid="k1"), "algorithm 'none'")


def test_algorithm_outside_signingalgorithms(key: Any) -> None:
    check = verifier(trusted={"k1": ECKey.import_key(key.public_key())}, algorithms=["RS256"])
    refused(check, mint(claims(), key, kid="k1"), "not accepted")


def test_public_key_used_as_hmac_secret() -> None:
    # The algorithm confusion attack: HS256 with the RSA public key's PEM as the secret.
    private = rsa_key()
    check = verifier(trusted={"r": RSAKey.import_key(private.public_key())})
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": "r"}).encode())
    body = _b64(json.dumps(claims()).encode())
    signature = _b64(hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest())
    refused(check, f"{header}.{body}.{signature}", "HS256 cannot be verified")


def test_x5c_from_another_authority() -> None:
    trusted_root, stranger = Authority.create("trusted"), Authority.create("stranger")
    leaf_key, leaf_cert = stranger.issue("signer")
    check = verifier(roots=[trusted_root.certificate])
    refused(check, mint(claims(), leaf_key, x5c=[der_b64(leaf_cert)]), "certificate chain")


def test_x5c_with_an_expired_certificate() -> None:
    authority = Authority.create()
    leaf_key, leaf_cert = authority.issue("signer", expired=True)
    check = verifier(roots=[authority.certificate])
    refused(check, mint(claims(), leaf_key, x5c=[der_b64(leaf_cert)]), "certificate chain")


def test_x5c_leaf_is_not_the_signing_key() -> None:
    authority = Authority.create()
    _, leaf_cert = authority.issue("signer")
    check = verifier(roots=[authority.certificate])
    refused(check, mint(claims(), ec_key(), x5c=[der_b64(leaf_cert)]), "bad signature")


def test_x5c_without_roots(key: Any) -> None:
    authority = Authority.create()
    refused(
        verifier(trusted={"k1": ECKey.import_key(key.public_key())}),
        mint(claims(), authority.key, x5c=[der_b64(authority.certificate)]),
        "no root certificates",
    )


def test_embedded_jwk_is_not_trusted_by_itself(trusted: TokenVerifier) -> None:
    # A token carrying its own key proves nothing: only a kid of a trusted key counts.
    stranger = ec_key()
    jwk = ECKey.import_key(stranger.public_key()).as_dict()
    refused(trusted, mint(claims(), stranger, jwk=jwk), "untrusted key")
    jwk["kid"] = "k1"  # names a trusted key, but the token is signed by another
    refused(trusted, mint(claims(), stranger, jwk=jwk), "bad signature")


def test_jku_and_x5u_are_never_fetched(trusted: TokenVerifier) -> None:
    stranger = ec_key()
    for header in ({"jku": "http://127.0.0.1:9/keys"}, {"x5u": "http://127.0.0.1:9/cert"}):
        refused(trusted, mint(claims(), stranger, **header), "no x5c, jwk or kid")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln",
        "é.é.é",
        "x" * 20000,
    ],
    ids=lambda raw: raw[:20],
)
def test_malformed(trusted: TokenVerifier, raw: str) -> None:
    refused(trusted, raw)


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        {**claims(), "access": "everything"},
        {**claims(), "access": [{"type": "repository", "name": "foo", "actions": "pull"}]},
        {**claims(), "access": [["repository", "foo", "pull"]]},
        {**claims(), "exp": "tomorrow"},
        {**claims(), "exp": True},
        {**claims(), "sub": 42},
    ],
)
def test_malformed_claims(trusted: TokenVerifier, key: Any, body: Any) -> None:
    from joserfc import jws

    token = jws.serialize_compact(
        {"alg": "ES256", "kid": "k1"}, json.dumps(body).encode(), ECKey.import_key(key)
    )
    refused(trusted, token)


def test_cached_token_still_expires(trusted: TokenVerifier, key: Any) -> None:
    token = mint(claims(lifetime=10), key, kid="k1")
    now = time.time()
    assert trusted.verify(token, now=now)
    assert trusted.verify(token, now=now)  # from the cache
    refused(trusted, token.replace(token[-5:], "AAAAA"))  # a changed token is not cached
    with pytest.raises(InvalidToken, match="expired"):
        trusted.verify(token, now=now + 10 + LEEWAY + 1)


# --- the controller's challenges -----------------------------------------------------------


def _controller(key: Any) -> TokenController:
    return TokenController(
        "https://auth.example/token",
        "test-service",
        verifier(trusted={"k": ECKey.import_key(key.public_key())}),
    )


async def challenge(controller: TokenController, headers: dict[str, str], *wanted: Access) -> str:
    with pytest.raises(Unauthorized) as caught:
        await controller.authorize(headers, wanted)
    assert caught.value.http_status == 401
    return caught.value.headers["WWW-Authenticate"]


async def test_challenge_without_a_token() -> None:
    controller = _controller(ec_key())
    assert await challenge(controller, {}) == (
        'Bearer realm="https://auth.example/token",service="test-service"'
    )
    pull, push = Access("repository", "a/b", "pull"), Access("repository", "a/b", "push")
    assert await challenge(controller, {"authorization": "Basic YTpi"}, pull, push) == (
        'Bearer realm="https://auth.example/token",service="test-service",'
        'scope="repository:a/b:pull,push"'
    )


async def test_challenge_for_an_invalid_token() -> None:
    controller = _controller(ec_key())
    text = await challenge(controller, {"authorization": "Bearer nonsense"})
    assert text.endswith(',error="invalid_token"')


async def test_insufficient_scope_is_401_as_in_distribution() -> None:
    private = ec_key()
    controller = _controller(private)
    token = mint(claims(access=PULL_FOO), private, kid="k")
    headers = {"authorization": f"Bearer {token}"}
    identity = await controller.authorize(headers, [Access("repository", "foo", "pull")])
    assert identity.name == "alice"
    push = Access("repository", "foo", "push")
    assert await challenge(controller, headers, push) == (
        'Bearer realm="https://auth.example/token",service="test-service",'
        'scope="repository:foo:push",error="insufficient_scope"'
    )


async def test_catalog_scope() -> None:
    private = ec_key()
    controller = _controller(private)
    catalog = Access("registry", "catalog", "*")
    token = mint(
        claims(access=[{"type": "registry", "name": "catalog", "actions": ["*"]}]), private, kid="k"
    )
    await controller.authorize({"authorization": f"Bearer {token}"}, [catalog])
    plain = mint(claims(), private, kid="k")
    text = await challenge(controller, {"authorization": f"Bearer {plain}"}, catalog)
    assert 'scope="registry:catalog:*"' in text


# --- configuration -------------------------------------------------------------------------


def test_options_with_a_root_bundle(tmp_path: Path) -> None:
    authority = Authority.create()
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(cert_pem(authority.certificate))
    options = Options(
        "auth.token",
        {
            "realm": "https://auth.example/token",
            "service": "svc",
            "issuer": "iss",
            "rootcertbundle": str(bundle),
            "signingalgorithms": ["ES256"],
            "autoredirect": False,
        },
    )
    controller = TokenController.from_options(options)
    assert controller.verifier.algorithms == {"ES256"}
    assert len(controller.verifier.roots) == 1


def test_options_with_a_jwks(tmp_path: Path) -> None:
    private = ec_key()
    jwks = tmp_path / "jwks.json"
    jwk = ECKey.import_key(private.public_key()).as_dict()
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "mine"}]}))
    options = Options(
        "auth.token",
        {"realm": "http://a/token", "service": "svc", "issuer": "iss", "jwks": str(jwks)},
    )
    controller = TokenController.from_options(options)
    body = claims(issuer="iss", audience="svc")
    assert controller.verifier.verify(mint(body, private, kid="mine")).subject == "alice"


def _as_ca(root: Authority, key: Any, certificate: Any) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return (
        x509.CertificateBuilder()
        .subject_name(certificate.subject)
        .issuer_name(root.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(certificate.not_valid_before_utc)
        .not_valid_after(certificate.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root.key, hashes.SHA256())
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
