"""Build test images offline and deterministically, as OCI image layout directories (or, for
tools that read Docker media types only from there, containers/image's ``dir:`` layout).

Every layer is a gzip'd tar (``mtime=0`` everywhere) of a few files of seeded random bytes, so
sizes are real and the same arguments always give the same digests. An image can use OCI media
types or Docker schema 2 ones; an index (OCI) or manifest list (Docker) holds one image per
platform. Several images can be tagged into one layout by building into the same directory.

The builders return what a test needs to check a round trip: the layout path, the tag, and the
expected digests of every manifest, config and layer.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "AMD64",
    "ARM64",
    "DOCKER",
    "OCI",
    "Blob",
    "BuiltImage",
    "BuiltIndex",
    "MediaTypes",
    "Platform",
    "build_image",
    "build_index",
    "canonical_json",
    "layer_tar_gz",
    "read_layout_index",
    "sha256_digest",
]

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class MediaTypes:
    """The media types of one image format."""

    name: Literal["oci", "docker"]
    manifest: str
    index: str
    config: str
    layer: str


OCI = MediaTypes(
    name="oci",
    manifest="application/vnd.oci.image.manifest.v1+json",
    index="application/vnd.oci.image.index.v1+json",
    config="application/vnd.oci.image.config.v1+json",
    layer="application/vnd.oci.image.layer.v1.tar+gzip",
)
DOCKER = MediaTypes(
    name="docker",
    manifest="application/vnd.docker.distribution.manifest.v2+json",
    index="application/vnd.docker.distribution.manifest.list.v2+json",
    config="application/vnd.docker.container.image.v1+json",
    layer="application/vnd.docker.image.rootfs.diff.tar.gzip",
)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant is not None:
            out["variant"] = self.variant
        return out


AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob: its descriptor fields and, for layers, the diff ID."""

    media_type: str
    digest: str
    size: int
    diff_id: str | None = None

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class BuiltImage:
    """One image manifest written into a layout."""

    layout: Path
    transport: str
    tag: str | None
    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    platform: Platform

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def blob_digests(self) -> list[str]:
        """Config and layer digests, in manifest order."""
        return [self.config.digest, *(layer.digest for layer in self.layers)]

    @property
    def source(self) -> str:
        """The containers/image reference to copy from: ``oci:<layout>:<tag>`` or ``dir:<path>``."""
        return _source(self.transport, self.layout, self.tag)


@dataclass(frozen=True)
class BuiltIndex:
    """An image index (or Docker manifest list) and its per-platform images."""

    layout: Path
    transport: str
    tag: str
    index: Blob
    images: tuple[BuiltImage, ...]

    @property
    def digest(self) -> str:
        return self.index.digest

    @property
    def media_type(self) -> str:
        return self.index.media_type

    @property
    def source(self) -> str:
        return _source(self.transport, self.layout, self.tag)

    @property
    def all_digests(self) -> list[str]:
        """The index, then each image's manifest, config and layers."""
        out = [self.digest]
        for image in self.images:
            out += [image.digest, *image.blob_digests]
        return out


def _source(transport: str, layout: Path, tag: str | None) -> str:
    if transport == "dir":
        return f"dir:{layout}"
    if tag is None:
        raise ValueError("an image inside an index has no tag of its own")
    return f"oci:{layout}:{tag}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Any) -> bytes:
    """Compact JSON with keys in insertion order: the bytes that get digested."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def layer_tar_gz(seed: int, size: int, files: int = 3) -> tuple[bytes, bytes]:
    """A layer of ``files`` files totalling about ``size`` random bytes: (tar, tar.gz)."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directory = tarfile.TarInfo(f"layer{seed}")
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        _normalise(directory)
        tar.addfile(directory)
        remaining = size
        for number in range(files):
            length = remaining if number == files - 1 else size // files
            remaining -= length
            content = rng.randbytes(length)
            info = tarfile.TarInfo(f"layer{seed}/file{number}.bin")
            info.size = len(content)
            info.mode = 0o644
            _normalise(info)
            tar.addfile(info, io.BytesIO(content))
        note = f"layer {seed}: {files} files, {size} bytes\n".encode()
        info = tarfile.TarInfo(f"layer{seed}/README")
        info.size = len(note)
        info.mode = 0o644
        _normalise(info)
        tar.addfile(info, io.BytesIO(note))
    raw = buffer.getvalue()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)


def _normalise(info: tarfile.TarInfo) -> None:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""


class _Layout:
    """An OCI image layout directory being written; tags go into ``index.json``."""

    transport = "oci"

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index_path = path / "index.json"
        if not self.index_path.exists():
            self._write_index([])

    def add(self, data: bytes, media_type: str, diff_id: str | None = None) -> Blob:
        digest = sha256_digest(data)
        (self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return Blob(media_type, digest, len(data), diff_id)

    def add_manifest(self, data: bytes, media_type: str) -> Blob:
        return self.add(data, media_type)

    def tag(self, blob: Blob, tag: str, data: bytes) -> None:
        entries = [
            entry
            for entry in read_layout_index(self.path)["manifests"]
            if entry.get("annotations", {}).get(REF_NAME_ANNOTATION) != tag
        ]
        entries.append({**blob.descriptor(), "annotations": {REF_NAME_ANNOTATION: tag}})
        self._write_index(entries)

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        document = {"schemaVersion": 2, "mediaType": OCI.index, "manifests": manifests}
        self.index_path.write_bytes(canonical_json(document))


class _DirLayout(_Layout):
    """The ``dir:`` layout of containers/image (skopeo, podman): one image or index per
    directory, blobs named by hex, the top manifest in ``manifest.json`` and the manifests an
    index lists in ``<hex>.manifest.json``.

    skopeo 1.9 reads only OCI media types from an OCI layout, so Docker schema 2 images are
    written this way to reach a registry unconverted.
    """

    transport = "dir"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        (path / "version").write_text("Directory Transport Version: 1.1\n")

    def add(self, data: bytes, media_type: str, diff_id: str | None = None) -> Blob:
        digest = sha256_digest(data)
        (self.path / digest.removeprefix("sha256:")).write_bytes(data)
        return Blob(media_type, digest, len(data), diff_id)

    def add_manifest(self, data: bytes, media_type: str) -> Blob:
        digest = sha256_digest(data)
        (self.path / f"{digest.removeprefix('sha256:')}.manifest.json").write_bytes(data)
        return Blob(media_type, digest, len(data))

    def tag(self, blob: Blob, tag: str, data: bytes) -> None:
        (self.path / "manifest.json").write_bytes(data)
        (self.path / f"{blob.digest.removeprefix('sha256:')}.manifest.json").unlink()


def _open_layout(directory: Path, layout: Literal["oci", "dir"]) -> _Layout:
    return _DirLayout(directory) if layout == "dir" else _Layout(directory)


def read_layout_index(layout: Path) -> dict[str, Any]:
    """The ``index.json`` of an OCI image layout."""
    result: dict[str, Any] = json.loads((layout / "index.json").read_bytes())
    return result


def _write_image(
    layout: _Layout,
    *,
    layers: int,
    layer_size: int,
    seed: int,
    media_types: MediaTypes,
    platform: Platform,
) -> tuple[Blob, bytes, Blob, tuple[Blob, ...]]:
    blobs = []
    for number in range(layers):
        raw, compressed = layer_tar_gz(seed * 1000 + number, layer_size)
        blobs.append(layout.add(compressed, media_types.layer, diff_id=sha256_digest(raw)))
    config_document = {
        "architecture": platform.architecture,
        "os": platform.os,
        **({"variant": platform.variant} if platform.variant else {}),
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/true"],
            "Labels": {"wharf.test.seed": str(seed)},
        },
        "rootfs": {"type": "layers", "diff_ids": [blob.diff_id for blob in blobs]},
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": f"wharf test layer {number}"}
            for number in range(layers)
        ],
    }
    config = layout.add(canonical_json(config_document), media_types.config)
    manifest_document = {
        "schemaVersion": 2,
        "mediaType": media_types.manifest,
        "config": config.descriptor(),
        "layers": [blob.descriptor() for blob in blobs],
    }
    data = canonical_json(manifest_document)
    return layout.add_manifest(data, media_types.manifest), data, config, tuple(blobs)


def build_image(
    directory: Path,
    *,
    tag: str = "latest",
    layers: int = 3,
    layer_size: int = 64 * 1024,
    seed: int = 0,
    media_types: MediaTypes = OCI,
    platform: Platform = AMD64,
    layout: Literal["oci", "dir"] = "oci",
) -> BuiltImage:
    """Write a ``layers``-layer image into ``directory``, tagged ``tag``.

    ``layout="oci"`` writes (or adds to) an OCI image layout; ``layout="dir"`` writes
    containers/image's ``dir:`` layout, which holds one image and ignores the tag.
    """
    writer = _open_layout(directory, layout)
    manifest, data, config, blobs = _write_image(
        writer,
        layers=layers,
        layer_size=layer_size,
        seed=seed,
        media_types=media_types,
        platform=platform,
    )
    writer.tag(manifest, tag, data)
    return BuiltImage(directory, writer.transport, tag, manifest, config, blobs, platform)


def build_index(
    directory: Path,
    *,
    tag: str = "latest",
    platforms: tuple[Platform, ...] = (AMD64, ARM64),
    layers: int = 2,
    layer_size: int = 32 * 1024,
    seed: int = 100,
    media_types: MediaTypes = OCI,
    layout: Literal["oci", "dir"] = "oci",
) -> BuiltIndex:
    """Write an index (OCI) or manifest list (Docker) with one image per platform."""
    writer = _open_layout(directory, layout)
    images = []
    entries = []
    for number, platform in enumerate(platforms):
        manifest, _, config, blobs = _write_image(
            writer,
            layers=layers,
            layer_size=layer_size,
            seed=seed + number,
            media_types=media_types,
            platform=platform,
        )
        images.append(
            BuiltImage(directory, writer.transport, None, manifest, config, blobs, platform)
        )
        entries.append({**manifest.descriptor(), "platform": platform.as_dict()})
    document = {"schemaVersion": 2, "mediaType": media_types.index, "manifests": entries}
    data = canonical_json(document)
    index = writer.add_manifest(data, media_types.index)
    writer.tag(index, tag, data)
    return BuiltIndex(directory, writer.transport, tag, index, tuple(images))
