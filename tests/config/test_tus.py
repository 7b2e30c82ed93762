"""``tus``, wharf's own section: defaults, every key, and refusals at start."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from wharf.config.load import ConfigError, load_config
from wharf.config.model import Config
from wharf.config.tus import TusConfig, TusCors


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\n" + textwrap.dedent(text))
    return load_config(str(path), environ or {})


def test_off_by_default(tmp_path: Path) -> None:
    assert _load(tmp_path, "").tus == TusConfig()
    assert not TusConfig().enabled


def test_every_key(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
        tus:
          enabled: true
          path: /uploads/files
          maxsize: 1048576
          maxmetadatasize: 1024
          maxuploadsperclient: 3
          expiration: 2h
          purgeinterval: 10m
          cors:
            alloworigins: [https://app.example.com]
            allowcredentials: true
            maxage: 1h
            allowheaders: [X-Custom]
            exposeheaders: [X-Other]
        """,
    )
    assert config.tus == TusConfig(
        enabled=True,
        path="/uploads/files/",
        max_size=1 << 20,
        max_metadata_size=1024,
        max_uploads_per_client=3,
        expiration=timedelta(hours=2),
        purge_interval=timedelta(minutes=10),
        cors=TusCors(
            allow_origins=("https://app.example.com",),
            allow_credentials=True,
            max_age=timedelta(hours=1),
            allow_headers=("X-Custom",),
            expose_headers=("X-Other",),
        ),
    )


def test_environment_overrides(tmp_path: Path) -> None:
    config = _load(tmp_path, "", {"REGISTRY_TUS_ENABLED": "true", "REGISTRY_TUS_MAXSIZE": "99"})
    assert config.tus.enabled
    assert config.tus.max_size == 99


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tus: {enabled: true, maxsizes: 10}", "tus.maxsizes"),
        ("tus: {cors: {alloworigin: ['*']}}", "tus.cors.alloworigin"),
        ("tus: {path: tus}", "tus.path"),
        ("tus: {path: /v2/tus}", "tus.path"),
        ("tus: {path: /}", "tus.path"),
        ("tus: {maxsize: 0}", "tus.maxsize"),
        ("tus: {expiration: 0}", "tus.expiration"),
        ("tus: {enabled: yes-please}", "tus.enabled"),
        ("tus: {cors: {alloworigins: [app.example.com]}}", "tus.cors.alloworigins"),
        ("tus: {cors: {alloworigins: ['*'], allowcredentials: true}}", "tus.cors.allowcredentials"),
        ("tus: {cors: {allowheaders: ['Bad Header']}}", "tus.cors.allowheaders"),
    ],
)
def test_refused_at_start(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text + "\n")
    assert key in str(raised.value)
