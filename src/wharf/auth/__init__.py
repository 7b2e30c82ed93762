"""Access control: who may pull, push and delete what."""

from wharf.auth.base import Access, AccessController, Identity

__all__ = ["Access", "AccessController", "Identity"]
