"""What the parent process checks before any worker starts: driver parameters, TLS, auth and
Redis files, each problem one line naming the key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.certificates import write_certificate, write_key
from wharf.config.model import Config, HTTPConfig, StorageConfig, TLSConfig
from wharf.config.operations import RedisConfig
from wharf.config.sources import ConfigError
from wharf.preflight import check, exposure_warning


def with_tls(tls: TLSConfig) -> Config:
    return Config(storage=StorageConfig("inmemory", {}), http=HTTPConfig(tls=tls))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return write_certificate(tmp_path)


def refused(config: Config, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check(config)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_a_good_certificate_and_key_pass(pair: tuple[Path, Path]) -> None:
    certificate, key = pair
    check(with_tls(TLSConfig(str(certificate), str(key), client_cas=(str(certificate),))))


def test_tls_files_that_are_not_what_they_say(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    certificate, key = pair
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM at all\n")
    other_key = tmp_path / "other-key.pem"
    write_key(other_key)
    encrypted = tmp_path / "encrypted-key.pem"
    write_key(encrypted, passphrase=b"secret")
    cases = [
        (TLSConfig(str(garbage), str(key)), f"http.tls.certificate: {garbage} holds no PEM"),
        (TLSConfig(str(certificate), str(garbage)), f"http.tls.key: {garbage} holds no PEM"),
        (TLSConfig(str(certificate), str(encrypted)), f"http.tls.key: {encrypted} is encrypted"),
        (
            TLSConfig(str(certificate), str(other_key)),
            f"http.tls.key: {other_key} is not the key of {certificate}",
        ),
        (
            TLSConfig(str(certificate), str(key), client_cas=(str(garbage),)),
            f"http.tls.clientcas: {garbage} holds no PEM certificate",
        ),
        (
            TLSConfig(str(certificate), str(key), cipher_suites=("TLS_RSA_WITH_RC4_128_SHA",)),
            "http.tls.ciphersuites: TLS_RSA_WITH_RC4_128_SHA is not available",
        ),
    ]
    for tls, message in cases:
        refused(with_tls(tls), message)


def test_cipher_suites_this_openssl_has_pass(pair: tuple[Path, Path]) -> None:
    certificate, key = pair
    suites = ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384")
    check(with_tls(TLSConfig(str(certificate), str(key), cipher_suites=suites)))


def test_storage_parameters_are_the_drivers_to_check() -> None:
    refused(Config(storage=StorageConfig("s3", {})), "storage driver 's3': bucket must name")
    refused(
        Config(storage=StorageConfig("filesystem", {"rootdirectroy": "/data"})),
        "unknown parameter 'rootdirectroy' for storage driver 'filesystem'",
    )
    refused(Config(storage=StorageConfig("oss", {})), "storage.oss: unknown storage driver")


def test_auth_files_are_read_as_the_workers_would(tmp_path: Path) -> None:
    base = Config(storage=StorageConfig("inmemory", {}))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("nothing\n")
    token = {"realm": "https://r.example/token", "service": "r", "issuer": "i"}
    cases = [
        ({"htpasswd": {"realm": "r", "path": str(tmp_path / "none")}}, "auth.htpasswd.path"),
        ({"token": {**token, "rootcertbundle": str(garbage)}}, "auth.token.rootcertbundle"),
        ({"silly": {"realm": "r", "service": "s"}}, "auth: configure exactly one of"),
    ]
    for auth, message in cases:
        refused(replace(base, extra={"auth": auth}), message)


def test_redis_tls_files(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    certificate, key = pair
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("nothing\n")
    base = Config(storage=StorageConfig("inmemory", {}))
    redis = RedisConfig("redis:6379", tls=True, tls_certificate=str(certificate))
    check(replace(base, redis=replace(redis, tls_key=str(key))))
    refused(
        replace(base, redis=replace(redis, tls_key=str(garbage))),
        f"redis.tls.key: {garbage} holds no PEM private key",
    )
    refused(
        replace(base, redis=RedisConfig("redis:6379", tls=True, tls_client_cas=(str(garbage),))),
        f"redis.tls.clientcas: {garbage} holds no PEM certificate",
    )


def test_a_registry_open_to_other_machines_without_auth_is_a_warning() -> None:
    config = Config(storage=StorageConfig("inmemory", {}))
    warning = exposure_warning(config, "0.0.0.0")
    assert warning == (
        "http.addr :5000 accepts connections from other machines and there is no auth "
        "section: anyone who reaches it can pull and push"
    )
    deleting = replace(config, storage=replace(config.storage, delete_enabled=True))
    assert str(exposure_warning(deleting, "10.0.0.1")).endswith("can pull and push and delete")
    assert exposure_warning(config, "127.0.0.1") is None
    assert exposure_warning(config, "::1") is None
    assert exposure_warning(config, "localhost") is None
    with_auth = replace(config, extra={"auth": {"htpasswd": {"realm": "r", "path": "/p"}}})
    assert exposure_warning(with_auth, "0.0.0.0") is None
    unix = replace(config, http=HTTPConfig(net="unix", addr="/run/wharf.sock"))
    assert exposure_warning(unix, "") is None
