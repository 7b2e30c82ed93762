"""The ``storage: s3:`` parameters, validated once at start.

Every parameter of Distribution's ``s3`` (s3-aws) driver is accepted with its name, default
and range, so a Distribution ``config.yml`` works unchanged. Where Distribution silently
accepts a bad value (an unknown ``loglevel``, a ``keyid`` without ``encrypt``, half a key
pair) this module refuses it with a one-line ValueError naming the parameter; secrets are
never echoed in an error.

Differences from Distribution, on purpose:

- ``sessiontoken`` is used (Distribution reads it and then drops it).
- ``objectacl`` is sent only when configured: Distribution always sends ``private``, which
  is the default anyway, and buckets with ACLs disabled refuse any ACL header.
- ``redirectendpoint`` is wharf's own: the endpoint presigned redirect URLs point at, for
  registries that reach S3 on an internal address while clients reach it on a public one.
  Distribution has no such parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "LOG_LEVELS",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "OBJECT_ACLS",
    "PARAMETERS",
    "STORAGE_CLASSES",
    "S3Parameters",
    "parse_parameters",
]

MiB = 1 << 20
#: S3's smallest part other than the last, and Distribution's smallest ``chunksize``.
MIN_CHUNK_SIZE = 5 * MiB
#: S3's largest part.
MAX_CHUNK_SIZE = 5 << 30

STORAGE_CLASSES = (
    "NONE",  # send no storage class: for S3-compatible stores that know none
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "OUTPOSTS",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
)
OBJECT_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
#: Distribution's (aws-sdk-go) log levels; ``off`` is also what YAML's ``off`` (false) means.
LOG_LEVELS = (
    "off",
    "debug",
    "debugwithsigning",
    "debugwithhttpbody",
    "debugwithrequestretries",
    "debugwithrequesterrors",
    "debugwitheventstreambody",
)
PARAMETERS = frozenset(
    {
        "accesskey", "secretkey", "sessiontoken", "region", "regionendpoint", "forcepathstyle",
        "bucket", "encrypt", "keyid", "secure", "skipverify", "v4auth", "chunksize",
        "multipartcopychunksize", "multipartcopymaxconcurrency", "multipartcopythresholdsize",
        "rootdirectory", "storageclass", "useragent", "objectacl", "loglevel", "usedualstack",
        "accelerate", "usefipsendpoint", "redirectendpoint", "conditionalwrites",
    }
)  # fmt: skip
_SECRETS = frozenset({"accesskey", "secretkey", "sessiontoken"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_URL_RE = re.compile(r"https?://[^/\s?#]+(/[^\s?#]*)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class S3Parameters:
    bucket: str
    region: str = "us-east-1"
    regionendpoint: str = ""
    accesskey: str = ""
    secretkey: str = ""
    sessiontoken: str = ""
    forcepathstyle: bool = False
    encrypt: bool = False
    keyid: str = ""
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    chunksize: int = 10 * MiB
    multipartcopychunksize: int = 32 * MiB
    multipartcopymaxconcurrency: int = 100
    multipartcopythresholdsize: int = 32 * MiB
    rootdirectory: str = ""
    storageclass: str = "STANDARD"
    useragent: str = ""
    objectacl: str | None = None
    loglevel: str = "off"
    usedualstack: bool = False
    accelerate: bool = False
    usefipsendpoint: bool = False
    redirectendpoint: str = ""
    #: wharf's own: whether the store creates an object only if absent atomically (AWS S3,
    #: MinIO, Ceph, R2, moto); OpenStack Swift does not (two concurrent creates both succeed).
    conditionalwrites: bool = True

    def __repr__(self) -> str:
        # Keep keys out of logs and tracebacks.
        hidden = {name: "***" for name in _SECRETS if getattr(self, name)}
        shown = {f.name: hidden.get(f.name, getattr(self, f.name)) for f in fields(self)}
        return "S3Parameters(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


class _Reader:
    """Reads typed values out of the raw mapping; every error names its parameter."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def fail(self, name: str, requirement: str) -> ValueError:
        value = self.raw.get(name)
        shown = "" if name in _SECRETS else f", not {value!r}"
        return ValueError(f"storage driver 's3': {name} {requirement}{shown}")

    def string(self, name: str, default: str = "") -> str:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(name, "must be a string")
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip() in _TRUE:
            return True
        if isinstance(value, str) and value.strip() in _FALSE:
            return False
        raise self.fail(name, "must be a boolean (true or false)")

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.raw.get(name)
        if value is None:
            number = default
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            number = int(value)  # environment overrides arrive as strings
        else:
            raise self.fail(name, "must be an integer")
        if number < minimum or (maximum is not None and number > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
            raise self.fail(name, f"must be {bounds}")
        return number


def _known_regions() -> frozenset[str]:
    import botocore.session  # only when a region must be checked

    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("s3", partition_name=partition))
    return frozenset(regions)


def parse_parameters(raw: Mapping[str, Any]) -> S3Parameters:
    """The validated parameters; ValueError naming the first bad or unknown one."""
    for key in raw:
        if key not in PARAMETERS:
            known = ", ".join(sorted(PARAMETERS))
            raise ValueError(
                f"unknown parameter {key!r} for storage driver 's3' (allowed: {known})"
            )
    read = _Reader(raw)
    bucket = read.string("bucket")
    if not bucket.strip() or "/" in bucket:
        raise read.fail("bucket", "must name a bucket")

    endpoint = read.string("regionendpoint").strip()
    region = read.string("region").strip()
    if endpoint:
        if "://" in endpoint and not _URL_RE.fullmatch(endpoint):
            raise read.fail("regionendpoint", "must be a URL such as https://s3.example.com")
        region = region or "us-east-1"  # any region signs for a custom endpoint
    elif not region:
        raise read.fail("region", "is required when regionendpoint is not set")
    elif region not in _known_regions():
        raise read.fail("region", "must be an AWS region (or set regionendpoint)")

    accesskey, secretkey = read.string("accesskey"), read.string("secretkey")
    sessiontoken = read.string("sessiontoken")
    if bool(accesskey) != bool(secretkey):
        missing = "secretkey" if accesskey else "accesskey"
        raise ValueError(
            f"storage driver 's3': {missing} is required with "
            f"{'accesskey' if accesskey else 'secretkey'} (or leave both empty)"
        )
    if sessiontoken and not accesskey:
        raise read.fail("sessiontoken", "requires accesskey and secretkey")

    v4auth = read.boolean("v4auth", True)
    if not v4auth and (not endpoint or "amazonaws.com" in endpoint):
        raise read.fail("v4auth", "can be false only for S3-compatible stores (regionendpoint)")

    encrypt = read.boolean("encrypt", False)
    keyid = read.string("keyid")
    if keyid and not encrypt:
        raise read.fail("keyid", "requires encrypt: true")

    storageclass = read.string("storageclass", "STANDARD").upper()
    if storageclass not in STORAGE_CLASSES:
        raise read.fail("storageclass", f"must be one of {', '.join(STORAGE_CLASSES)}")

    objectacl: str | None = None
    if raw.get("objectacl") is not None:
        objectacl = read.string("objectacl")
        if objectacl not in OBJECT_ACLS:
            raise read.fail("objectacl", f"must be one of {', '.join(OBJECT_ACLS)}")

    loglevel = raw.get("loglevel")
    if loglevel is None or loglevel is False:
        level = "off"
    elif isinstance(loglevel, str) and loglevel.lower() in LOG_LEVELS:
        level = loglevel.lower()
    else:
        raise read.fail("loglevel", f"must be one of {', '.join(LOG_LEVELS)}")

    redirect = read.string("redirectendpoint").strip()
    if redirect and not _URL_RE.fullmatch(redirect):
        raise read.fail("redirectendpoint", "must be a URL such as https://s3.example.com")

    return S3Parameters(
        bucket=bucket,
        region=region,
        regionendpoint=endpoint,
        accesskey=accesskey,
        secretkey=secretkey,
        sessiontoken=sessiontoken,
        forcepathstyle=read.boolean("forcepathstyle", False),
        encrypt=encrypt,
        keyid=keyid,
        secure=read.boolean("secure", True),
        skipverify=read.boolean("skipverify", False),
        v4auth=v4auth,
        chunksize=read.integer("chunksize", 10 * MiB, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
        multipartcopychunksize=read.integer(
            "multipartcopychunksize", 32 * MiB, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE
        ),
        multipartcopymaxconcurrency=read.integer("multipartcopymaxconcurrency", 100, 1),
        multipartcopythresholdsize=read.integer(
            "multipartcopythresholdsize", 32 * MiB, 0, MAX_CHUNK_SIZE
        ),
        rootdirectory=read.string("rootdirectory"),
        storageclass=storageclass,
        useragent=read.string("useragent"),
        objectacl=objectacl,
        loglevel=level,
        usedualstack=read.boolean("usedualstack", False),
        accelerate=read.boolean("accelerate", False),
        usefipsendpoint=read.boolean("usefipsendpoint", False),
        redirectendpoint=redirect,
        conditionalwrites=read.boolean("conditionalwrites", True),
    )
