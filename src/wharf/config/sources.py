"""The configuration tree from its two sources: the YAML file and the ``REGISTRY_*``
environment variables, applied over it in lexical order of their names, each value parsed as
YAML. Keys are set where they are addressed, case-insensitively; what they mean is checked
later, when the tree is converted (``wharf.config.load``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "CONFIG_PATH_ENV",
    "LENIENT_HINT",
    "STORAGE_OPTIONS",
    "ConfigError",
    "Context",
    "apply_environment",
    "read_file",
]

CONFIG_PATH_ENV = "REGISTRY_CONFIGURATION_PATH"

_ENV_PREFIX = "REGISTRY_"
#: The keys of ``storage`` that are options rather than drivers.
STORAGE_OPTIONS = ("delete", "maintenance", "redirect", "cache", "tag", "gc")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line and names the key."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


#: What an error about a key that ``--lenient`` would ignore says, so that migrations know how.
LENIENT_HINT = "(--lenient makes it a warning)"


@dataclass
class Context:
    """What loading met on the way: warnings, and which variable set which key.

    ``lenient`` decides what an unknown key is: an error (the default), or a warning and the
    key ignored, for configurations being migrated from Distribution.
    """

    lenient: bool = False
    warnings: list[str] = field(default_factory=list)
    #: dotted keys ignored under ``lenient``, left out when the configuration is shown.
    ignored: list[str] = field(default_factory=list)
    #: dotted key -> the environment variable that set it (for messages).
    origins: dict[str, str] = field(default_factory=dict)
    #: dotted key -> the variable's text, so string settings keep "0.10" or "0123" verbatim.
    env_text: dict[str, str] = field(default_factory=dict)

    def origin(self, key: str) -> str | None:
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            found = self.origins.get(".".join(parts[:end]))
            if found is not None:
                return found
        return None

    def describe(self, key: str) -> str:
        origin = self.origin(key)
        return f"{key} (from {origin})" if origin else key

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.describe(key)}: {message}")

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.describe(key)}: {message}")

    def unknown(self, key: str, message: str = "unknown key") -> None:
        """A key wharf has no use for: an error, or under ``lenient`` a warning."""
        if not self.lenient:
            raise self.error(key, f"{message} {LENIENT_HINT}")
        self.ignored.append(key)
        self.warn(key, f"{message}, ignored")


def read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read configuration {path}: not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"invalid YAML in {path}{where}: {problem}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the configuration must be a YAML mapping")
    for name in ("storage", "auth"):
        if name in document:
            document[name] = _one_key_form(document[name])
    return document


def _one_key_form(value: Any) -> Any:
    # Distribution accepts `storage: inmemory` and `auth: silly` for a type without parameters.
    return {value: {}} if isinstance(value, str) else value


def _parse_env_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        # Go fails here; a secret such as "@abc" or "`x" is more useful kept as text.
        return text


def apply_environment(tree: dict[str, Any], environ: Mapping[str, str], ctx: Context) -> None:
    for name in sorted(environ):
        if not name.startswith(_ENV_PREFIX) or name == CONFIG_PATH_ENV:
            continue
        parts = name[len(_ENV_PREFIX) :].split("_")
        if not all(parts):
            ctx.warnings.append(f"{name}: not a configuration key, ignored")
            continue
        if parts == ["VERSION"]:
            ctx.warnings.append(f"{name}: the version cannot be overridden, ignored")
            continue
        text = environ[name]
        value = _parse_env_value(text)
        if parts == ["STORAGE"] and isinstance(value, str):
            tree["storage"] = _select_driver(tree.get("storage"), value)
            ctx.origins["storage"] = name
            continue
        if len(parts) == 1 and parts[0] == "AUTH":
            value = _one_key_form(value)
        key = _set_path(tree, parts, value)
        if key is None:
            ctx.warnings.append(f"{name}: does not address a configuration key, ignored")
            continue
        ctx.origins[key] = name
        ctx.env_text[key] = text


def _select_driver(storage: Any, driver: str) -> dict[str, Any]:
    old = storage if isinstance(storage, dict) else {}
    selected = {key: value for key, value in old.items() if key in STORAGE_OPTIONS}
    params = old.get(driver)
    selected[driver] = params if isinstance(params, dict) else {}
    return selected


def _set_path(tree: dict[str, Any], parts: list[str], value: Any) -> str | None:
    """Set ``value`` at the case-insensitive key path; returns the dotted key or None."""
    node: dict[str, Any] | list[Any] = tree
    keys: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        child: Any
        if isinstance(node, list):
            # Lists are addressed by index, and index == len appends (as Distribution does).
            if not part.isdigit() or int(part) > len(node):
                return None
            slot = int(part)
            if slot == len(node):
                node.append(None)
            keys.append(part)
            if last:
                node[slot] = value
                break
            child = node[slot]
            if not isinstance(child, dict | list):
                child = node[slot] = _container_for(parts[index + 1])
        else:
            name = next((k for k in node if isinstance(k, str) and k.upper() == part), part.lower())
            keys.append(name)
            if last:
                node[name] = value
                break
            child = node.get(name)
            if not isinstance(child, dict | list):
                child = node[name] = _container_for(parts[index + 1])
        node = child
    return ".".join(keys)


def _container_for(part: str) -> dict[str, Any] | list[Any]:
    # Without Go's struct types, a numeric next part is the only hint that a list is meant
    # (REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME).
    return [] if part.isdigit() else {}
