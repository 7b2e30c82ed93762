"""Build the access controller the configuration's ``auth`` section asks for."""

from __future__ import annotations

from typing import Any

from wharf.auth.base import AccessController

__all__ = ["create_access_controller"]


def create_access_controller(auth: dict[str, Any] | None) -> AccessController | None:
    """None when no ``auth`` section is configured: every request is allowed."""
    if not auth:
        return None
    raise ValueError(f"unsupported auth backend: {', '.join(sorted(auth))}")
