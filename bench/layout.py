"""Fill a registry's filesystem storage directly, in Distribution's layout.

Ten thousand pushes would take longer than the rest of the benchmark, so the listings are
measured on trees written here: the files a push leaves (blob data, layer and revision links,
tag links), at the paths ``wharf.storage.paths`` gives, which both registries read
(tests/compat/test_layout.py checks that the two write the same files).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import build_image, read_layout_index

from wharf.reference import Digest, RepositoryName, Tag
from wharf.storage import paths

__all__ = ["SmallImage", "fill", "small_image"]


@dataclass(frozen=True)
class SmallImage:
    """A one-layer image: its manifest and the blobs the manifest references."""

    manifest: bytes
    media_type: str
    digest: str
    blobs: dict[str, bytes]


def small_image(directory: Path) -> SmallImage:
    """A small deterministic OCI image (tests.support.images), read back into memory."""
    built = build_image(directory, tag="bench", layers=1, layer_size=4096, seed=7)
    blobs_dir = directory / "blobs" / "sha256"
    entry = next(
        item for item in read_layout_index(directory)["manifests"] if item["digest"] == built.digest
    )

    def read(digest: str) -> bytes:
        return (blobs_dir / digest.removeprefix("sha256:")).read_bytes()

    return SmallImage(
        manifest=read(built.digest),
        media_type=str(entry["mediaType"]),
        digest=built.digest,
        blobs={digest: read(digest) for digest in built.blob_digests},
    )


class _Writer:
    """Writes small files under ``root``, creating each directory once."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.made: set[str] = set()
        self.count = 0

    def __call__(self, path: str, content: bytes) -> None:
        target = self.root + path
        parent = target.rpartition("/")[0]
        if parent not in self.made:
            os.makedirs(parent, exist_ok=True)
            self.made.add(parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        self.count += 1


def fill(root: Path, image: SmallImage, repositories: Iterable[str], tags: Iterable[str]) -> int:
    """Store ``image`` once and give every repository every tag of it; returns files written."""
    write = _Writer(root)
    manifest = Digest.parse(image.digest)
    for digest, data in [(image.digest, image.manifest), *image.blobs.items()]:
        write(paths.blob_data(Digest.parse(digest)), data)
    link = paths.link_content(manifest)
    tag_list = [Tag(tag) for tag in tags]
    for repository in repositories:
        name = RepositoryName(repository)
        for digest in image.blobs:
            blob = Digest.parse(digest)
            write(paths.layer_link(name, blob), paths.link_content(blob))
        write(paths.manifest_revision_link(name, manifest), link)
        for tag in tag_list:
            write(paths.tag_current_link(name, tag), link)
            write(paths.tag_index_link(name, tag, manifest), link)
    return write.count


def remove_blob_data(root: Path, digest: str) -> None:
    """Delete a blob's bytes behind the registry's back (after the API unlinked it)."""
    directory = root / paths.blob_dir(Digest.parse(digest)).lstrip("/")
    for entry in directory.glob("*"):
        entry.unlink()
    if directory.exists():
        os.rmdir(directory)
