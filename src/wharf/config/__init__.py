"""Configuration compatible with Distribution's ``config.yml`` (version 0.1)."""

from wharf.config.model import (
    CatalogConfig,
    Config,
    HTTPConfig,
    LogConfig,
    StorageConfig,
    TLSConfig,
    UploadPurgingConfig,
)

__all__ = [
    "CatalogConfig",
    "Config",
    "HTTPConfig",
    "LogConfig",
    "StorageConfig",
    "TLSConfig",
    "UploadPurgingConfig",
]
