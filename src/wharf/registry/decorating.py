"""Decorators of a repository's services that stack: each hands what it does not change to the
service it wraps.

A decorator (the pull-through cache's, the notifications') subclasses the service it wraps so
that it is one to its callers, and overrides what it changes. Everything else must reach the
wrapped service, not the base class: a notifying decorator around a mirror's manifests must
still fetch from the upstream when asked for a manifest it does not override. ``delegating``
makes every public method of the base class that the decorator does not define call the same
method of ``self._inner``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, TypeVar

__all__ = ["delegating"]

_C = TypeVar("_C", bound=type)


def _forward(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


def delegating(cls: _C) -> _C:
    """Make ``cls`` forward the public methods it inherits to ``self._inner``."""
    own = set(vars(cls))
    for base in cls.__mro__[1:]:
        if base is object:
            continue
        for name, member in vars(base).items():
            if name.startswith("_") or name in own or not inspect.isfunction(member):
                continue
            setattr(cls, name, functools.wraps(member)(_forward(name)))
            own.add(name)
    return cls
