"""The registry's error tree: one class per OCI error code.

    RegistryError                  (base; never raised itself)
     ├── BlobUnknown               BLOB_UNKNOWN           404
     ├── BlobUploadInvalid         BLOB_UPLOAD_INVALID    400 (416 for a range out of order)
     ├── BlobUploadUnknown         BLOB_UPLOAD_UNKNOWN    404
     ├── DigestInvalid             DIGEST_INVALID         400
     ├── ManifestBlobUnknown       MANIFEST_BLOB_UNKNOWN  400
     ├── ManifestInvalid           MANIFEST_INVALID       400
     ├── ManifestUnknown           MANIFEST_UNKNOWN       404
     ├── NameInvalid               NAME_INVALID           400
     ├── NameUnknown               NAME_UNKNOWN           404
     ├── SizeInvalid               SIZE_INVALID           400 (413 for a body over its limit)
     ├── TagInvalid                TAG_INVALID            400
     ├── PaginationNumberInvalid   PAGINATION_NUMBER_INVALID 400
     ├── RangeInvalid              RANGE_INVALID          416
     ├── Unauthorized              UNAUTHORIZED           401
     ├── Denied                    DENIED                 403
     ├── Unsupported               UNSUPPORTED            405
     ├── TooManyRequests           TOOMANYREQUESTS        429
     ├── Unavailable               UNAVAILABLE            503
     └── Unknown                   UNKNOWN                500

Services raise these; the HTTP layer renders every one of them with a single handler as
``{"errors": [{"code", "message", "detail"}]}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "Denied",
    "DigestInvalid",
    "ManifestBlobUnknown",
    "ManifestInvalid",
    "ManifestUnknown",
    "NameInvalid",
    "NameUnknown",
    "PaginationNumberInvalid",
    "RangeInvalid",
    "RegistryError",
    "SizeInvalid",
    "TagInvalid",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Unknown",
    "Unsupported",
]


class RegistryError(Exception):
    """An error with an OCI error code, an HTTP status, a message and an optional detail."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500
    message: ClassVar[str] = "unknown error"

    def __init__(
        self,
        detail: Any = None,
        *,
        message: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail
        self.text = message or self.message
        self.http_status = status or self.status
        self.headers = headers or {}
        super().__init__(f"{self.code}: {self.text}" + (f" ({detail})" if detail else ""))

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.text}
        if self.detail is not None:
            entry["detail"] = self.detail
        return entry


class BlobUnknown(RegistryError):
    code, status, message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, status, message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, message = "DIGEST_INVALID", 400, "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code, status, message = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a blob unknown to registry",
    )


class ManifestInvalid(RegistryError):
    code, status, message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(RegistryError):
    code, status, message = "MANIFEST_UNKNOWN", 404, "manifest unknown"


class NameInvalid(RegistryError):
    code, status, message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, message = "SIZE_INVALID", 400, "provided length did not match content length"


class TagInvalid(RegistryError):
    code, status, message = "TAG_INVALID", 400, "manifest tag did not match URI"


class PaginationNumberInvalid(RegistryError):
    code, status, message = "PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"


class RangeInvalid(RegistryError):
    code, status, message = "RANGE_INVALID", 416, "invalid content range"


class Unauthorized(RegistryError):
    code, status, message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, message = "UNSUPPORTED", 405, "the operation is unsupported"


class TooManyRequests(RegistryError):
    code, status, message = "TOOMANYREQUESTS", 429, "too many requests"


class Unavailable(RegistryError):
    code, status, message = "UNAVAILABLE", 503, "service unavailable"


class Unknown(RegistryError):
    code, status, message = "UNKNOWN", 500, "unknown error"
