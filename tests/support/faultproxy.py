"""A recording, fault-injecting HTTP proxy in front of an S3 server, for tests.

Every request is forwarded unchanged (the Host header included, so that the server checks
signatures made for the proxy's address) and recorded with its S3 operation, found from the
method, the query and the headers as S3 defines them. ``fail`` makes chosen requests fail::

    with FaultProxy(server.endpoint) as proxy:
        proxy.fail("UploadPart", "status", status=503)      # next UploadPart: 503 SlowDown
        proxy.fail("CompleteMultipartUpload", "lose")        # done upstream, answer lost
        proxy.fail("GetObject", "drop", times=2, after=1)    # 2nd and 3rd: connection closed

Actions: ``status`` answers ``status`` with an S3 error body without forwarding; ``drop``
closes the connection before forwarding; ``lose`` forwards, then closes the connection
without answering (the request took effect, the client cannot know); ``cut`` forwards and
closes the connection halfway through the response body; ``corrupt`` forwards the request
with one byte of its body changed (what a signature or a checksum must catch).

In front of Azure (Azurite), pass ``classify=azure_operation``: requests are then recorded
with the Blob service's operation names (``PutBlock``, ``PutBlockList``, ``GetBlob``, ...).
In front of GCS (fake-gcs-server), ``classify=gcs_operation`` names the JSON API's methods
(``InsertObject``, ``ComposeObject``, ``GetObject``, ``ListObjects``, ...).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import http.server
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["Fault", "FaultProxy", "Recorded", "azure_operation", "gcs_operation", "s3_operation"]

_ACTIONS = ("status", "drop", "lose", "cut", "corrupt")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer"}
_ERROR_CODES = {500: "InternalError", 503: "SlowDown", 429: "SlowDown"}


def s3_operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    has_key = "/" in path.lstrip("/")
    copy = "x-amz-copy-source" in headers
    if method == "GET":
        if "uploads" in params:
            return "ListMultipartUploads"
        if "uploadId" in params:
            return "ListParts"
        if not has_key:
            return "ListObjectsV2" if params.get("list-type") == ["2"] else "ListObjects"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "PUT":
        if "partNumber" in params:
            return "UploadPartCopy" if copy else "UploadPart"
        if not has_key:
            return "CreateBucket"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        if "delete" in params:
            return "DeleteObjects"
    if method == "DELETE":
        if "uploadId" in params:
            return "AbortMultipartUpload"
        return "DeleteObject" if has_key else "DeleteBucket"
    return f"{method} {path}"


_AZURE_PUT = {
    "block": "PutBlock",
    "blocklist": "PutBlockList",
    "metadata": "SetBlobMetadata",
    "appendblock": "AppendBlock",
    "properties": "SetBlobProperties",
}


def azure_operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The Blob service operation of a path-style request (``/account/container/blob``)."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    comp = (params.get("comp") or [""])[0]
    if comp == "lease":
        return headers.get("x-ms-lease-action", "").capitalize() + "Lease"
    if method == "GET":
        return {"list": "ListBlobs", "blocklist": "GetBlockList"}.get(comp, "GetBlob")
    if method == "HEAD":
        return "GetBlobProperties"
    if method == "PUT":
        if comp in _AZURE_PUT:
            return _AZURE_PUT[comp]
        if "x-ms-copy-source" in headers:
            return "CopyBlob"
        return "CreateContainer" if params.get("restype") == ["container"] else "PutBlob"
    if method == "DELETE":
        return "DeleteBlob"
    return f"{method} {path}"


def gcs_operation(method: str, path: str, query: str, headers: dict[str, str]) -> str:
    """The JSON API method of a request (``/storage/v1/b/<bucket>/o/<object>...``); a
    multipart insert, which wharf's conditional writes use, is ``InsertObjectMultipart``."""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    if path.startswith("/upload/storage/v1/"):
        multipart = params.get("uploadType") == ["multipart"]
        return "InsertObjectMultipart" if multipart else "InsertObject"
    if not path.startswith("/storage/v1/"):
        return f"{method} {path}"  # an XML API (signed URL) request
    if method == "POST" and path.endswith("/compose"):
        return "ComposeObject"
    if method == "POST" and "/rewriteTo/" in path:
        return "RewriteObject"
    if method == "DELETE":
        return "DeleteObject"
    if method == "GET" and path.endswith("/o"):
        return "ListObjects"
    if method == "GET" and "/o/" in path:
        return "GetObject" if params.get("alt") == ["media"] else "GetObjectMetadata"
    return f"{method} {path}"


@dataclass(frozen=True)
class Recorded:
    operation: str
    method: str
    path: str  # unquoted, with the bucket: /bucket/key
    query: str
    headers: dict[str, str]  # lower-case names
    status: int  # 0 when no answer was sent
    started: float
    ended: float

    @property
    def key(self) -> str:
        return self.path.lstrip("/").partition("/")[2]


@dataclass
class Fault:
    operation: str
    action: str
    status: int = 503
    times: int = 1
    after: int = 0  # matching requests let through first
    key_contains: str = ""
    seen: int = field(default=0)

    def matches(self, operation: str, key: str) -> bool:
        """``operation`` as named, or starting so when it ends with ``*`` (requests that are
        not S3's are named ``<method> <path>``)."""
        if self.operation.endswith("*"):
            named = operation.startswith(self.operation[:-1])
        else:
            named = operation == self.operation
        return named and self.key_contains in key


class FaultProxy:
    def __init__(self, upstream: str, classify: Callable[..., str] | None = None) -> None:
        self.classify = classify or s3_operation
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = False  # joined by server_close, once unblocked
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        # Clients keep connections alive: end them, so that every handler thread returns
        # and closes its upstream connection before server_close joins it.
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- for tests --------------------------------------------------------------------------

    def fail(self, operation: str, action: str, **options: int | str) -> Fault:
        if action not in _ACTIONS:
            raise ValueError(f"action must be one of {_ACTIONS}")
        fault = Fault(operation, action, **options)  # type: ignore[arg-type]
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.max_in_flight.clear()

    def recorded(self) -> list[Recorded]:
        """The requests so far, in order. Waits for those in flight: a client may have its
        answer before the handler that sent it has recorded it."""
        deadline = time.monotonic() + 5
        while any(self.in_flight.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            return list(self.requests)

    def operations(self, *names: str) -> list[str]:
        """The operations recorded so far, in order, limited to ``names`` when given."""
        return [r.operation for r in self.recorded() if not names or r.operation in names]

    def count(self, operation: str) -> int:
        return len(self.operations(operation))

    # -- for the handler --------------------------------------------------------------------

    def _fault_for(self, operation: str, key: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(operation, key):
                    fault.seen += 1
                    if fault.seen > fault.after:
                        fault.times -= 1
                        return fault
        return None

    def _enter(self, operation: str) -> None:
        with self._lock:
            count = self.in_flight.get(operation, 0) + 1
            self.in_flight[operation] = count
            self.max_in_flight[operation] = max(self.max_in_flight.get(operation, 0), count)

    def _leave(self, record: Recorded) -> None:
        with self._lock:
            self.in_flight[record.operation] -= 1
            self.requests.append(record)


def _handler(proxy: FaultProxy) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, the second waits for the
        # client's delayed acknowledgement of the first (some 40 ms per answer).
        disable_nagle_algorithm = True
        upstream: http.client.HTTPConnection | None = None

        def log_message(self, format: str, *args: object) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with proxy._lock:
                proxy._connections.add(self.connection)

        def finish(self) -> None:
            with proxy._lock:
                proxy._connections.discard(self.connection)
            try:
                super().finish()
            finally:
                if self.upstream is not None:
                    self.upstream.close()

        def _forward(self, body: bytes) -> http.client.HTTPResponse:
            for attempt in range(2):
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    self.upstream.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in self.headers.items():
                        if name.lower() not in ("transfer-encoding", "content-length"):
                            self.upstream.putheader(name, value)
                    if body or self.command in ("PUT", "POST", "PATCH"):
                        self.upstream.putheader("Content-Length", str(len(body)))
                    self.upstream.endheaders(body)
                    return self.upstream.getresponse()
                except (ConnectionError, http.client.HTTPException):
                    # The server closed an idle kept-alive connection: reconnect once.
                    self.upstream.close()
                    self.upstream = None
                    if attempt:
                        raise
            raise AssertionError("unreachable")

        def _read_body(self) -> bytes:
            """The request's body, whole, given by its length or chunked (which goes on
            to the upstream with its length)."""
            if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)

        def _handle(self) -> None:
            started = time.monotonic()
            body = self._read_body()
            declared = self.headers.get("Content-Length")
            if declared is not None and len(body) < int(declared):
                # The client gave the request up mid-body: nothing to forward.
                self.close_connection = True
                return
            path, _, query = self.path.partition("?")
            path = urllib.parse.unquote(path)
            headers = {name.lower(): value for name, value in self.headers.items()}
            operation = proxy.classify(self.command, path, query, headers)
            record = Recorded(operation, self.command, path, query, headers, 0, started, 0.0)
            proxy._enter(operation)
            status = 0
            try:
                fault = proxy._fault_for(operation, record.key)
                if fault is not None and fault.action == "drop":
                    self.close_connection = True
                    return
                if fault is not None and fault.action == "status":
                    status = fault.status
                    code = _ERROR_CODES.get(status, "InternalError")
                    error = (
                        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>injected by the test proxy</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(error)
                    return
                if fault is not None and fault.action == "corrupt" and body:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
                response = self._forward(body)
                content = response.read()
                if fault is not None and fault.action == "lose":
                    self.close_connection = True
                    return
                status = response.status
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                declared = response.getheader("Content-Length")
                if self.command == "HEAD" and declared is not None:
                    self.send_header("Content-Length", declared)
                else:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if fault is not None and fault.action == "cut":
                    self.wfile.write(content[: len(content) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(content)
            finally:
                ended = time.monotonic()
                proxy._leave(dataclasses.replace(record, status=status, ended=ended))

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

    return Handler
