"""The ``storage: azure:`` parameters, validated once at start, without importing the SDK.

Every parameter of Distribution's ``azure`` driver, 2.x and 3.x, is accepted with its name
and default, so a Distribution ``config.yml`` works unchanged. A bad value is refused with a
one-line ValueError naming the parameter; secrets are never echoed in an error.

- ``credentials.type``: ``shared_key`` (``accountname`` and ``accountkey``: Distribution
  2.x's only kind, and the default when no ``credentials`` section is given),
  ``client_secret`` (``clientid``, ``tenantid``, ``secret``: a Microsoft Entra application)
  or ``default_credentials`` (whatever the Azure SDK finds: environment, workload or managed
  identity, the Azure CLI's login).
- ``serviceurl`` defaults to ``https://<accountname>.blob.<realm>``; point it at an emulator
  such as Azurite (``http://127.0.0.1:10000/devstoreaccount1``) or a private endpoint.
- ``copy_status_poll_max_retry`` and ``copy_status_poll_delay`` bound the polling of a
  server-side copy that Azure finishes asynchronously (a move); Distribution 3.0 called them
  ``max_retries`` and ``retry_delay``, which are accepted as the same settings. -1 gives up
  at once, as in Distribution (the copy is aborted and the move fails).
- ``connectionstring`` (read by Distribution 3 and otherwise ignored) fills in
  ``accountname``, ``accountkey`` and ``serviceurl`` where they are not given.

wharf's own: ``legacyrootprefix: true`` names blobs as Distribution 2.x did, with the
leading ``/`` of the path kept (``/docker/registry/v2/...``); Distribution 3 trims it, and so
does wharf by default.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "CREDENTIAL_TYPES",
    "DEFAULT_REALM",
    "PARAMETERS",
    "AzureParameters",
    "parse_duration",
    "parse_parameters",
]

DEFAULT_REALM = "core.windows.net"
CREDENTIAL_TYPES = ("shared_key", "client_secret", "default_credentials")
PARAMETERS = frozenset(
    {
        "accountname", "accountkey", "container", "realm", "serviceurl", "rootdirectory",
        "credentials", "connectionstring", "copy_status_poll_max_retry",
        "copy_status_poll_delay", "max_retries", "retry_delay", "legacyrootprefix",
    }
)  # fmt: skip
_CREDENTIAL_KEYS = frozenset({"type", "clientid", "tenantid", "secret"})
_SECRETS = frozenset({"accountkey", "connectionstring", "credentials.secret"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_URL_RE = re.compile(r"https?://[^/\s?#]+(/[^\s?#]*)?", re.IGNORECASE)
_HOST_RE = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# Azure's rules: 3-63 lower-case letters, digits and single hyphens, starting with a
# letter or digit; ``$root`` is the account's root container.
_CONTAINER_RE = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]|\$root")
_ACCOUNT_RE = re.compile(r"[a-z0-9]{3,24}")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``"100ms"``, ``"1m30s"``, ``"0"``); ValueError otherwise."""
    body = text.strip()
    if body == "0":
        return 0.0
    total, position = 0.0, 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None:
            raise ValueError(text)
        total += float(match[1]) * _SECONDS[match[2]]
        position = match.end()
    if not body:
        raise ValueError(text)
    return total


@dataclass(frozen=True, slots=True)
class AzureParameters:
    container: str
    accountname: str = ""
    accountkey: str = ""
    credentials_type: str = "shared_key"
    clientid: str = ""
    tenantid: str = ""
    secret: str = ""
    realm: str = DEFAULT_REALM
    serviceurl: str = ""  # always set by parse_parameters
    rootdirectory: str = ""
    #: Polls of a pending copy's status before it is aborted (-1: abort at once).
    copy_status_poll_max_retry: int = 5
    #: Seconds before the n-th poll: n times this.
    copy_status_poll_delay: float = 0.1
    legacyrootprefix: bool = False

    def __repr__(self) -> str:
        # Keep keys and secrets out of logs and tracebacks.
        hidden = {"accountkey", "secret"}
        shown = {
            f.name: "***" if f.name in hidden and getattr(self, f.name) else getattr(self, f.name)
            for f in fields(self)
        }
        return "AzureParameters(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


class _Reader:
    """Typed values out of the raw mapping; every error names its parameter."""

    def __init__(self, raw: Mapping[str, Any], prefix: str = "") -> None:
        self.raw = raw
        self.prefix = prefix

    def fail(self, name: str, requirement: str) -> ValueError:
        full = self.prefix + name
        shown = "" if full in _SECRETS else f", not {self.raw.get(name)!r}"
        return ValueError(f"storage driver 'azure': {full} {requirement}{shown}")

    def string(self, name: str, default: str = "") -> str:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(name, "must be a string")
        return str(value).strip()

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip() in _TRUE | _FALSE:
            return value.strip() in _TRUE
        raise self.fail(name, "must be a boolean (true or false)")

    def integer(self, name: str, default: int, minimum: int) -> int:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)  # environment overrides arrive as strings
        else:
            raise self.fail(name, "must be an integer")
        if number < minimum:
            raise self.fail(name, f"must be at least {minimum}")
        return number

    def duration(self, name: str, default: float) -> float:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value) / 1e9  # a bare number is nanoseconds, as Go decodes it
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return parse_duration(value)
        except ValueError:
            raise self.fail(name, "must be a duration such as 100ms or 2s") from None


def _connection_string(text: str) -> dict[str, str]:
    """The ``Key=Value;...`` pairs of an Azure connection string, keys in lower case."""
    pairs = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            pairs[key.strip().lower()] = value.strip()
    return pairs


def _alias(read: _Reader, new: str, old: str) -> str:
    """The name of whichever of two names of one setting is given (refusing both)."""
    if read.raw.get(new) is not None and read.raw.get(old) is not None:
        raise ValueError(f"storage driver 'azure': give {new} or {old} (its older name), not both")
    return old if read.raw.get(new) is None and read.raw.get(old) is not None else new


def parse_parameters(raw: Mapping[str, Any]) -> AzureParameters:
    """The validated parameters; ValueError naming the first bad or unknown one."""
    for key in raw:
        if key not in PARAMETERS:
            known = ", ".join(sorted(PARAMETERS))
            raise ValueError(
                f"unknown parameter {key!r} for storage driver 'azure' (allowed: {known})"
            )
    read = _Reader(raw)
    extra = _connection_string(read.string("connectionstring"))
    if raw.get("connectionstring") is not None and not extra:
        raise read.fail("connectionstring", "must be Key=Value pairs separated by ;")

    container = read.string("container")
    if not _CONTAINER_RE.fullmatch(container):
        raise read.fail(
            "container", "must name a container (3-63 lower-case letters, digits and hyphens)"
        )
    account = read.string("accountname") or extra.get("accountname", "")
    if account and not _ACCOUNT_RE.fullmatch(account):
        raise read.fail("accountname", "must be 3-24 lower-case letters and digits")
    key = read.string("accountkey") or extra.get("accountkey", "")
    realm = read.string("realm", DEFAULT_REALM) or DEFAULT_REALM
    if not _HOST_RE.fullmatch(realm):
        raise read.fail("realm", "must be a domain name such as core.windows.net")

    credentials = raw.get("credentials")
    if credentials is None:
        credentials = {}
    if not isinstance(credentials, Mapping):
        raise read.fail("credentials", "must be a mapping with type (and its settings)")
    for name in credentials:
        if name not in _CREDENTIAL_KEYS:
            raise ValueError(
                f"unknown parameter 'credentials.{name}' for storage driver 'azure' "
                f"(allowed: {', '.join(sorted(_CREDENTIAL_KEYS))})"
            )
    creds = _Reader(credentials, "credentials.")
    kind = creds.string("type", "shared_key") or "shared_key"
    if kind == "default":  # Distribution's tests spell it so; it means the same
        kind = "default_credentials"
    if kind not in CREDENTIAL_TYPES:
        raise creds.fail("type", f"must be one of {', '.join(CREDENTIAL_TYPES)}")
    clientid, tenantid = creds.string("clientid"), creds.string("tenantid")
    secret = creds.string("secret")
    if kind == "shared_key":
        if not account:
            raise read.fail("accountname", "is required with shared_key credentials")
        if not key:
            raise ValueError(
                "storage driver 'azure': accountkey is required with shared_key credentials "
                "(or set credentials.type to client_secret or default_credentials)"
            )
        try:
            base64.b64decode(key, validate=True)
        except binascii.Error:
            raise read.fail("accountkey", "must be the account's base64 key") from None
    elif kind == "client_secret":
        for name, value in (("clientid", clientid), ("tenantid", tenantid), ("secret", secret)):
            if not value:
                raise creds.fail(name, "is required with client_secret credentials")

    serviceurl = read.string("serviceurl") or extra.get("blobendpoint", "")
    if serviceurl:
        if not _URL_RE.fullmatch(serviceurl):
            raise read.fail(
                "serviceurl", "must be a URL such as https://account.blob.core.windows.net"
            )
    elif account:
        serviceurl = f"https://{account}.blob.{realm}"
    else:
        raise read.fail("serviceurl", "or accountname is required")

    retries = _alias(read, "copy_status_poll_max_retry", "max_retries")
    delay = _alias(read, "copy_status_poll_delay", "retry_delay")
    return AzureParameters(
        container=container,
        accountname=account,
        accountkey=key,
        credentials_type=kind,
        clientid=clientid,
        tenantid=tenantid,
        secret=secret,
        realm=realm,
        serviceurl=serviceurl.rstrip("/"),
        rootdirectory=read.string("rootdirectory"),
        # 0 is Go's zero value, which Distribution replaces with its default.
        copy_status_poll_max_retry=read.integer(retries, 5, -1) or 5,
        copy_status_poll_delay=read.duration(delay, 0.1),
        legacyrootprefix=read.boolean("legacyrootprefix", False),
    )
