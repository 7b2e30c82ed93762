"""The configuration as ``wharf config check`` shows it: the file with the environment's
overrides applied, without the keys a lenient load ignored, and with every secret masked.

A value is a secret when its key says so (``secret``, ``password``, ``token``, ``apikey``,
``accesskey``, ``accountkey``, ``privatekey``, ...), when it is a header that carries
credentials (``Authorization``, ``Cookie``, an API key), or when it is the password or a
credential-like query parameter of a URL. Paths to key files (``http.tls.key``) are shown:
they are where a secret is, not the secret.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
from typing import Any

import yaml

__all__ = ["MASK", "masked", "render", "without"]

MASK = "***"
_SECRET_KEY = re.compile(
    r"secret|password|passwd|token|apikey|api_key|licensekey|accountkey|accesskey|privatekey"
    r"|private_key|credential|connectionstring",
    re.IGNORECASE,
)
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|key|auth|signature", re.I)
_SECRET_PARAMETER = re.compile(r"token|secret|key|sig|password|passwd|auth|credential", re.I)


def render(tree: dict[str, Any], ignored: list[str], source: str) -> str:
    """The YAML document, under a comment naming where it came from."""
    shown = masked(without(tree, ignored))
    body = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=100) if shown else ""
    return (
        f"# {source}, with the REGISTRY_* environment overrides applied and secrets masked;\n"
        "# keys not shown take their defaults.\n" + body
    )


def without(tree: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """A copy of ``tree`` without the dotted ``keys`` (list items by their index)."""
    result = copy.deepcopy(tree)
    # Deepest and last items first, so that removing one never shifts another's index.
    for key in sorted(keys, key=lambda k: [_sort_part(p) for p in k.split(".")], reverse=True):
        *parents, last = key.split(".")
        node: Any = result
        for part in parents:
            node = _child(node, part)
        if isinstance(node, dict):
            node.pop(last, None)
        elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
            del node[int(last)]
    return result


def _sort_part(part: str) -> tuple[int, int, str]:
    return (1, int(part), "") if part.isdigit() else (0, 0, part)


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def masked(value: Any, path: tuple[str, ...] = ()) -> Any:
    """``value`` with every secret in it replaced by :data:`MASK`."""
    if isinstance(value, dict):
        if path and path[-1].lower() == "headers" and path != ("http", "headers"):
            # Request headers wharf sends (notifications, health checks); http.headers are
            # the registry's own response headers.
            return {name: _header(str(name), item) for name, item in value.items()}
        return {name: masked(item, (*path, str(name))) for name, item in value.items()}
    if isinstance(value, list):
        return [masked(item, path) for item in value]
    if path and _SECRET_KEY.search(path[-1]):
        return _mask(value)
    if isinstance(value, str) and "://" in value:
        return _url(value)
    return value


def _header(name: str, value: Any) -> Any:
    if not _SECRET_HEADER.search(name):
        return value
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return _mask(value)


def _mask(value: Any) -> Any:
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if value is None or value == "" or isinstance(value, bool | dict):
        return value  # nothing is there, or it is a switch, not a secret
    return MASK


def _url(text: str) -> str:
    try:
        parts = urllib.parse.urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    netloc = parts.netloc
    if password:
        netloc = netloc.replace(f":{password}@", f":{MASK}@", 1)
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAMETER.search(name) for name, _ in pairs):
            query = "&".join(
                f"{name}={MASK if _SECRET_PARAMETER.search(name) else item}" for name, item in pairs
            )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
