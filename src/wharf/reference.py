"""Value types for what clients name: repositories, tags and digests.

Each validates on construction, so a value of one of these types is safe to build a storage
path from. The grammars are the OCI Distribution Specification's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wharf.errors import DigestInvalid, NameInvalid, TagInvalid

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "Digest",
    "RepositoryName",
    "Tag",
    "parse_reference",
]

NAME_MAX_LENGTH = 255
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*")
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_ALGORITHM = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*"
_ENCODED = r"[a-zA-Z0-9=_-]+"
_ALGORITHM_RE = re.compile(_ALGORITHM)
_ENCODED_RE = re.compile(_ENCODED)
_DIGEST_RE = re.compile(f"{_ALGORITHM}:{_ENCODED}")

#: Supported digest algorithms and the length of their hex encoding.
SUPPORTED_ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_HEX_RE = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True, slots=True)
class RepositoryName:
    """A repository name such as ``library/ubuntu``."""

    value: str

    def __post_init__(self) -> None:
        if len(self.value) > NAME_MAX_LENGTH:
            raise NameInvalid(
                {"name": self.value[:300], "reason": f"longer than {NAME_MAX_LENGTH} characters"}
            )
        if not _NAME_RE.fullmatch(self.value):
            raise NameInvalid({"name": self.value[:300], "reason": "not a valid repository name"})

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Tag:
    """A tag such as ``latest``."""

    value: str

    def __post_init__(self) -> None:
        if not _TAG_RE.fullmatch(self.value):
            raise TagInvalid({"tag": self.value[:200]}, message="invalid tag")

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Digest:
    """A content digest ``<algorithm>:<hex>`` of a supported algorithm."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        expected = SUPPORTED_ALGORITHMS.get(self.algorithm)
        if expected is None:
            raise DigestInvalid(
                {"digest": f"{self.algorithm}:{self.hex}"[:200]},
                message=f"unsupported digest algorithm {self.algorithm[:32]!r}",
            )
        if len(self.hex) != expected or not _HEX_RE.fullmatch(self.hex):
            raise DigestInvalid(
                {"digest": f"{self.algorithm}:{self.hex}"[:200]}, message="invalid digest"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, encoded = text.partition(":")
        if not sep or not _ALGORITHM_RE.fullmatch(algorithm) or not _ENCODED_RE.fullmatch(encoded):
            raise DigestInvalid({"digest": text[:200]}, message="invalid digest")
        return cls(algorithm, encoded)

    @classmethod
    def is_digest(cls, text: str) -> bool:
        """Whether a manifest reference is a digest by the OCI grammar, of any algorithm.

        A colon alone does not make one: what no algorithm could have written is judged as
        the tag it then cannot be, not refused as a digest."""
        return _DIGEST_RE.fullmatch(text) is not None

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_reference(text: str) -> Tag | Digest:
    """A manifest reference: a digest when the OCI grammar makes it one (DigestInvalid when
    its algorithm is unsupported or its encoding wrong for it), a tag otherwise (TagInvalid
    when it is no valid tag)."""
    if Digest.is_digest(text):
        return Digest.parse(text)
    return Tag(text)
