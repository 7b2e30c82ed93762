"""Distribution's storage middleware: drivers wrapping the configured driver to change where
blob GETs are redirected (``middleware.storage`` in the configuration).

- ``cloudfront``: CloudFront signed URLs for the S3 driver's objects (``cloudfront``);
- ``redirect``: a fixed base URL joined with the storage path (``redirect``);
- ``rewrite``: the scheme, host or path prefix of the driver's own URL changed (``rewrite``).

They apply in the order configured, each wrapping the one before, and the result is wrapped
in ``CheckedDriver`` as any driver is. :func:`check_middleware` parses every entry's options
as :func:`apply_middleware` would (the private key file read, nothing else touched), for
``validate_storage`` in the parent process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wharf.config.middleware import MiddlewareConfig
from wharf.storage.driver.base import StorageDriver
from wharf.storage.driver.middleware.base import BucketKeyer, Middleware, bucket_key
from wharf.storage.driver.middleware.cloudfront import CloudFrontMiddleware, parse_cloudfront
from wharf.storage.driver.middleware.options import Options
from wharf.storage.driver.middleware.redirect import RedirectMiddleware, parse_redirect
from wharf.storage.driver.middleware.rewrite import RewriteMiddleware, parse_rewrite

__all__ = [
    "MIDDLEWARE",
    "BucketKeyer",
    "CloudFrontMiddleware",
    "Middleware",
    "RedirectMiddleware",
    "RewriteMiddleware",
    "apply_middleware",
    "bucket_key",
    "check_middleware",
]

#: name -> (its options' parse, its constructor from the driver below and the options).
MIDDLEWARE: dict[
    str,
    tuple[
        Callable[[Options], object],
        Callable[[StorageDriver, Mapping[str, Any], str], StorageDriver],
    ],
] = {
    "cloudfront": (parse_cloudfront, CloudFrontMiddleware.from_options),
    "redirect": (parse_redirect, RedirectMiddleware.from_options),
    "rewrite": (parse_rewrite, RewriteMiddleware.from_options),
}
#: Middleware that need the driver below to name its objects' keys (``BucketKeyer``).
_BUCKET_ONLY = {"cloudfront": ("s3",)}


def _entry(
    item: MiddlewareConfig,
) -> tuple[
    Callable[[Options], object], Callable[[StorageDriver, Mapping[str, Any], str], StorageDriver]
]:
    found = MIDDLEWARE.get(item.name)
    if found is None:
        known = ", ".join(sorted(MIDDLEWARE))
        where = item.key or "middleware.storage"
        raise ValueError(f"{where}.name: unknown storage middleware {item.name!r} (known: {known})")
    return found


def check_middleware(driver: str, middleware: Sequence[MiddlewareConfig]) -> None:
    """One-line ValueError for the first entry :func:`apply_middleware` would refuse on the
    storage driver ``driver``."""
    for item in middleware:
        parse, _ = _entry(item)
        drivers = _BUCKET_ONLY.get(item.name)
        if drivers is not None and driver not in drivers:
            raise ValueError(
                f"{item.key or 'middleware.storage'}.name: storage middleware {item.name!r} "
                f"works on the {' or '.join(drivers)} storage driver only, not {driver!r}"
            )
        parse(Options(item.name, item.key, item.options))


def apply_middleware(
    driver: StorageDriver, middleware: Sequence[MiddlewareConfig]
) -> StorageDriver:
    """``driver`` wrapped in each configured middleware, in order."""
    for item in middleware:
        _, build = _entry(item)
        drivers = _BUCKET_ONLY.get(item.name)
        if drivers is not None and driver.name not in drivers:
            raise ValueError(
                f"storage middleware {item.name!r} works on the {' or '.join(drivers)} storage "
                f"driver only, not {driver.name!r}"
            )
        driver = build(driver, item.options, item.key)
    return driver
