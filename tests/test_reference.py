from __future__ import annotations

import pytest

from wharf.errors import DigestInvalid, NameInvalid, TagInvalid
from wharf.reference import Digest, RepositoryName, Tag, parse_reference

HEX64 = "a" * 64


@pytest.mark.parametrize(
    "name", ["a", "library/ubuntu", "a-b/c_d/e.f", "a__b", "a---b", "x" * 255, "0/1/2"]
)
def test_valid_names(name: str) -> None:
    assert RepositoryName(name).value == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "a/", "/a", "a//b", "a..b", "a_-b", "_a", "a/.b", "a b", "x" * 256, "a/../b", "ä"],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(NameInvalid):
        RepositoryName(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0.0", "_x", "A" * 128, "1"])
def test_valid_tags(tag: str) -> None:
    assert Tag(tag).value == tag


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a" * 129, "a/b", "a:b", "a b"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(TagInvalid):
        Tag(tag)


def test_digests() -> None:
    digest = Digest.parse(f"sha256:{HEX64}")
    assert (digest.algorithm, digest.hex, str(digest)) == ("sha256", HEX64, f"sha256:{HEX64}")
    assert Digest.parse("sha512:" + "0" * 128).algorithm == "sha512"


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "A" * 64,
        "sha256:abc",
        "md5:" + "a" * 32,
        "sha256",
        ":" + HEX64,
        "sha256:../../x",
    ],
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(text)


def test_parse_reference() -> None:
    assert parse_reference("latest") == Tag("latest")
    assert parse_reference(f"sha256:{HEX64}") == Digest("sha256", HEX64)
