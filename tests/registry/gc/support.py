"""Pushing, pulling and looking at the storage tree, for the garbage-collection tests."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
V2 = Path("docker/registry/v2")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[1]


@dataclass(frozen=True)
class Pushed:
    """A manifest pushed to ``repository``: its digest, bytes and every blob it names."""

    repository: str
    digest: str
    body: bytes
    media_type: str
    blobs: tuple[str, ...]
    children: tuple[Pushed, ...] = ()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.body),
            **extra,
        }

    @property
    def all_blobs(self) -> set[str]:
        found = {self.digest, *self.blobs}
        for child in self.children:
            found |= child.all_blobs
        return found


class PushError(AssertionError):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"{response.status_code}: {response.text}")

    @property
    def codes(self) -> list[str]:
        try:
            return [error["code"] for error in self.response.json()["errors"]]
        except (ValueError, KeyError, TypeError):
            return []


class Pusher:
    """Pushes as a client does: HEAD each blob and upload only what is missing."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def blob(self, repository: str, data: bytes, *, check: bool = True) -> str:
        digest = sha256(data)
        if check:
            head = await self.client.head(f"/v2/{repository}/blobs/{digest}")
            if head.status_code == 200:
                return digest
        response = await self.client.post(
            f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data
        )
        if response.status_code == 202:  # no monolithic POST (Distribution): PUT the bytes
            location = response.headers["Location"]
            separator = "&" if "?" in location else "?"
            response = await self.client.put(f"{location}{separator}digest={digest}", content=data)
        if response.status_code != 201:
            raise PushError(response)
        return digest

    async def manifest(
        self, repository: str, reference: str | None, document: dict[str, Any], media_type: str
    ) -> tuple[str, bytes]:
        """Push by tag, or by digest when ``reference`` is None."""
        body = json.dumps(document, indent=1).encode()
        reference = reference or sha256(body)
        response = await self.client.put(
            f"/v2/{repository}/manifests/{reference}",
            content=body,
            headers={"Content-Type": media_type},
        )
        if response.status_code != 201:
            raise PushError(response)
        return sha256(body), body

    async def image(
        self,
        repository: str,
        reference: str | None,
        *,
        layers: list[bytes],
        seed: str = "x",
        subject: Pushed | None = None,
        artifact_type: str | None = None,
        check: bool = True,
    ) -> Pushed:
        """An image (or, with ``artifact_type``, an artifact) pushed by tag, or by digest when
        ``reference`` is None."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
        config_type = OCI_CONFIG
        if artifact_type is not None:
            config, config_type = b"{}", OCI_EMPTY
        digests = [await self.blob(repository, blob, check=check) for blob in (config, *layers)]
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": digests[0], "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER, "digest": d, "size": len(layer)}
                for d, layer in zip(digests[1:], layers, strict=True)
            ],
        }
        if artifact_type is not None:
            document["artifactType"] = artifact_type
        if subject is not None:
            document["subject"] = subject.descriptor()
        digest, body = await self.manifest(repository, reference, document, OCI_MANIFEST)
        return Pushed(repository, digest, body, OCI_MANIFEST, tuple(digests))

    async def index(self, repository: str, reference: str | None, images: list[Pushed]) -> Pushed:
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                image.descriptor(platform={"os": "linux", "architecture": arch})
                for image, arch in zip(images, ("amd64", "arm64", "s390x"), strict=False)
            ],
        }
        digest, body = await self.manifest(repository, reference, document, OCI_INDEX)
        return Pushed(repository, digest, body, OCI_INDEX, (), tuple(images))

    async def delete_tag(self, repository: str, tag: str) -> None:
        response = await self.client.delete(f"/v2/{repository}/manifests/{tag}")
        assert response.status_code == 202, response.text

    async def pulls(self, pushed: Pushed, reference: str | None = None) -> None:
        """Pull ``pushed`` (by ``reference`` or digest) and every blob it names, checking
        every digest."""
        response = await self.client.get(
            f"/v2/{pushed.repository}/manifests/{reference or pushed.digest}",
            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        )
        assert response.status_code == 200, f"{pushed.digest}: {response.text}"
        assert sha256(response.content) == pushed.digest
        for blob in pushed.blobs:
            got = await self.client.get(f"/v2/{pushed.repository}/blobs/{blob}")
            assert got.status_code == 200, f"{pushed.digest} blob {blob}: {got.status_code}"
            assert sha256(got.content) == blob
        for child in pushed.children:
            await self.pulls(child)


class Tree:
    """The filesystem storage under ``root``, as Distribution lays it out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / V2

    def blob(self, digest: str) -> Path:
        return self.v2 / "blobs" / "sha256" / hex_of(digest)[:2] / hex_of(digest) / "data"

    def repository(self, name: str) -> Path:
        return self.v2 / "repositories" / name

    def revision(self, name: str, digest: str) -> Path:
        return self.repository(name) / "_manifests/revisions/sha256" / hex_of(digest) / "link"

    def layer(self, name: str, digest: str) -> Path:
        return self.repository(name) / "_layers/sha256" / hex_of(digest) / "link"

    def tag_index(self, name: str, tag: str, digest: str) -> Path:
        return (
            self.repository(name) / "_manifests/tags" / tag / "index/sha256" / hex_of(digest)
        ) / "link"

    def referrer(self, name: str, subject: str, referrer: str) -> Path:
        return (
            self.repository(name)
            / "_referrers/sha256"
            / hex_of(subject)
            / "sha256"
            / hex_of(referrer)
            / "descriptor"
        )

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        """Every file with its bytes and modification time."""
        return {
            str(path.relative_to(self.root)): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(self.root.rglob("*"))
            if path.is_file()
        }

    def age(self, seconds: float) -> None:
        """Make every file look ``seconds`` older than now."""
        then = time.time() - seconds
        for path in self.root.rglob("*"):
            if path.is_file():
                os.utime(path, (then, then))
