"""The ``storage: swift:`` parameters, validated once at start, with no I/O.

Every parameter of Distribution 2.x's ``swift`` driver is known by its name, so a
Distribution ``config.yml`` is read unchanged; each is implemented or refused with one line:

- ``username``, ``password``, ``authurl``, ``container`` (required), ``prefix``,
  ``chunksize`` (bytes per segment, at least 1 MiB; 20 MiB by default), ``insecureskipverify``.
- ``authversion``: 1 (tempauth, swauth and other v1 endpoints). 0 or absent picks the version
  from ``authurl`` as Distribution's client does (``v2``/``v3`` in it mean Keystone). Keystone
  (2 and 3) is refused at start: wharf does not implement it. ``tenant``, ``domain``,
  ``domainid``, ``tenantdomain``, ``tenantdomainid``, ``trustid``, ``region`` and
  ``endpointtype`` (other than ``public``) only select among a Keystone catalogue, so they
  are refused too rather than ignored.
- ``secretkey``: the temp URL key; ``tempurlcontainerkey``: set it on the container (Swift
  2.3+) rather than the account; ``tempurlmethods``: the methods temp URLs are made for,
  where the cluster's ``/info`` does not tell. ``accesskey`` (with ``tenantid``) signs in
  HP Cloud's ``tenantid:accesskey:signature`` form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DEFAULT_CHUNK_SIZE", "MIN_CHUNK_SIZE", "PARAMETERS", "SwiftParameters",
           "parse_parameters"]  # fmt: skip

DEFAULT_CHUNK_SIZE = 20 << 20
MIN_CHUNK_SIZE = 1 << 20
#: Largest segment: Swift's default max_file_size is 5 GiB; the writer buffers one segment.
MAX_CHUNK_SIZE = 1 << 30
PARAMETERS = frozenset(
    {
        "username", "password", "authurl", "authversion", "tenant", "tenantid", "domain",
        "domainid", "tenantdomain", "tenantdomainid", "trustid", "region", "container",
        "prefix", "endpointtype", "insecureskipverify", "chunksize", "secretkey", "accesskey",
        "tempurlcontainerkey", "tempurlmethods",
    }
)  # fmt: skip
_KEYSTONE_ONLY = ("tenant", "domain", "domainid", "tenantdomain", "tenantdomainid", "trustid",
                  "region")  # fmt: skip
_SECRETS = frozenset({"password", "secretkey", "accesskey"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_URL_RE = re.compile(r"https?://[^/\s?#]+(/[^\s?#]*)?", re.IGNORECASE)
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})


@dataclass(frozen=True, slots=True)
class SwiftParameters:
    username: str
    password: str
    authurl: str
    container: str
    prefix: str = ""
    chunksize: int = DEFAULT_CHUNK_SIZE
    insecureskipverify: bool = False
    secretkey: str = ""
    accesskey: str = ""
    tenantid: str = ""
    tempurlcontainerkey: bool = False
    #: None: as the cluster's ``/info`` says.
    tempurlmethods: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        shown = {
            f.name: "***" if f.name in _SECRETS and getattr(self, f.name) else getattr(self, f.name)
            for f in fields(self)
        }
        return "SwiftParameters(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def _fail(name: str, requirement: str, raw: Mapping[str, Any]) -> ValueError:
    shown = "" if name in _SECRETS else f", not {raw.get(name)!r}"
    return ValueError(f"storage driver 'swift': {name} {requirement}{shown}")


def _string(raw: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise ValueError(f"storage driver 'swift': {name} is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(name, "must be a string", raw)
    return str(value)


def _boolean(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _TRUE | _FALSE:
        return value in _TRUE
    raise _fail(name, "must be a boolean", raw)


def _integer(raw: Mapping[str, Any], name: str, default: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, "must be an integer", raw)
    return value


def auth_version(authurl: str, configured: int) -> int:
    """The auth version Distribution's client (ncw/swift) would use."""
    if configured:
        return configured
    if "v3" in authurl:
        return 3
    if "v2" in authurl:
        return 2
    return 1


def parse_parameters(raw: Mapping[str, Any]) -> SwiftParameters:
    """The parameters of a ``storage: swift:`` section; ValueError (one line) naming the
    first unknown or bad one. Secrets are never shown."""
    for key in raw:
        if key not in PARAMETERS:
            known = ", ".join(sorted(PARAMETERS))
            raise ValueError(
                f"unknown parameter {key!r} for storage driver 'swift' (allowed: {known})"
            )
    authurl = _string(raw, "authurl", required=True)
    if not _URL_RE.fullmatch(authurl):
        raise _fail("authurl", "must be an http or https URL", raw)
    version = _integer(raw, "authversion", 0)
    if version not in (0, 1, 2, 3):
        raise _fail("authversion", "must be 1, 2 or 3", raw)
    if auth_version(authurl, version) != 1:
        raise ValueError(
            "storage driver 'swift': Keystone authentication (authversion 2 or 3) is not "
            "supported; give a v1 (tempauth) authurl and authversion 1"
        )
    for name in _KEYSTONE_ONLY:
        if _string(raw, name):
            raise ValueError(
                f"storage driver 'swift': {name} applies to Keystone authentication only, "
                "which is not supported"
            )
    endpointtype = _string(raw, "endpointtype")
    if endpointtype not in ("", "public"):
        raise ValueError(
            "storage driver 'swift': endpointtype applies to Keystone authentication only "
            f"(v1 auth has one storage URL), not {endpointtype!r}"
        )
    accesskey = _string(raw, "accesskey")
    tenantid = _string(raw, "tenantid")
    if tenantid and not accesskey:
        raise ValueError(
            "storage driver 'swift': tenantid applies to Keystone authentication, or to "
            "accesskey signatures, only"
        )
    chunksize = _integer(raw, "chunksize", DEFAULT_CHUNK_SIZE)
    if not MIN_CHUNK_SIZE <= chunksize <= MAX_CHUNK_SIZE:
        raise _fail("chunksize", f"must be from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}", raw)
    methods: tuple[str, ...] | None = None
    if "tempurlmethods" in raw and raw["tempurlmethods"] is not None:
        value = raw["tempurlmethods"]
        if isinstance(value, str):
            value = [part for part in re.split(r"[\s,]+", value) if part]
        if not isinstance(value, list) or not all(
            isinstance(m, str) and m.upper() in _METHODS for m in value
        ):
            raise _fail("tempurlmethods", "must be a list of GET, HEAD, PUT, POST, DELETE", raw)
        methods = tuple(m.upper() for m in value)
    container = _string(raw, "container", required=True)
    if "/" in container or len(container) > 256:
        raise _fail("container", "must be a container name (no '/', at most 256 bytes)", raw)
    return SwiftParameters(
        username=_string(raw, "username", required=True),
        password=_string(raw, "password", required=True),
        authurl=authurl,
        container=container,
        prefix=_string(raw, "prefix"),
        chunksize=chunksize,
        insecureskipverify=_boolean(raw, "insecureskipverify"),
        secretkey=_string(raw, "secretkey"),
        accesskey=accesskey,
        tenantid=tenantid,
        tempurlcontainerkey=_boolean(raw, "tempurlcontainerkey"),
        tempurlmethods=methods,
    )
