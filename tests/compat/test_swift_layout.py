"""Container compatibility with Distribution 2.8 (Debian's docker-registry) on OpenStack
Swift's native API, both ways.

Both registries get the same container and prefix on one Swift, authenticating with tempauth
(v1): what one pushed, the other serves with the same digests, tags and catalog; and for one
push each, both write the same files (objects below ``<prefix>/files``) with the same bytes,
the blob data of both as Dynamic Large Objects whose segments Swift joins. Both keep their
default of redirecting blob GETs to temp URLs (signed with the same container key), which
skopeo follows to Swift.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.compat.test_layout import (
    Pushed,
    _assert_same_files,
    _push,
    _round_trip,
    content,
    skopeo,
)
from tests.support.clients import Skopeo, binary
from tests.support.images import sha256_digest
from tests.support.reference_registry import ReferenceRegistry, docker_registry_binary
from tests.support.server import WharfServer
from tests.support.swift import SwiftNative

__all__ = ["content", "skopeo"]

pytestmark = [
    pytest.mark.reference,
    pytest.mark.swift,
    pytest.mark.skipif(
        docker_registry_binary() is None,
        reason="docker-registry (Distribution 2.8) is not installed",
    ),
    pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed"),
]


class Place:
    """A container and prefix on Swift, and each registry's settings for it."""

    def __init__(self, swift: SwiftNative, prefix: str) -> None:
        self.swift = swift
        self.container = swift.create_container()
        self.prefix = prefix

    def parameters(self) -> dict[str, str]:
        return self.swift.parameters(self.container, prefix=self.prefix, secretkey="compat-key")

    def wharf(self) -> WharfServer:
        return WharfServer(storage={"swift": self.parameters()})

    def reference(self) -> ReferenceRegistry:
        return ReferenceRegistry(storage={"swift": self.parameters()})

    def objects(self) -> dict[str, bytes]:
        """Every file below the prefix by path, with its bytes (blob data by digest)."""
        base = self.prefix.strip("/") + "/files/"
        objects: dict[str, bytes] = {}
        for name in self.swift.names(self.container, base):
            response = self.swift.request("GET", f"/{self.container}/{name}")
            response.raise_for_status()
            data = response.content
            path = name.removeprefix(base)
            objects[path] = sha256_digest(data).encode() if name.endswith("/data") else data
        return objects

    def segments(self) -> list[str]:
        return self.swift.names(self.container, self.prefix.strip("/") + "/segments/")


@pytest.fixture
def place(swift_native: SwiftNative) -> Place:
    return Place(swift_native, f"/compat-{uuid.uuid4().hex[:8]}")


def test_wharf_serves_the_container_distribution_wrote(
    place: Place, skopeo: Skopeo, content: list[Pushed], tmp_path: Path
) -> None:
    _round_trip(place.reference(), place.wharf(), skopeo, content, tmp_path)


def test_distribution_serves_the_container_wharf_wrote(
    place: Place, skopeo: Skopeo, content: list[Pushed], tmp_path: Path
) -> None:
    _round_trip(place.wharf(), place.reference(), skopeo, content, tmp_path)


def test_wharf_writes_the_objects_distribution_writes(
    swift_native: SwiftNative, skopeo: Skopeo, content: list[Pushed]
) -> None:
    wharf_place = Place(swift_native, "wharf")
    reference_place = Place(swift_native, "distribution")
    with wharf_place.wharf() as server:
        _push(skopeo, server, content)
    with reference_place.reference() as server:
        _push(skopeo, server, content)
    _assert_same_files(wharf_place.objects(), reference_place.objects(), content, "objects")
    # Blob data lives in segments: <prefix>/segments/<3 hex>/<hex>/<16 digits> for both.
    # Distribution's <hex> is the path's own bytes, 32 random ones and an empty SHA-1 in hex
    # (Go's hash.Sum(b) appends to b), which grows with the repository name; wharf's is the
    # SHA-1 of those, 37 digits, always. Each finds the other's through the manifests.
    for place, lengths in ((wharf_place, {37}), (reference_place, None)):
        names = place.segments()
        assert names
        for name in names:
            _, _, short, rest, number = name.split("/")
            assert len(short) == 3
            assert int(short + rest, 16) >= 0
            assert lengths is None or len(rest) in lengths
            assert number.isdigit()
            assert len(number) == 16
