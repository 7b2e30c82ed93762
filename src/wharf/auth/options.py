"""Reading the raw ``auth`` section: typed getters whose errors are one line naming the key.

The configuration loader keeps ``auth`` raw (``Config.extra["auth"]``); each backend reads
its options through :class:`Options`, which refuses unknown keys, so that a misspelt option
(``rootcertbundel``) stops the start instead of silently weakening access control.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from wharf.config.load import ConfigError, parse_duration

__all__ = ["Options"]


class Options:
    """The options of one section, such as ``auth.token``."""

    def __init__(self, path: str, raw: object) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: expected a mapping of options, got {_show(raw)}")
        self.path = path
        self._raw: dict[str, Any] = {str(key).lower(): value for key, value in raw.items()}
        self._read: set[str] = set()

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}.{key}: {message}")

    def has(self, key: str) -> bool:
        return self._raw.get(key) is not None

    def get(self, key: str) -> Any:
        self._read.add(key)
        return self._raw.get(key)

    def string(self, key: str, default: str | None = None) -> str:
        """A non-empty string; ``default`` None makes the option required."""
        value = self.get(key)
        if value is None or value == "":
            if default is None:
                raise self.error(key, "required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(key, f"expected a string, got {_show(value)}")
        return str(value)

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of strings; a single string counts as a list of one."""
        value = self.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(key, f"expected a list of strings, got {_show(value)}")
        return tuple(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_show(value)}")
        return value

    def duration(self, key: str, default: timedelta) -> timedelta:
        """A positive Go-style duration (``5m``, ``1h30m``) or a number of seconds."""
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            raise self.error(key, f"expected a duration such as 5m, got {_show(value)}")
        if isinstance(value, int | float):
            result = timedelta(seconds=value)
        elif isinstance(value, str):
            try:
                result = parse_duration(value.strip())
            except ValueError as exc:
                raise self.error(key, str(exc)) from None
        else:
            raise self.error(key, f"expected a duration such as 5m, got {_show(value)}")
        if result <= timedelta(0):
            raise self.error(key, "must be positive")
        return result

    def file(self, key: str, *, required: bool = True) -> str:
        """The path of a readable regular file."""
        path = self.string(key, None if required else "")
        if path and not os.path.isfile(path):
            raise self.error(key, f"no such file: {path}")
        return path

    def section(self, key: str) -> Options:
        return Options(f"{self.path}.{key}", self.get(key))

    def finish(self) -> None:
        """Refuse the options nobody read."""
        unknown = sorted(set(self._raw) - self._read)
        if unknown:
            raise ConfigError(f"{self.path}: unknown option {', '.join(unknown)}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
