"""A small blocking registry client for the data path: blob pushes and pulls, manifests.

It is built to stay out of the way of the measurement: request bodies are sent from one
memoryview with ``sendall`` (no copies in Python), and pulls read into one reusable buffer with
``readinto`` and are never hashed while timed. ``bench.sink`` serves the same requests with
no work behind them, so the harness can report this client's own ceiling.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

__all__ = [
    "MANIFEST_ACCEPT",
    "BenchError",
    "Client",
    "Reply",
    "sha256_digest",
]

#: What a client asks for when it pulls a manifest by tag.
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_OCTETS = "application/octet-stream"
#: Bytes per ``readinto`` when pulling.
READ_BUFFER = 1 << 20


class BenchError(RuntimeError):
    """A registry answered something the benchmark did not expect."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    """One keep-alive connection to ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str, timeout: float = 300.0) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"not a http://host:port URL: {base_url}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._buffer = bytearray(READ_BUFFER)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def _target(self, location: str) -> str:
        """The path and query of a Location, absolute or relative."""
        parts = urlsplit(urljoin(self.base_url + "/", location))
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | memoryview | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Reply:
        """Send a request and read the whole answer; BenchError for another status."""
        conn = self._connection()
        sent = dict(headers or {})
        if body is not None or method in ("POST", "PUT", "PATCH"):
            sent.setdefault("Content-Length", str(0 if body is None else len(body)))
        try:
            conn.request(method, target, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if response.will_close:
            self.close()
        if reply.status not in expect:
            raise BenchError(
                f"{method} {target}: {reply.status} (expected {expect}): {data[:300]!r}"
            )
        return reply

    # -- blobs --------------------------------------------------------------------------------

    def start_upload(self, repository: str) -> str:
        reply = self.request("POST", f"/v2/{repository}/blobs/uploads/", expect=(202,))
        return self._target(reply.header("location"))

    def push_monolithic(self, repository: str, data: memoryview, digest: str) -> None:
        """POST, then one PUT with the whole body; the registry must answer 201."""
        location = self.start_upload(repository)
        self._finish(location, digest, data)

    def push_chunked(self, repository: str, data: memoryview, digest: str, chunk: int) -> None:
        """POST, PATCH in ``chunk``-byte pieces with Content-Range, then an empty PUT."""
        location = self.start_upload(repository)
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            reply = self.request(
                "PATCH",
                location,
                body=piece,
                headers={
                    "Content-Type": _OCTETS,
                    "Content-Range": f"{start}-{start + len(piece) - 1}",
                },
                expect=(202,),
            )
            location = self._target(reply.header("location"))
        self._finish(location, digest, None)

    def _finish(self, location: str, digest: str, data: memoryview | None) -> None:
        separator = "&" if "?" in location else "?"
        reply = self.request(
            "PUT",
            f"{location}{separator}digest={digest}",
            body=data,
            headers={"Content-Type": _OCTETS},
            expect=(201,),
        )
        answered = reply.header("docker-content-digest")
        if answered and answered != digest:
            raise BenchError(f"pushed {digest}, registry says {answered}")

    def pull(self, repository: str, digest: str, *, verify: bool = False) -> int:
        """GET a blob into the reusable buffer; returns its size. ``verify`` hashes it."""
        conn = self._connection()
        try:
            conn.request("GET", f"/v2/{repository}/blobs/{digest}")
            response = conn.getresponse()
            if response.status != 200:
                raise BenchError(f"GET blob {digest}: {response.status} {response.read()[:300]!r}")
            hasher = hashlib.sha256() if verify else None
            view = memoryview(self._buffer)
            size = 0
            while True:
                count = response.readinto(view)
                if not count:
                    break
                size += count
                if hasher is not None:
                    hasher.update(view[:count])
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        if hasher is not None and "sha256:" + hasher.hexdigest() != digest:
            raise BenchError(f"pulled blob does not match {digest}")
        return size

    def delete_blob(self, repository: str, digest: str) -> None:
        self.request("DELETE", f"/v2/{repository}/blobs/{digest}", expect=(202,))

    # -- manifests ----------------------------------------------------------------------------

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        reply = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            body=body,
            headers={"Content-Type": media_type},
            expect=(201,),
        )
        return reply.header("docker-content-digest")

    def get_json(self, target: str) -> object:
        return json.loads(self.request("GET", target).body)
