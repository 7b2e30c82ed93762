"""Reading one middleware's ``options`` mapping: typed reads, and a refusal of every key no
read asked for (Distribution ignores them; a misspelt option here would silently change
where clients are sent)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from wharf.config.load import parse_duration

__all__ = ["Options"]


class Options:
    """The options of the middleware ``name`` configured at ``where``
    (``middleware.storage.<index>``); every error is a one-line ValueError naming the key."""

    def __init__(self, name: str, where: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.where = where or "middleware.storage"
        self.options = options
        self._read: set[str] = set()

    def error(self, option: str, message: str) -> ValueError:
        return ValueError(f"{self.where}.options.{option}: {message}")

    def has(self, option: str) -> bool:
        return self.options.get(option) is not None

    def raw(self, option: str) -> Any:
        """The value at ``option`` as written (None when missing)."""
        self._read.add(option)
        return self.options.get(option)

    def string(self, option: str, default: str = "", *, required: str = "") -> str:
        """The string at ``option``; ``required``: why it may not be missing."""
        self._read.add(option)
        value = self.options.get(option)
        if value is None or value == "":
            if required:
                raise self.error(option, f"required: {required}")
            return default
        if not isinstance(value, str):
            raise self.error(option, f"must be a string, not {value!r}"[:200])
        return value

    def duration(self, option: str, default: timedelta) -> timedelta:
        self._read.add(option)
        value = self.options.get(option)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(option, f"expected a duration with a unit like 20m, got {value!r}")
        try:
            result = parse_duration(value.strip())
        except ValueError as exc:
            raise self.error(option, str(exc)) from None
        if result <= timedelta(0):
            raise self.error(option, f"must be positive, got {value!r}")
        return result

    def finish(self, allowed: set[str] | None = None) -> None:
        """ValueError for the first option nothing read (nor named in ``allowed``)."""
        known = self._read | (allowed or set())
        for option in self.options:
            if option not in known:
                names = ", ".join(sorted(known))
                raise self.error(
                    str(option),
                    f"unknown option of storage middleware {self.name!r} (allowed: {names})",
                )
