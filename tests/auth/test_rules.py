"""Access rules: globs, users, anonymous callers, the catalog, and their config errors."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.auth import Access
from wharf.auth.rules import AccessRules, glob_pattern

RULES: list[dict[str, Any]] = [
    {"repository": "**", "pull": ["*"]},
    {"repository": "team/*", "push": ["alice", "bob"], "delete": ["alice"]},
    {"repository": "public/**", "anonymous": ["pull"]},
    {"repository": "alice/?", "pull": ["alice"], "push": ["alice"], "delete": ["alice"]},
    {"catalog": ["admin"]},
]


@pytest.fixture
def rules() -> AccessRules:
    return AccessRules.from_config("access", RULES)


def repo(name: str, action: str) -> Access:
    return Access("repository", name, action)


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("team/*", ["team/a", "team/a-b.c"], ["team", "team/a/b", "teams/a"]),
        ("team/**", ["team/a", "team/a/b/c"], ["team", "other/team/a"]),
        ("**", ["a", "a/b/c"], []),
        ("a/?", ["a/b"], ["a/bc", "a/"]),
        ("lib.x", ["lib.x"], ["libyx"]),  # a dot is literal
    ],
)
def test_globs(glob: str, matches: list[str], misses: list[str]) -> None:
    pattern = glob_pattern(glob)
    assert all(pattern.fullmatch(name) for name in matches)
    assert not any(pattern.fullmatch(name) for name in misses)


def test_grants_add_up(rules: AccessRules) -> None:
    assert rules.actions("bob", "repository", "team/app") == {"pull", "push"}
    assert rules.actions("alice", "repository", "team/app") == {"pull", "push", "delete"}
    assert rules.actions("carol", "repository", "team/app") == {"pull"}
    assert rules.actions(None, "repository", "team/app") == set()
    assert rules.actions(None, "repository", "public/a/b") == {"pull"}


def test_grant_is_the_intersection(rules: AccessRules) -> None:
    wanted = [repo("team/app", "pull"), repo("team/app", "push"), repo("other", "push")]
    assert rules.grant("bob", wanted) == {repo("team/app", "pull"), repo("team/app", "push")}
    assert rules.grant("carol", wanted) == {repo("team/app", "pull")}
    assert rules.grant(None, wanted) == set()


def test_star_needs_every_action(rules: AccessRules) -> None:
    assert rules.allows("alice", repo("alice/x", "*"))
    assert not rules.allows("bob", repo("team/app", "*"))


def test_catalog(rules: AccessRules) -> None:
    catalog = Access("registry", "catalog", "*")
    assert rules.allows("admin", catalog)
    assert not rules.allows("alice", catalog)
    assert not rules.allows(None, catalog)
    public = AccessRules.from_config("access", [{"catalog": [], "anonymous": True}])
    assert public.allows(None, catalog)


def test_unknown_resource_types_are_never_granted(rules: AccessRules) -> None:
    assert not rules.allows("alice", Access("registry", "other", "*"))
    assert not rules.allows("alice", Access("plugin", "team/app", "pull"))


def test_no_rules_grant_nothing() -> None:
    assert AccessRules.from_config("access", None).grant("alice", [repo("a", "pull")]) == set()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"repository": "a"}, "expected a list of rules"),
        ([{"pull": ["a"]}], r"access\[0\].repository: required"),
        ([{"repository": "UPPER"}], "invalid repository pattern"),
        ([{"repository": "a", "pul": ["a"]}], r"access\[0\]: unknown option pul"),
        ([{"repository": "a", "anonymous": ["push", "own"]}], "unknown action own"),
        ([{"repository": "a", "pull": "alice"}], None),  # a single user is a list of one
        ([{"repository": "a", "pull": [1]}], "expected a list of strings"),
        (["team/*"], "expected a mapping"),
    ],
)
def test_config_errors(raw: Any, message: str | None) -> None:
    if message is None:
        assert AccessRules.from_config("access", raw).allows("alice", repo("a", "pull"))
        return
    with pytest.raises(ValueError, match=message):
        AccessRules.from_config("access", raw)
