"""The configuration as ``wharf config check`` prints it: ignored keys left out, secrets masked."""

from __future__ import annotations

import re

import yaml

from wharf.config.show import MASK, masked, render, without

SECRETS = {
    "http": {"secret": "s-http", "headers": {"X-Content-Type-Options": ["nosniff"]}},
    "redis": {"addr": "redis:6379", "password": "s-redis", "username": "registry"},
    "storage": {
        "s3": {
            "bucket": "images",
            "accesskey": "s-access",
            "secretkey": "s-secret",
            "sessiontoken": "s-session",
        }
    },
    "auth": {
        "htpasswd": {"realm": "r", "path": "/etc/wharf/htpasswd"},
        "tokenservice": {"key": "/etc/wharf/token-key.pem"},
    },
    "notifications": {
        "endpoints": [
            {
                "name": "audit",
                "url": "https://hook:s-userinfo@hooks.internal/x?token=s-query&team=infra",
                "headers": {"Authorization": ["Bearer s-bearer"], "X-Team": ["infra"]},
            }
        ]
    },
    "health": {"http": [{"uri": "http://up", "headers": {"X-Api-Key": ["s-apikey"]}}]},
    "reporting": {"bugsnag": {"apikey": "s-bugsnag"}, "newrelic": {"licensekey": "s-newrelic"}},
    "proxy": {"remoteurl": "https://registry-1.docker.io", "username": "u", "password": "s-proxy"},
    "log": {"hooks": [{"options": {"smtp": {"password": "s-smtp"}}}]},
}


def test_every_secret_is_masked_and_nothing_else() -> None:
    shown = masked(SECRETS)
    text = yaml.safe_dump(shown)
    assert re.findall(r"\bs-[a-z]+", text) == []  # every secret here begins "s-"
    assert shown["http"]["secret"] == MASK
    assert shown["http"]["headers"] == {"X-Content-Type-Options": ["nosniff"]}
    assert shown["redis"] == {"addr": "redis:6379", "password": MASK, "username": "registry"}
    assert shown["storage"]["s3"]["bucket"] == "images"
    assert shown["auth"] == SECRETS["auth"]  # paths to secrets are not secrets
    endpoint = shown["notifications"]["endpoints"][0]
    assert endpoint["url"] == f"https://hook:{MASK}@hooks.internal/x?token={MASK}&team=infra"
    assert endpoint["headers"] == {"Authorization": [MASK], "X-Team": ["infra"]}
    assert shown["proxy"]["username"] == "u"


def test_empty_values_and_switches_stay() -> None:
    assert masked({"http": {"secret": ""}, "redis": {"password": None}}) == {
        "http": {"secret": ""},
        "redis": {"password": None},
    }


def test_ignored_keys_are_left_out() -> None:
    tree = {"http": {"addr": ":5000", "foo": 1}, "nonsense": 2, "list": [{"a": 1}, {"b": 2}, 3]}
    assert without(tree, ["http.foo", "nonsense", "list.0", "list.2"]) == {
        "http": {"addr": ":5000"},
        "list": [{"b": 2}],
    }
    assert tree["nonsense"] == 2  # a copy


def test_render_is_yaml_under_a_comment() -> None:
    text = render({"version": "0.1", "http": {"secret": "x"}}, [], "/etc/wharf/config.yml")
    assert text.startswith("# /etc/wharf/config.yml, with the REGISTRY_* environment overrides")
    assert yaml.safe_load(text) == {"version": "0.1", "http": {"secret": MASK}}
