"""The pull-through cache's configuration: Distribution's ``proxy`` and wharf's ``mirrors``."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from wharf.config.load import ConfigError, load_config
from wharf.config.mirrors import DEFAULT_TTL, CredentialHelper, UpstreamTLS
from wharf.config.model import Config


def test_distributions_proxy(tmp_path: Path) -> None:
    config = load_config_text(
        tmp_path,
        """
        proxy:
          remoteurl: https://registry-1.docker.io/
          username: someone
          password: secret
          ttl: 24h
        """,
    )
    (mirror,) = config.mirrors
    assert mirror.url == "https://registry-1.docker.io"
    assert mirror.prefix == ""
    assert (mirror.username, mirror.password) == ("someone", "secret")
    assert mirror.ttl == timedelta(hours=24)
    assert mirror.tag_check == timedelta(0)  # Distribution checks a tag on every pull
    assert "secret" not in repr(mirror)


def test_a_ttl_of_zero_never_expires_and_the_default_is_a_week(tmp_path: Path) -> None:
    never = load_config_text(tmp_path, "proxy: {remoteurl: https://up.example, ttl: 0}\n")
    assert never.mirrors[0].ttl is None
    default = load_config_text(tmp_path, "proxy: {remoteurl: https://up.example}\n")
    assert default.mirrors[0].ttl == DEFAULT_TTL


def test_an_empty_proxy_section_mirrors_nothing(tmp_path: Path) -> None:
    assert load_config_text(tmp_path, "proxy: {}\n").mirrors == ()


def test_mirrors_of_wharf(tmp_path: Path) -> None:
    config = load_config_text(
        tmp_path,
        """
        mirrors:
          - prefix: /dockerhub/
            url: https://registry-1.docker.io
            hosts: [Docker.IO, registry-1.docker.io]
            exec: {command: docker-credential-pass, lifetime: 1h}
            tls: {ca: /etc/ssl/up.pem, insecureskipverify: false}
            tagcheck: 30s
            ttl: 72h
          - prefix: quay
            url: http://quay.internal:5000
        proxy:
          remoteurl: https://fallback.example
        """,
    )
    hub, quay, fallback = config.mirrors
    assert hub.prefix == "dockerhub"
    assert hub.hosts == ("docker.io", "registry-1.docker.io")
    assert hub.credential_helper == CredentialHelper("docker-credential-pass", timedelta(hours=1))
    assert hub.tls == UpstreamTLS("/etc/ssl/up.pem", False)
    assert (hub.tag_check, hub.ttl) == (timedelta(seconds=30), timedelta(hours=72))
    assert quay.tag_check == timedelta(minutes=1)
    assert fallback.prefix == ""


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("proxy: {remoteurl: ftp://up.example}\n", "proxy.remoteurl"),
        ("proxy: {remoteurl: 'https://u:p@up.example'}\n", "proxy.remoteurl"),
        ("proxy: {remoteurl: https://up.example, username: only}\n", "proxy.password"),
        ("proxy: {remoteurl: https://up.example, ttl: forever}\n", "proxy.ttl"),
        ("proxy: {remoteurl: https://up.example, exec: {lifetime: 1h}}\n", "proxy.exec.command"),
        ("mirrors: {prefix: a}\n", "mirrors"),
        ("mirrors: [{url: https://up.example}]\n", "mirrors.0.prefix"),
        ("mirrors: [{prefix: a}]\n", "mirrors.0.url"),
        ("mirrors: [{prefix: 'Not A Name', url: https://up.example}]\n", "mirrors.0.prefix"),
        (
            "mirrors: [{prefix: a, url: https://x.example}, {prefix: a/b, url: https://y.example}]\n",
            "mirrors.1.prefix",
        ),
        (
            "mirrors: [{prefix: a, url: https://x.example, hosts: [h]},"
            " {prefix: b, url: https://y.example, hosts: [h]}]\n",
            "mirrors.1.hosts",
        ),
        ("mirrors: [{prefix: a, url: https://x.example, tls: {ca: 3, x: 1}}]\n", "mirrors.0.tls"),
    ],
)
def test_bad_mirrors_are_refused_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config_text(tmp_path, text)


def load_config_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\n" + textwrap.dedent(text))
    return load_config(str(path), {})
