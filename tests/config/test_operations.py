"""Typed ``http.debug``, ``log.accesslog``, ``notifications``, ``redis`` and ``health``."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from wharf.config.load import ConfigError, load_config, load_config_with_warnings
from wharf.config.operations import (
    DebugConfig,
    EndpointConfig,
    FileCheckConfig,
    HTTPCheckConfig,
    RedisConfig,
    StorageCheckConfig,
    TCPCheckConfig,
)


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\n" + textwrap.dedent(body))
    return str(path)


def test_defaults_have_no_debug_listener_no_redis_no_endpoints() -> None:
    config = load_config(None, {})
    assert config.http.debug is None
    assert config.redis is None
    assert config.notifications.endpoints == ()
    assert config.health.storage_driver == StorageCheckConfig()
    assert config.log.access_log is True


def test_distribution_example_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        log:
          accesslog: {disabled: true}
        http:
          addr: :5000
          debug:
            addr: localhost:5001
            prometheus: {enabled: true, path: /prom}
        notifications:
          events: {includereferences: true}
          endpoints:
            - name: alistener
              disabled: false
              url: https://my.listener.com/event
              headers: {Authorization: [Bearer x]}
              timeout: 500ms
              threshold: 5
              backoff: 2s
              ignoredmediatypes: [application/octet-stream]
              ignore:
                mediatypes: [text/plain]
                actions: [pull]
        redis:
          addr: localhost:6379
          password: asecret
          db: 2
          dialtimeout: 10ms
          readtimeout: 20ms
          writetimeout: 30ms
          pool: {maxidle: 4, maxactive: 8, idletimeout: 60s}
        health:
          storagedriver: {enabled: true, interval: 5s, threshold: 3}
          file:
            - file: /tmp/out-of-rotation
              interval: 1s
          http:
            - uri: http://server.to.check/must/return/200
              headers: {Authorization: [Basic x]}
              statuscode: 204
              timeout: 3s
              interval: 10s
              threshold: 3
          tcp:
            - addr: redis-server.domain.com:6379
              timeout: 3s
              interval: 10s
              threshold: 3
        """,
    )
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    assert config.log.access_log is False
    assert config.http.debug == DebugConfig("localhost:5001", True, "/prom")
    assert config.notifications.include_references is True
    assert config.notifications.endpoints == (
        EndpointConfig(
            name="alistener",
            url="https://my.listener.com/event",
            headers={"Authorization": ("Bearer x",)},
            timeout=timedelta(milliseconds=500),
            threshold=5,
            backoff=timedelta(seconds=2),
            ignored_media_types=("application/octet-stream", "text/plain"),
            ignored_actions=("pull",),
        ),
    )
    assert config.redis == RedisConfig(
        addr="localhost:6379",
        password="asecret",
        db=2,
        dial_timeout=timedelta(milliseconds=10),
        read_timeout=timedelta(milliseconds=20),
        write_timeout=timedelta(milliseconds=30),
        max_idle=4,
        max_active=8,
        idle_timeout=timedelta(seconds=60),
    )
    health = config.health
    assert health.storage_driver == StorageCheckConfig(True, timedelta(seconds=5), 3)
    assert health.files == (FileCheckConfig("/tmp/out-of-rotation", timedelta(seconds=1)),)
    assert health.http == (
        HTTPCheckConfig(
            "http://server.to.check/must/return/200",
            {"Authorization": ("Basic x",)},
            204,
            timedelta(seconds=3),
            timedelta(seconds=10),
            3,
        ),
    )
    assert health.tcp == (
        TCPCheckConfig(
            "redis-server.domain.com:6379", timedelta(seconds=3), timedelta(seconds=10), 3
        ),
    )
    assert config.extra == {}  # only auth is kept raw


def test_distribution_3_redis_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        redis:
          addrs: [redis:6379]
          maxidleconns: 16
          poolsize: 64
          connmaxidletime: 300s
          tls: {enabled: true}
        """,
    )
    redis = load_config(path, {}).redis
    assert redis is not None
    assert (redis.host, redis.port, redis.max_idle, redis.max_active, redis.tls) == (
        "redis",
        6379,
        16,
        64,
        True,
    )


def test_environment_overrides(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "REGISTRY_HTTP_DEBUG_ADDR": ":5001",
            "REGISTRY_REDIS_ADDR": "127.0.0.1:6380",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME": "hook",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL": "http://127.0.0.1:9/hook",
            "REGISTRY_HEALTH_TCP_0_ADDR": "127.0.0.1:1",
        },
    )
    assert config.http.debug == DebugConfig("0.0.0.0:5001")
    assert config.redis is not None
    assert config.redis.port == 6380
    assert config.notifications.endpoints[0].url == "http://127.0.0.1:9/hook"
    assert config.health.tcp[0].addr == "127.0.0.1:1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("http: {debug: {addr: nowhere}}", "http.debug.addr: must be host:port"),
        ("http: {debug: {addr: ':1', prometheus: {path: x}}}", "http.debug.prometheus.path"),
        ("notifications: {endpoints: [{url: 'http://x'}]}", "notifications.endpoints.0.name"),
        ("notifications: {endpoints: [{name: a, url: 'ftp://x'}]}", "endpoints.0.url"),
        ("notifications: {endpoints: {name: a}}", "notifications.endpoints: expected a list"),
        (
            "notifications: {endpoints: [{name: a, url: 'http://x', timeout: 5}]}",
            "notifications.endpoints.0.timeout",
        ),
        (
            "notifications: {endpoints: [{name: a, url: 'http://x', threshold: 0}]}",
            "notifications.endpoints.0.threshold: must be at least 1",
        ),
        (
            "notifications: {endpoints: [{name: a, url: 'http://x', ignore: {actions: [x]}}]}",
            "notifications.endpoints.0.ignore.actions: unknown action 'x'",
        ),
        (
            "notifications: {endpoints: [{name: a, url: 'http://x'}, {name: a, url: 'http://y'}]}",
            "used twice",
        ),
        ("redis: {addr: localhost}", "redis.addr: must be host:port"),
        ("redis: {addrs: ['a:1', 'b:2']}", "redis.addrs: one Redis server only"),
        ("redis: {addr: 'a:1', db: -1}", "redis.db: must be at least 0"),
        ("redis: {addr: 'a:1', tls: {certificate: /c}}", "redis.tls.key"),
        ("storage: {inmemory: {}, cache: {blobdescriptor: redis}}", "needs a redis section"),
        ("health: {tcp: [{addr: nohost}]}", "health.tcp.0.addr: must be host:port"),
        ("health: {http: [{uri: '/relative'}]}", "health.http.0.uri"),
        ("health: {file: [{interval: 1s}]}", "health.file.0.file: a path is required"),
        ("health: {storagedriver: {interval: 0s}}", "health.storagedriver.interval"),
    ],
)
def test_bad_values_stop_at_start(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(write(tmp_path, body + "\n"), {})


def test_unknown_keys_in_the_new_sections_are_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        redis: {addr: 'a:1', sentinel: x}
        health: {tcp: [{addr: 'a:1', colour: red}]}
        """,
    )
    with pytest.raises(ConfigError, match=r"^redis\.sentinel: unknown key \(--lenient"):
        load_config(path, {})
    _, warnings = load_config_with_warnings(path, {}, lenient=True)
    assert sorted(warnings) == [
        "health.tcp.0.colour: unknown key, ignored",
        "redis.sentinel: unknown key, ignored",
    ]
