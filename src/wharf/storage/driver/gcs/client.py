"""The GCS client: Google's JSON API over one asynchronous httpx pool, retried only when safe.

Every request is a coroutine on the event loop; only fetching an OAuth2 token (google-auth,
blocking) goes to a thread, once an hour. ``GCSClient.request`` retries, with jittered
exponential backoff, requests its caller marks idempotent, and only on 408, 429, 5xx and
dropped connections; a conditional create (``ifGenerationMatch``) is never repeated, since
a retry whose first attempt landed would answer 412 and misreport what happened.

Errors leave this package as DriverErrors (``translate``): PathNotFound for a missing object,
DriverError naming GCS's status and reason otherwise, raised ``from`` the GCSError or httpx
error. Redirect URLs are V4 signed URLs (``sign``), made here from the service account's key.
"""

from __future__ import annotations

import asyncio
import binascii
import datetime as dt
import hashlib
import logging
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from wharf.http_reads import use_large_reads
from wharf.storage.driver.base import DriverError, PathNotFound
from wharf.storage.driver.gcs.params import GCSParameters, ServiceAccount
from wharf.storage.driver.retries import RetryPolicy as BaseRetryPolicy

__all__ = [
    "SCOPE",
    "GCSClient",
    "GCSError",
    "RetryPolicy",
    "is_retryable",
    "quote_name",
    "sign_url",
    "translate",
    "translating",
]

log = logging.getLogger("wharf.storage.gcs")

SCOPE = "https://www.googleapis.com/auth/devstorage.full_control"
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Refresh a token this long before it expires.
_TOKEN_MARGIN = 300.0


class GCSError(Exception):
    """An error answer of GCS (``status`` > 0) or a failed request (``status`` 0)."""

    def __init__(self, operation: str, status: int, message: str) -> None:
        self.operation = operation
        self.status = status
        self.message = message
        super().__init__(
            f"{operation}: {status} {message}" if status else f"{operation}: {message}"
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy(BaseRetryPolicy):
    """GCS's backoff: Google's advice is exponential from about a second; up to ~15 s of
    waits in all here."""

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, GCSError):
        return exc.status == 0 or exc.status in _RETRY_STATUS
    return isinstance(exc, httpx.TransportError)


#: Operations whose 404 can only mean that the bucket is missing: they name no object that
#: must exist (a listing of an empty prefix answers 200).
_BUCKET_OPERATIONS = frozenset({"InsertObject", "ListObjects"})


def translate(exc: BaseException, path: str) -> DriverError:
    """The DriverError for a GCS or transport error met while working on ``path``."""
    if isinstance(exc, GCSError) and exc.status == 404 and exc.operation in _BUCKET_OPERATIONS:
        return DriverError(f"{path}: GCS bucket not found: {exc.message}", path=path)
    if isinstance(exc, GCSError) and exc.status == 404:
        return PathNotFound(path)
    if isinstance(exc, GCSError):
        status = f"{exc.status} " if exc.status else ""
        return DriverError(f"{path}: GCS {exc.operation} failed: {status}{exc.message}", path=path)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DriverError(f"{path}: GCS request failed: {first}", path=path)


@contextmanager
def translating(path: str) -> Iterator[None]:
    """Turns a GCS or httpx error leaving the block into the DriverError for ``path``."""
    try:
        yield
    except (GCSError, httpx.HTTPError) as exc:
        raise translate(exc, path) from exc


def quote_name(name: str) -> str:
    """An object name as one path segment of the JSON API."""
    return urllib.parse.quote(name, safe="")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        return str(error.get("message") or response.reason_phrase)[:300]
    except ValueError:
        return (response.text[:300].strip() or response.reason_phrase).splitlines()[0]


class _Tokens:
    """OAuth2 access tokens of a service account or of the application default credentials,
    fetched by google-auth in a thread and reused until shortly before they expire."""

    def __init__(self, account: ServiceAccount | None) -> None:
        self._account = account
        self._credentials: Any = None
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def _refresh(self) -> tuple[str, float]:
        import google.auth
        import google.auth.transport.requests
        from google.oauth2 import service_account

        if self._credentials is None:
            if self._account is not None:
                self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    dict(self._account.info), scopes=[SCOPE]
                )
            else:
                self._credentials, _ = google.auth.default(scopes=[SCOPE])
        self._credentials.refresh(google.auth.transport.requests.Request())
        expiry = self._credentials.expiry
        lifetime = 3600.0
        if expiry is not None:
            lifetime = (expiry.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)).total_seconds()
        return str(self._credentials.token), time.monotonic() + lifetime

    async def header(self) -> str:
        if time.monotonic() < self._expires - _TOKEN_MARGIN:
            return self._token
        async with self._lock:
            if time.monotonic() >= self._expires - _TOKEN_MARGIN:
                try:
                    self._token, self._expires = await asyncio.to_thread(self._refresh)
                except Exception as exc:  # google-auth's errors have no common base
                    raise GCSError("token", 0, f"no access token: {exc}") from exc
        return self._token


class GCSClient:
    """One bucket's client: the httpx pool, tokens, the retry loop and URL signing."""

    def __init__(self, params: GCSParameters, *, retry: RetryPolicy | None = None) -> None:
        self.params = params
        self.retry = retry or RetryPolicy()
        headers = {"User-Agent": params.useragent or "wharf"}
        limits = httpx.Limits(
            max_connections=params.maxconcurrency,
            max_keepalive_connections=params.maxconcurrency,
        )
        use_large_reads()
        self.http = httpx.AsyncClient(
            base_url=params.endpoint,
            headers=headers,
            timeout=httpx.Timeout(120.0, connect=10.0, pool=None),
            limits=limits,
        )
        self.bucket_path = f"/storage/v1/b/{quote_name(params.bucket)}/o"
        self.upload_path = f"/upload/storage/v1/b/{quote_name(params.bucket)}/o"
        self._tokens = None if params.emulated else _Tokens(params.account)
        self._closed = False

    def object_path(self, name: str) -> str:
        return f"{self.bucket_path}/{quote_name(name)}"

    async def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._tokens is not None:
            headers["Authorization"] = "Bearer " + await self._tokens.header()
        return headers

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        stream: bool = False,
    ) -> httpx.Response:
        """The answer to one request (streamed when ``stream``: the caller closes it); a
        GCSError for an error status, after retries when ``idempotent``."""
        if self._closed:
            raise DriverError("driver is closed")
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                request = self.http.build_request(
                    method, url, params=params, content=content, json=json,
                    headers=await self._headers(headers),
                )  # fmt: skip
                response = await self.http.send(request, stream=True)
                if response.status_code >= 400:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                    raise GCSError(operation, response.status_code, _message(response))
                if not stream:
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
            except (GCSError, httpx.TransportError) as exc:
                attempt += 1
                retry = idempotent and attempt < self.retry.attempts and is_retryable(exc)
                log.debug(
                    "gcs %s failed after %.3fs (attempt %d%s): %s",
                    operation, time.perf_counter() - started, attempt,
                    ", retrying" if retry else "", exc,
                )  # fmt: skip
                if not retry:
                    raise
                await asyncio.sleep(self.retry.delay(attempt - 1))
                continue
            log.debug("gcs %s took %.3fs", operation, time.perf_counter() - started)
            return response

    def sign(self, name: str, method: str, expires: dt.timedelta) -> str | None:
        """A V4 signed URL of object ``name`` for ``method``, or None without a key."""
        account = self.params.account
        if account is None:
            return None
        return sign_url(
            account, self.params.endpoint, self.params.bucket, name, method,
            dt.datetime.now(dt.UTC), expires,
        )  # fmt: skip

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.http.aclose()


def sign_url(
    account: ServiceAccount,
    endpoint: str,
    bucket: str,
    name: str,
    method: str,
    now: dt.datetime,
    expires: dt.timedelta,
) -> str:
    """Google's V4 signed URL (GOOG4-RSA-SHA256, path style, only ``host`` signed)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    host = urllib.parse.urlsplit(endpoint).netloc
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{now.strftime('%Y%m%d')}/auto/storage/goog4_request"
    path = "/" + urllib.parse.quote(f"{bucket}/{name}", safe="/~")
    query = {
        "X-Goog-Algorithm": "GOOG4-RSA-SHA256",
        "X-Goog-Credential": f"{account.email}/{scope}",
        "X-Goog-Date": timestamp,
        "X-Goog-Expires": str(int(expires.total_seconds())),
        "X-Goog-SignedHeaders": "host",
    }
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}"
        for k, v in sorted(query.items())
    )
    canonical = "\n".join(
        [method, path, canonical_query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        ["GOOG4-RSA-SHA256", timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = load_pem_private_key(account.private_key.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)  # checked by parse_parameters
    signature = key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    hexed = binascii.hexlify(signature).decode()
    return f"{endpoint}{path}?{canonical_query}&X-Goog-Signature={hexed}"
