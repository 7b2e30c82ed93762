"""OCI image layout directories (image-spec ``image-layout.md``), as a copy's source or
destination: ``oci-layout``, ``index.json`` (tags in ``org.opencontainers.image.ref.name``)
and ``blobs/<alg>/<hex>``. Blobs are written to a temporary name and renamed once whole."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["INDEX_MEDIA_TYPE", "REF_NAME", "OCILayout"]

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
_LAYOUT = {"imageLayoutVersion": "1.0.0"}


class OCILayout:
    def __init__(self, path: Path) -> None:
        self.path = path

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hex_digest = digest.partition(":")
        return self.path / "blobs" / algorithm / hex_digest

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def index(self) -> dict[str, Any]:
        try:
            document: dict[str, Any] = json.loads((self.path / "index.json").read_text())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
        return document

    def resolve(self, reference: str) -> dict[str, Any]:
        """The descriptor of a tag (or a digest) in ``index.json``."""
        for descriptor in self.index().get("manifests", []):
            annotations = descriptor.get("annotations") or {}
            if reference in (annotations.get(REF_NAME), descriptor.get("digest")):
                return dict(descriptor)
        raise KeyError(f"{reference} is not in {self.path / 'index.json'}")

    def prepare(self) -> None:
        (self.path / "blobs").mkdir(parents=True, exist_ok=True)
        layout = self.path / "oci-layout"
        if not layout.exists():
            layout.write_text(json.dumps(_LAYOUT))

    def temporary(self, digest: str) -> Path:
        """Where to write a blob before ``commit`` puts it in place."""
        directory = self.blob_path(digest).parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".incoming-")
        os.close(fd)
        return Path(name)

    def commit(self, temporary: Path, digest: str) -> None:
        os.replace(temporary, self.blob_path(digest))

    def write_blob(self, digest: str, data: bytes) -> None:
        temporary = self.temporary(digest)
        temporary.write_bytes(data)
        self.commit(temporary, digest)

    def tag(self, descriptor: dict[str, Any], reference: str) -> None:
        """Record ``descriptor`` in ``index.json``, named ``reference`` unless it is a digest."""
        index = self.index()
        entry = {k: v for k, v in descriptor.items() if k != "annotations"}
        manifests = index.get("manifests", [])
        if ":" not in reference:
            entry["annotations"] = {REF_NAME: reference}
            manifests = [
                m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) != reference
            ]
        elif any(m.get("digest") == entry["digest"] for m in manifests):
            return
        index["manifests"] = [*manifests, entry]
        temporary = self.path / ".index.json.incoming"
        temporary.write_text(json.dumps(index))
        os.replace(temporary, self.path / "index.json")
