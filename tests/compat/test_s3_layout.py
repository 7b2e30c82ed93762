"""Bucket compatibility with Distribution 2.8 (Debian's docker-registry) on S3, both ways.

Each round trip gives both registries the same bucket and root directory on one S3 server
(moto, then Swift): what one pushed, the other serves with the same digests, tags and
catalog. And for one push each, both write the same keys with the same bytes.

Distribution 2.8 has no ``forcepathstyle``: a ``regionendpoint`` alone makes it address
buckets by path, so its configuration leaves the key out. Both registries keep their default
of redirecting blob GETs to presigned URLs, which skopeo follows to the S3 server.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

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
from tests.support.s3servers import S3Server
from tests.support.server import WharfServer

__all__ = ["content", "skopeo"]

pytestmark = [
    pytest.mark.reference,
    pytest.mark.s3,
    pytest.mark.skipif(
        docker_registry_binary() is None,
        reason="docker-registry (Distribution 2.8) is not installed",
    ),
    pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed"),
]


class Place:
    """A bucket and root directory on one S3 server, and each registry's settings for it."""

    def __init__(self, server: S3Server, root: str) -> None:
        self.server = server
        self.bucket = server.create_bucket()
        self.root = root

    def wharf(self) -> WharfServer:
        return WharfServer(
            storage={"s3": self.server.parameters(self.bucket, rootdirectory=self.root)}
        )

    def reference(self) -> ReferenceRegistry:
        parameters: dict[str, Any] = {
            "accesskey": self.server.access_key,
            "secretkey": self.server.secret_key,
            "region": self.server.region,
            "regionendpoint": self.server.endpoint,
            "bucket": self.bucket,
            "rootdirectory": self.root,
            "v4auth": True,
            "secure": False,
        }
        return ReferenceRegistry(storage={"s3": parameters})

    def objects(self) -> dict[str, bytes]:
        """Every object below the root by key relative to it, with its bytes (blob data by
        digest)."""
        prefix = self.root.strip("/") + "/"
        client = self.server.client()
        objects: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                key = item["Key"]
                data = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                relative = key.removeprefix(prefix)
                objects[relative] = sha256_digest(data).encode() if key.endswith("/data") else data
        return objects


@pytest.fixture
def place(s3_server: S3Server) -> Place:
    return Place(s3_server, f"/compat/{uuid.uuid4().hex[:12]}")


def test_wharf_serves_the_bucket_distribution_wrote(
    place: Place, skopeo: Skopeo, content: list[Pushed], tmp_path: Path
) -> None:
    _round_trip(place.reference(), place.wharf(), skopeo, content, tmp_path)


def test_distribution_serves_the_bucket_wharf_wrote(
    place: Place, skopeo: Skopeo, content: list[Pushed], tmp_path: Path
) -> None:
    _round_trip(place.wharf(), place.reference(), skopeo, content, tmp_path)


def test_wharf_writes_the_objects_distribution_writes(
    moto_server: S3Server, skopeo: Skopeo, content: list[Pushed]
) -> None:
    """On moto only: the keys and bytes are the registries' doing, not the server's, and the
    same check on Swift takes three times as long (36 s against 13 s on 2 cores)."""
    wharf_place = Place(moto_server, "/wharf")
    reference_place = Place(moto_server, "/distribution")
    with wharf_place.wharf() as server:
        _push(skopeo, server, content)
    with reference_place.reference() as server:
        _push(skopeo, server, content)
    wharf = wharf_place.objects()
    distribution = reference_place.objects()

    _assert_same_files(wharf, distribution, content, "objects")
