"""The ``storage: gcs:`` parameters, validated once at start, without any network.

Every parameter of Distribution's ``gcs`` driver is accepted with its name and default, so a
Distribution ``config.yml`` works unchanged; anything else is refused with a one-line
ValueError naming it. Secrets are never echoed in an error.

- ``bucket`` (required).
- ``keyfile``: a service account's JSON key file; or ``credentials``: the same JSON inline,
  as a mapping. Either gives the requests their OAuth2 tokens and signs redirect URLs
  (V4). Without either, tokens come from Google's application default credentials and
  blobs are served by wharf (no key to sign with).
- ``rootdirectory``: a prefix of every object name (leading and trailing ``/`` trimmed).
- ``chunksize``: bytes per uploaded part, a multiple of 256 KiB (Distribution's rule), 16 MiB
  by default.
- ``maxconcurrency``: requests to GCS in flight at once (at least 25, 50 by default).
- ``useragent``: the User-Agent of every request.

``STORAGE_EMULATOR_HOST`` (``host:port`` or a URL) points the driver at an emulator, as it
does Google's SDKs: requests go there without tokens, and a key, when given, still signs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EMULATOR_VARIABLE",
    "MIN_CHUNK_SIZE",
    "PARAMETERS",
    "GCSParameters",
    "ServiceAccount",
    "emulator_endpoint",
    "parse_parameters",
]

MIN_CHUNK_SIZE = 256 << 10
DEFAULT_CHUNK_SIZE = 16 << 20
DEFAULT_MAX_CONCURRENCY = 50
MIN_CONCURRENCY = 25
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"
PARAMETERS = frozenset(
    {"bucket", "keyfile", "credentials", "rootdirectory", "chunksize", "maxconcurrency",
     "useragent"}
)  # fmt: skip
_ACCOUNT_FIELDS = ("client_email", "private_key")


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A service account key: what signs tokens and redirect URLs."""

    info: Mapping[str, Any] = field(repr=False)

    @property
    def email(self) -> str:
        return str(self.info["client_email"])

    @property
    def private_key(self) -> str:
        return str(self.info["private_key"])


@dataclass(frozen=True, slots=True)
class GCSParameters:
    bucket: str
    rootdirectory: str = ""
    chunksize: int = DEFAULT_CHUNK_SIZE
    maxconcurrency: int = DEFAULT_MAX_CONCURRENCY
    useragent: str = ""
    account: ServiceAccount | None = None
    #: Where requests go: GCS, or the emulator of ``STORAGE_EMULATOR_HOST``.
    endpoint: str = "https://storage.googleapis.com"
    emulated: bool = False


def _fail(name: str, requirement: str) -> ValueError:
    return ValueError(f"storage driver 'gcs': {name} {requirement}")


def emulator_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The emulator's base URL from ``STORAGE_EMULATOR_HOST``, or None."""
    value = (os.environ if environ is None else environ).get(EMULATOR_VARIABLE, "").strip()
    if not value:
        return None
    if "://" not in value:
        value = "http://" + value
    return value.rstrip("/")


def _integer(raw: Mapping[str, Any], name: str, default: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())  # environment overrides arrive as strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"must be an integer, not {value!r}")
    return value


def _account(info: object, source: str) -> ServiceAccount:
    if not isinstance(info, Mapping) or not all(isinstance(k, str) for k in info):
        raise _fail(source, "must hold a service account's JSON key (a mapping)")
    missing = [name for name in _ACCOUNT_FIELDS if not isinstance(info.get(name), str)]
    if missing:
        raise _fail(source, f"lacks {', '.join(missing)} (a service account's JSON key)")
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(str(info["private_key"]).encode(), password=None)
    except (ValueError, TypeError):
        raise _fail(source, "has a private_key that is no PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _fail(source, "has a private_key that is no RSA key")
    # As Go's google.JWTConfigFromJSON, which Distribution uses: Google's when not given.
    return ServiceAccount({"token_uri": "https://oauth2.googleapis.com/token", **info})


def _keyfile(path: object) -> ServiceAccount:
    if not isinstance(path, str) or not path:
        raise _fail("keyfile", f"must be a file name, not {path!r}")
    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
    except OSError as exc:
        raise _fail("keyfile", f"cannot be read: {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise _fail("keyfile", f"is not JSON: {path}") from None
    return _account(info, f"keyfile {path}")


def parse_parameters(
    raw: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> GCSParameters:
    """The validated parameters; ValueError naming the first bad or unknown one."""
    for key in raw:
        if key not in PARAMETERS:
            known = ", ".join(sorted(PARAMETERS))
            raise ValueError(
                f"unknown parameter {key!r} for storage driver 'gcs' (allowed: {known})"
            )
    bucket = raw.get("bucket")
    if not isinstance(bucket, str) or not bucket.strip():
        raise _fail("bucket", "is required (the name of a bucket)")
    root = raw.get("rootdirectory", "")
    if not isinstance(root, str):
        raise _fail("rootdirectory", f"must be a string, not {root!r}")
    chunk = _integer(raw, "chunksize", DEFAULT_CHUNK_SIZE)
    if chunk < MIN_CHUNK_SIZE or chunk % MIN_CHUNK_SIZE:
        raise _fail("chunksize", f"must be a positive multiple of {MIN_CHUNK_SIZE}, not {chunk}")
    concurrency = _integer(raw, "maxconcurrency", DEFAULT_MAX_CONCURRENCY)
    if concurrency < MIN_CONCURRENCY:
        raise _fail("maxconcurrency", f"must be at least {MIN_CONCURRENCY}, not {concurrency}")
    agent = raw.get("useragent", "")
    if not isinstance(agent, str):
        raise _fail("useragent", f"must be a string, not {agent!r}")
    if "keyfile" in raw and "credentials" in raw:
        raise _fail("keyfile", "and credentials are exclusive: give one")
    account = None
    if "keyfile" in raw:
        account = _keyfile(raw["keyfile"])
    elif "credentials" in raw:
        account = _account(raw["credentials"], "credentials")
    emulator = emulator_endpoint(environ)
    return GCSParameters(
        bucket=bucket.strip(),
        rootdirectory=root.strip("/"),
        chunksize=chunk,
        maxconcurrency=concurrency,
        useragent=agent,
        account=account,
        endpoint=emulator or "https://storage.googleapis.com",
        emulated=emulator is not None,
    )
