"""Access rules: who may pull, push and delete which repositories.

Configured as a list; each rule names repositories with a glob and, per action, the users
it lets in (``"*"`` is every user of the password file), or lets anonymous callers in::

    access:
      - repository: "public/**"
        anonymous: [pull]          # no credentials needed
        pull: ["*"]
      - repository: "team/*"
        pull: [alice, bob]
        push: [alice]
        delete: [alice]
      - catalog: [alice]           # registry:catalog:* (the repository list)

Rules only grant, and grants add up: a caller may do what any matching rule allows, so
the order of the rules does not matter. In a glob ``*`` and ``?`` stay within one path
component and ``**`` crosses them (``team/**`` matches ``team/a`` and ``team/a/b``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wharf.auth.base import Access
from wharf.auth.options import Options
from wharf.config.load import ConfigError

__all__ = ["ACTIONS", "AccessRules", "Rule", "glob_pattern"]

ACTIONS = ("pull", "push", "delete")
#: A user entry meaning every user of the password file.
ANY_USER = "*"
_GLOB_CHARS = re.compile(r"[a-z0-9._/*?-]+")


def glob_pattern(glob: str) -> re.Pattern[str]:
    """The regular expression of a repository glob."""
    if not _GLOB_CHARS.fullmatch(glob):
        raise ValueError(f"invalid repository pattern {glob!r}")
    parts: list[str] = []
    index = 0
    while index < len(glob):
        if glob.startswith("**", index):
            parts.append(".*")
            index += 2
        elif glob[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif glob[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(glob[index]))
            index += 1
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: re.Pattern[str] | None  # None: the catalog
    users: Mapping[str, frozenset[str]]  # action -> users
    anonymous: frozenset[str]  # actions open to callers without credentials

    def actions(self, user: str | None) -> set[str]:
        allowed = set(self.anonymous)
        if user is not None:
            for action, users in self.users.items():
                if user in users or ANY_USER in users:
                    allowed.add(action)
        return allowed


class AccessRules:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_config(cls, path: str, raw: object) -> AccessRules:
        if raw is None:
            return cls(())
        if not isinstance(raw, list):
            raise ConfigError(f"{path}: expected a list of rules, got {type(raw).__name__}")
        return cls(_rule(Options(f"{path}[{index}]", item)) for index, item in enumerate(raw))

    def actions(self, user: str | None, kind: str, name: str) -> set[str]:
        """The actions ``user`` (None: anonymous) may take on a resource."""
        allowed: set[str] = set()
        for rule in self.rules:
            if kind == "registry" and name == "catalog":
                if rule.pattern is None:
                    allowed |= rule.actions(user)
            elif kind == "repository" and rule.pattern and rule.pattern.fullmatch(name):
                allowed |= rule.actions(user)
        return allowed

    def allows(self, user: str | None, access: Access) -> bool:
        allowed = self.actions(user, access.type, access.name)
        if access.action == "*":
            # A wildcard request is everything the resource has: all three, or the catalog.
            return bool(allowed) and (access.type == "registry" or set(ACTIONS) <= allowed)
        return access.action in allowed

    def grant(self, user: str | None, requested: Iterable[Access]) -> frozenset[Access]:
        """The part of ``requested`` that ``user`` may have."""
        return frozenset(access for access in requested if self.allows(user, access))


def _rule(options: Options) -> Rule:
    if options.has("catalog"):
        readers = frozenset(options.strings("catalog"))
        public = options.boolean("anonymous", False)
        options.finish()
        return Rule(None, {"*": readers}, frozenset({"*"}) if public else frozenset())
    glob = options.string("repository")
    try:
        pattern = glob_pattern(glob)
    except ValueError as exc:
        raise options.error("repository", str(exc)) from None
    users = {action: frozenset(options.strings(action)) for action in ACTIONS}
    anonymous = frozenset(options.strings("anonymous"))
    unknown = anonymous - set(ACTIONS)
    if unknown:
        raise options.error("anonymous", f"unknown action {', '.join(sorted(unknown))}")
    options.finish()
    return Rule(pattern, users, anonymous)
