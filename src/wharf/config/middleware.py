"""``middleware``: Distribution's three lists of middleware, of which wharf runs the storage
kind::

    middleware:
      storage:
        - name: cloudfront        # cloudfront | redirect | rewrite
          disabled: false         # a disabled entry is skipped
          options: {baseurl: https://d111111abcdef8.cloudfront.net/, ...}

The entries are kept in order, with their options as written: which middleware exist and
what options each takes is the storage layer's to say (``wharf.storage.driver.middleware``,
checked with the driver's parameters before any worker starts). ``registry`` and
``repository`` middleware are Go code built into Distribution: an entry that is not disabled
is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wharf.config.operations import SectionReader, elements

__all__ = ["MiddlewareConfig", "parse_middleware"]


@dataclass(frozen=True, slots=True)
class MiddlewareConfig:
    """One enabled ``middleware.storage`` entry."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    #: Where it was configured, for errors: ``middleware.storage.<index>``.
    key: str = ""


def parse_middleware(top: SectionReader) -> tuple[MiddlewareConfig, ...]:
    """The enabled storage middleware, in order; ConfigError for a registry or repository
    middleware that is not disabled."""
    section = top.section("middleware")
    for kind in ("registry", "repository"):
        for item in elements(section, kind):
            name = item.string("name", "")
            disabled = item.boolean("disabled", False)
            item.get("options")  # whatever the middleware would take
            item.finish()
            if not disabled:
                raise item.error(
                    "name",
                    f"not supported by wharf: {kind} middleware {name!r} would be Go code "
                    "built into Distribution; wharf has none",
                )
    storage: list[MiddlewareConfig] = []
    for index, item in enumerate(elements(section, "storage")):
        name = item.string("name", "").strip()
        disabled = item.boolean("disabled", False)
        options = item.mapping("options")
        item.finish()
        if disabled:
            continue
        if not name:
            raise item.error("name", "required: the storage middleware to apply")
        storage.append(MiddlewareConfig(name, options, section.key(f"storage.{index}")))
    section.finish()
    return tuple(storage)
