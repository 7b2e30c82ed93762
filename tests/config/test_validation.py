"""The ``validation`` section: Distribution 3's index platforms and wharf's image layers, read
from the file and the environment, bad values refused at start with one line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wharf.config.load import ConfigError, load_config
from wharf.config.validation import PlatformConfig, ValidationConfig


def _load(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> ValidationConfig:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nstorage: {inmemory: {}}\n" + textwrap.dedent(body))
    return load_config(str(path), environ or {}).validation


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", ValidationConfig()),
        ("validation: {manifests: {indexes: {platforms: none}}}", ValidationConfig("none")),
        ("validation: {manifests: {indexes: {platforms: ALL}}}", ValidationConfig("all")),
        (
            """\
            validation:
              manifests:
                indexes:
                  platforms: list
                  platformlist:
                    - {os: linux, architecture: amd64}
                    - {os: windows, architecture: arm64}
            """,
            ValidationConfig(
                "list",
                (PlatformConfig("linux", "amd64"), PlatformConfig("windows", "arm64")),
            ),
        ),
        # The list is read (and checked) but means nothing unless platforms is list.
        (
            "validation: {manifests: {indexes: {platformlist: [{os: linux, architecture: x}]}}}",
            ValidationConfig(),
        ),
        (
            "validation: {manifests: {images: {layers: none}}}",
            ValidationConfig(image_layers="none"),
        ),
        # Distribution's switch: no index is checked; an image's blobs still are.
        ("validation: {disabled: true}", ValidationConfig("none")),
        ("validation: {enabled: true, disabled: true}", ValidationConfig()),
        (
            "validation: {disabled: true, manifests: {urls: {allow: ['^https://']}}}",
            ValidationConfig("none"),
        ),
    ],
)
def test_settings(tmp_path: Path, body: str, expected: ValidationConfig) -> None:
    assert _load(tmp_path, body) == expected


def test_environment_overrides(tmp_path: Path) -> None:
    environ = {
        "REGISTRY_VALIDATION_MANIFESTS_INDEXES_PLATFORMS": "none",
        "REGISTRY_VALIDATION_MANIFESTS_IMAGES_LAYERS": "none",
    }
    assert _load(tmp_path, "", environ) == ValidationConfig("none", image_layers="none")


@pytest.mark.parametrize(
    ("body", "start"),
    [
        ("validation: {manifests: {indexes: {platforms: some}}}", "validation.manifests.indexes"),
        ("validation: {manifests: {images: {layers: some}}}", "validation.manifests.images"),
        (
            "validation: {manifests: {indexes: {platforms: list, platformlist: linux}}}",
            "validation.manifests.indexes.platformlist",
        ),
        (
            "validation: {manifests: {indexes: {platforms: list, platformlist: [{os: linux}]}}}",
            "validation.manifests.indexes.platformlist",
        ),
        (
            "validation: {manifests: {indexes: {platformlist: [{os: l, architecture: a, v: 8}]}}}",
            "validation.manifests.indexes.platformlist",
        ),
        ("validation: {manifests: {urls: {deny: ['^http://']}}}", "validation.manifests.urls"),
    ],
)
def test_bad_values_are_refused_with_one_line(tmp_path: Path, body: str, start: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, body)
    message = str(refused.value)
    assert message.startswith(start), message
    assert "\n" not in message
