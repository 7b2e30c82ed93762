"""A registry with no work behind it, for skopeo: how fast skopeo pushes and pulls on its own.

Pushes to a repository whose name starts with ``push`` are taken and dropped: a blob HEAD
answers 404 (so every layer is sent), POST opens an upload, PATCH reads and drops its body
(chunked, as skopeo streams a layer), PUT answers 201 with the digest the client named, and a
manifest PUT answers 201 with the digest of its bytes. Any other repository serves the image
of an OCI layout: its manifest for every reference, and the layout's blob files by digest.
Nothing is hashed, checked or stored; files are read from the page cache on the event loop.

Run: ``python -m bench.skopeo_sink --port PORT --layout DIR --manifest DIGEST --media-type
TYPE`` (served by uvicorn with httptools, as wharf is by default).
"""

from __future__ import annotations

import argparse
import hashlib
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

__all__ = ["SkopeoSink", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CHUNK = 1 << 20


class SkopeoSink:
    """The ASGI app: see the module's docstring."""

    def __init__(self, layout: Path, manifest: str, media_type: str) -> None:
        self.blobs = layout / "blobs" / "sha256"
        self.manifest = manifest
        self.manifest_bytes = self._blob(manifest).read_bytes()
        self.media_type = media_type

    def _blob(self, digest: str) -> Path:
        return self.blobs / digest.rpartition(":")[2]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        name, _, rest = path.removeprefix("/v2/").partition("/blobs/")
        if path == "/v2/":
            await _answer(send, 200, {}, b"{}")
        elif rest.startswith("uploads"):
            await self._upload(scope, receive, send, name)
        elif rest:
            await self._blob_request(send, method, name, rest)
        elif "/manifests/" in path:
            await self._manifest(receive, send, method)
        else:
            await _answer(send, 404, {})

    async def _upload(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        received = await _drain(receive)
        method = scope["method"]
        if method == "POST":
            location = f"/v2/{name}/blobs/uploads/{uuid.uuid4()}"
            await _answer(send, 202, {"Location": location, "Range": "0-0"})
        elif method == "PATCH":
            last = max(received - 1, 0)
            await _answer(send, 202, {"Location": scope["path"], "Range": f"0-{last}"})
        elif method == "PUT":
            query = parse_qs(scope["query_string"].decode("latin-1"))
            digest = query.get("digest", [""])[0]
            headers = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
            await _answer(send, 201, headers)
        else:
            await _answer(send, 405, {})

    async def _blob_request(self, send: Send, method: str, name: str, digest: str) -> None:
        file = self._blob(digest)
        if name.startswith("push") or not file.is_file():
            await _answer(send, 404, {})
            return
        size = file.stat().st_size
        headers = [
            (b"content-length", str(size).encode()),
            (b"content-type", b"application/octet-stream"),
            (b"docker-content-digest", digest.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if method == "GET":
            with file.open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _manifest(self, receive: Receive, send: Send, method: str) -> None:
        if method == "PUT":
            body = bytearray()
            await _drain(receive, body)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            await _answer(send, 201, {"Docker-Content-Digest": digest})
            return
        headers = {"Content-Type": self.media_type, "Docker-Content-Digest": self.manifest}
        size = len(self.manifest_bytes)
        await _answer(send, 200, headers, b"" if method == "HEAD" else self.manifest_bytes, size)


async def _drain(receive: Receive, keep: bytearray | None = None) -> int:
    """Read a request body to its end; its length. ``keep`` collects the bytes."""
    received = 0
    while True:
        message = await receive()
        body = message.get("body", b"")
        received += len(body)
        if keep is not None:
            keep += body
        if not message.get("more_body"):
            return received


async def _answer(
    send: Send, status: int, headers: dict[str, str], body: bytes = b"", length: int | None = None
) -> None:
    fields = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    fields.append((b"content-length", str(len(body) if length is None else length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--layout", type=Path, required=True, help="an OCI image layout")
    parser.add_argument("--manifest", required=True, help="the digest of the image's manifest")
    parser.add_argument("--media-type", required=True, help="the manifest's media type")
    args = parser.parse_args(argv)
    app = SkopeoSink(args.layout, args.manifest, args.media_type)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        log_level="error",  # skopeo tries TLS first: one warning per copy otherwise
        access_log=False,
    )


if __name__ == "__main__":
    main()
