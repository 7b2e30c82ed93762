"""``cloudfront``: blob redirects go to a CloudFront distribution in front of the S3 bucket,
as signed URLs, as Distribution's ``cloudfront`` middleware sends them::

    middleware:
      storage:
        - name: cloudfront
          options:
            baseurl: https://d111111abcdef8.cloudfront.net/   # "https://" added when missing
            privatekey: /etc/wharf/cloudfront/pk-APKAEXAMPLE.pem
            keypairid: APKAEXAMPLE
            duration: 20m              # how long a signed URL is valid
            ipfilteredby: none         # none | aws | awsregion
            awsregion: us-east-1, eu-west-1   # with awsregion: a comma-separated list
            updatefrequency: 12h       # how often the ranges are loaded again
            iprangesurl: https://ip-ranges.amazonaws.com/ip-ranges.json   # or a file

A blob's URL is ``baseurl`` followed by its object key in the bucket (the S3 driver's
``rootdirectory`` included), signed with a canned policy: the URL, then ``Expires`` (Unix
seconds), ``Signature`` (RSA-SHA1, PKCS#1 v1.5, of the policy
``{"Statement":[{"Resource":URL,"Condition":{"DateLessThan":{"AWS:EpochTime":Expires}}}]}``
in CloudFront's URL-safe base64: ``+`` ``=`` ``/`` written ``-`` ``_`` ``~``) and
``Key-Pair-Id``. The private key is a PEM RSA key (PKCS#1, as CloudFront hands it out, or
PKCS#8), unencrypted.

With ``ipfilteredby``, a client whose address lies in AWS's published ranges (``aws``), or in
those of the ``awsregion`` regions (``awsregion``), gets the S3 presigned URL instead: traffic
inside AWS does not need the CDN. The client's address is Distribution's: the first
X-Forwarded-For hop or X-Real-Ip when present, else the peer's.

Distribution's middleware works on the S3 driver only and passes any other driver's URLs
through; wharf refuses it on another driver at start instead.
"""

from __future__ import annotations

import base64
import ipaddress
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from wharf.observability.context import CURRENT
from wharf.storage.driver.base import StorageDriver
from wharf.storage.driver.middleware.awsips import DEFAULT_IP_RANGES_URL, AwsRanges, local_path
from wharf.storage.driver.middleware.base import Middleware, bucket_key
from wharf.storage.driver.middleware.options import Options

__all__ = [
    "CloudFrontMiddleware",
    "CloudFrontOptions",
    "client_address",
    "parse_cloudfront",
    "sign_url",
]

DEFAULT_DURATION = timedelta(minutes=20)
DEFAULT_UPDATE_FREQUENCY = timedelta(hours=12)
_FILTERS = ("none", "aws", "awsregion")
#: CloudFront's URL-safe base64 alphabet for policies and signatures.
_SAFE = bytes.maketrans(b"+=/", b"-_~")


@dataclass(frozen=True, slots=True)
class CloudFrontOptions:
    base_url: str
    private_key: rsa.RSAPrivateKey
    key_pair_id: str
    duration: timedelta
    ip_filtered_by: str
    regions: tuple[str, ...]
    update_frequency: timedelta
    ip_ranges_url: str


def parse_cloudfront(options: Options) -> CloudFrontOptions:
    """The options, the private key read and parsed; one-line ValueError for the first bad
    one (a local ip-ranges file is only checked to exist: it is read when used)."""
    base = options.string("baseurl", required="the CloudFront distribution's URL").strip()
    if "://" not in base:
        base = "https://" + base
    if not base.endswith("/"):
        base += "/"
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise options.error("baseurl", f"not an http(s) URL: {base!r}")
    if parsed.query or parsed.fragment:
        raise options.error("baseurl", f"must have no query or fragment: {base!r}")
    key_file = options.string("privatekey", required="the PEM file of the key pair's private key")
    key_pair_id = options.string("keypairid", required="the CloudFront key pair's (or key's) id")
    duration = options.duration("duration", DEFAULT_DURATION)
    if options.has("updatefrequency") and options.has("updatefrenquency"):
        raise options.error(
            "updatefrenquency", "Distribution's misspelling of updatefrequency: set one"
        )
    frequency = options.duration(
        "updatefrequency", options.duration("updatefrenquency", DEFAULT_UPDATE_FREQUENCY)
    )
    ranges_url = options.string("iprangesurl", DEFAULT_IP_RANGES_URL).strip()
    filtered = options.string("ipfilteredby", "none").strip().lower() or "none"
    if filtered not in _FILTERS:
        raise options.error(
            "ipfilteredby", f"must be one of {', '.join(_FILTERS)}, not {filtered!r}"
        )
    regions = _regions(options)
    if regions and filtered != "awsregion":
        raise options.error("awsregion", "used only with ipfilteredby: awsregion")
    if filtered == "awsregion" and not regions:
        raise options.error("awsregion", "required with ipfilteredby: awsregion (comma-separated)")
    options.finish()
    if filtered != "none":
        try:
            path = local_path(ranges_url)
        except ValueError as exc:
            raise options.error("iprangesurl", str(exc)) from None
        if path is not None and not _readable(path):
            raise options.error("iprangesurl", f"cannot read {path}")
    return CloudFrontOptions(
        base_url=base,
        private_key=_private_key(options, key_file),
        key_pair_id=key_pair_id,
        duration=duration,
        ip_filtered_by=filtered,
        regions=regions,
        update_frequency=frequency,
        ip_ranges_url=ranges_url,
    )


def _regions(options: Options) -> tuple[str, ...]:
    """``awsregion``: a comma-separated string, as in Distribution, or a list."""
    raw = options.raw("awsregion")
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        names: Sequence[str] = raw
    else:
        names = options.string("awsregion").split(",")
    return tuple(name.strip().lower() for name in names if name.strip())


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


def _private_key(options: Options, path: str) -> rsa.RSAPrivateKey:
    try:
        with open(path, "rb") as file:
            pem = file.read(1 << 20)
    except OSError as exc:
        raise options.error("privatekey", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise options.error(
            "privatekey", f"{path} is encrypted; wharf needs the key without a passphrase"
        ) from None
    except Exception:  # ValueError, or UnsupportedAlgorithm
        raise options.error("privatekey", f"{path} holds no PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise options.error("privatekey", f"{path} holds no RSA key: CloudFront signs with RSA")
    return key


def _safe_b64(data: bytes) -> str:
    return base64.b64encode(data).translate(_SAFE).decode("ascii")


def canned_policy(url: str, expires: int) -> bytes:
    """The canned policy of ``url`` until ``expires``, byte for byte as CloudFront expects it."""
    resource = url.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'{{"Statement":[{{"Resource":"{resource}",'
        f'"Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}'
    ).encode()


def sign_url(url: str, key: rsa.RSAPrivateKey, key_pair_id: str, expires: int) -> str:
    """``url`` signed with a canned policy valid until ``expires`` (Unix seconds)."""
    # RSA-SHA1 is CloudFront's algorithm for signed URLs.
    signature = key.sign(canned_policy(url, expires), padding.PKCS1v15(), hashes.SHA1())
    key_id = urllib.parse.quote(key_pair_id, safe="")
    query = f"Expires={expires}&Signature={_safe_b64(signature)}&Key-Pair-Id={key_id}"
    return f"{url}{'&' if '?' in url else '?'}{query}"


def client_address() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of the client of the request being served, as Distribution takes it:
    the first X-Forwarded-For hop, else X-Real-Ip, else the peer; None when unknown."""
    info = CURRENT.get()
    if info is None:
        return None
    text = (
        info.header(b"x-forwarded-for").split(",")[0].strip() or info.header(b"x-real-ip").strip()
    )
    if not text:
        client = info.scope.get("client")
        text = str(client[0]) if client else ""
    return _address(text)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None


class CloudFrontMiddleware(Middleware):
    def __init__(self, inner: StorageDriver, options: CloudFrontOptions) -> None:
        super().__init__(inner)
        self.options = options
        self.ranges: AwsRanges | None = None
        if options.ip_filtered_by != "none":
            self.ranges = AwsRanges(
                options.ip_ranges_url,
                options.regions,
                options.update_frequency.total_seconds(),
            )

    @classmethod
    def from_options(
        cls, inner: StorageDriver, options: Mapping[str, Any], where: str = ""
    ) -> CloudFrontMiddleware:
        return cls(inner, parse_cloudfront(Options("cloudfront", where, options)))

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        key = bucket_key(self.inner, path)
        if key is None or method not in ("GET", "HEAD"):
            return await self.inner.redirect_url(path, method)
        if await self._inside_aws():
            return await self.inner.redirect_url(path, method)
        o = self.options
        expires = int(time.time() + o.duration.total_seconds())
        return sign_url(o.base_url + urllib.parse.quote(key), o.private_key, o.key_pair_id, expires)

    async def _inside_aws(self) -> bool:
        if self.ranges is None:
            return False
        address = client_address()
        return address is not None and await self.ranges.contains(address)

    async def close(self) -> None:
        if self.ranges is not None:
            await self.ranges.close()
        await super().close()
