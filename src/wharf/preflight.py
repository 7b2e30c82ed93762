"""What ``wharf serve`` checks in its parent process before any worker starts, and ``wharf
config check`` too: everything a worker would otherwise find while building its app, and
then die on, be restarted and die on again.

- the storage driver's parameters (the driver's own check, ``validate_storage``);
- the TLS certificate, key, client CAs and cipher suites: PEM, a key that is not encrypted
  and matches the certificate, suites this OpenSSL has;
- ``auth``, built once as every worker builds it: the htpasswd file, token keys, certificate
  bundles and JWKS;
- Redis's TLS certificate, key and CAs.

Each problem is a ConfigError of one line naming the key. What is odd but allowed comes back
as warnings: a registry reachable from other machines without any ``auth``.
"""

from __future__ import annotations

import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from wharf.auth.factory import validate_auth
from wharf.config.model import Config, TLSConfig
from wharf.config.sources import ConfigError
from wharf.config.tls import CIPHER_SUITES
from wharf.storage.driver.factory import validate_storage

__all__ = ["check", "exposure_warning"]


def check(config: Config) -> None:
    """ConfigError (one line) for the first problem a worker would meet."""
    validate_storage(config.storage)
    if config.http.tls is not None:
        _check_tls("http.tls", config.http.tls)
    validate_auth(config.extra.get("auth"))
    redis = config.redis
    if redis is not None and redis.tls_certificate:
        tls = TLSConfig(redis.tls_certificate, redis.tls_key, redis.tls_client_cas)
        _check_tls("redis.tls", tls)
    elif redis is not None:
        for ca in redis.tls_client_cas:
            _check_cas("redis.tls.clientcas", ca)


def exposure_warning(config: Config, host: str) -> str | None:
    """A warning when the registry, listening on ``host``, is open to other machines and
    has no ``auth`` section."""
    if config.http.net == "unix" or config.extra.get("auth"):
        return None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return None
    can = "pull" if config.storage.readonly else "pull and push"
    if config.storage.delete_enabled and not config.storage.readonly:
        can += " and delete"
    return (
        f"http.addr {config.http.addr} accepts connections from other machines and there is no "
        f"auth section: anyone who reaches it can {can}"
    )


def _check_tls(where: str, tls: TLSConfig) -> None:
    certificate = _read(f"{where}.certificate", tls.certificate)
    try:
        x509.load_pem_x509_certificates(certificate)
    except ValueError:
        raise ConfigError(
            f"{where}.certificate: {tls.certificate} holds no PEM certificate"
        ) from None
    key = _read(f"{where}.key", tls.key)
    try:
        load_pem_private_key(key, password=None)
    except TypeError:
        raise ConfigError(
            f"{where}.key: {tls.key} is encrypted; wharf needs the key without a passphrase"
        ) from None
    except Exception:  # ValueError, or UnsupportedAlgorithm for a key type it cannot use
        raise ConfigError(f"{where}.key: {tls.key} holds no PEM private key") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.certificate, tls.key, password=_no_password)
    except ssl.SSLError as exc:
        if "MISMATCH" in str(exc.reason).upper():
            message = f"{tls.key} is not the key of {tls.certificate}"
        else:
            message = f"{tls.key}: {exc.reason or exc.strerror or exc}"
        raise ConfigError(f"{where}.key: {message}") from None
    for ca in tls.client_cas:
        _check_cas(f"{where}.clientcas", ca)
    _check_ciphers(where, tls, context)


def _check_cas(where: str, path: str) -> None:
    _read(where, path)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=path)
    except ssl.SSLError:
        raise ConfigError(f"{where}: {path} holds no PEM certificate") from None


def _check_ciphers(where: str, tls: TLSConfig, context: ssl.SSLContext) -> None:
    # TLS 1.3 suites have no OpenSSL name here: they cannot be chosen, and are always on.
    names = {suite: CIPHER_SUITES[suite] for suite in tls.cipher_suites if CIPHER_SUITES[suite]}
    if not names:
        return
    try:
        context.set_ciphers(":".join(names.values()))
    except ssl.SSLError:  # none of them is available
        available: set[str] = set()
    else:
        available = {cipher["name"] for cipher in context.get_ciphers()}
    for suite, name in names.items():
        if name not in available:
            raise ConfigError(
                f"{where}.ciphersuites: {suite} is not available in this OpenSSL "
                f"({ssl.OPENSSL_VERSION})"
            )


def _read(where: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None


def _no_password() -> str:
    # Without a callback OpenSSL would ask for a passphrase on the terminal.
    raise ConfigError("the key is encrypted; wharf needs the key without a passphrase")
