from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    "text",
    [f"sha256:{HEX64}", "sha256:abc", "md5:abc", "a:b", "sha256+b64u:A=_-", "x.y_z-1:0"],
)
def test_what_the_grammar_makes_a_digest(text: str) -> None:
    assert Digest.is_digest(text)


@pytest.mark.parametrize(
    "text",
    [
        "latest",
        "bad\r\nX:1",
        "bad\x00X:1",
        f"SHA256:{HEX64}",
        f"sha256:{HEX64}\n",
        f"\nsha256:{HEX64}",
        ":abc",
        "sha256:",
        "sha256::abc",
        "sha--256:abc",
        "sha256:a/b",
        "sha256:é",
    ],
)
def test_a_colon_alone_makes_no_digest(text: str) -> None:
    assert not Digest.is_digest(text)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # No digest by the grammar: judged as the tag it cannot be.
        ("bad\r\nX:1", TagInvalid),
        ("bad\x00X:1", TagInvalid),
        ("x\x7fy", TagInvalid),
        (f"SHA256:{HEX64}", TagInvalid),
        (f"sha256:{HEX64}\r\n", TagInvalid),
        ("a:b/c", TagInvalid),
        # Digests by the grammar that wharf cannot take: unsupported, or wrong for the algorithm.
        ("md5:" + "a" * 32, DigestInvalid),
        ("a:b", DigestInvalid),
        ("sha256:abc", DigestInvalid),
        ("sha256:" + "A" * 64, DigestInvalid),
        ("sha512:" + "a" * 64, DigestInvalid),
    ],
)
def test_invalid_references(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_reference(text)


REFERENCE_ALPHABET = "abcfsh0123456789:+._-=AZ/\r\n\x00\x7f\x85\u2028 é"
REFERENCES = st.one_of(
    st.text(),
    st.text(alphabet=REFERENCE_ALPHABET, max_size=140),
    st.from_regex(r"[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", fullmatch=True),
    st.builds(
        lambda algorithm, encoded, around: around.replace("|", f"{algorithm}:{encoded}"),
        st.sampled_from(["sha256", "sha512", "SHA256", "md5", ""]),
        st.text(alphabet="0123456789abcdefABCDEF", min_size=60, max_size=130),
        st.sampled_from(["|", "|\n", "\r\n|", "|\x00", " |", "|/x"]),
    ),
)


@settings(max_examples=500)
@given(text=REFERENCES)
def test_any_reference_is_a_digest_a_tag_or_the_right_error(text: str) -> None:
    try:
        reference = parse_reference(text)
    except DigestInvalid:
        assert Digest.is_digest(text)
    except TagInvalid:
        assert not Digest.is_digest(text)
    else:
        # What parses is exactly what was asked for, so it is safe to put in a header.
        assert str(reference) == text
        assert text.isascii()
        assert text.isprintable()
        assert isinstance(reference, Digest) == Digest.is_digest(text)


@settings(max_examples=300)
@given(text=REFERENCES)
def test_any_digest_parses_or_is_digest_invalid(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except DigestInvalid:
        return
    assert str(digest) == text
    assert text.isascii()
    assert text.isprintable()
