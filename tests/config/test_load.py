"""Loading Distribution-style config.yml files and REGISTRY_* overrides."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from wharf.config.load import (
    CONFIG_PATH_ENV,
    DEFAULT_SOURCE,
    ConfigError,
    load_config,
    load_config_with_warnings,
    parse_duration,
)
from wharf.config.model import Config, HTTPConfig, TLSConfig, UploadPurgingConfig


def write(tmp_path: Path, text: str, name: str = "config.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def minimal(tmp_path: Path, extra: str = "") -> str:
    return write(tmp_path, "version: 0.1\n" + textwrap.dedent(extra))


# --- defaults and file selection ---------------------------------------------------------------


def test_no_file_gives_the_model_defaults() -> None:
    config, warnings = load_config_with_warnings(None, {})
    assert config == Config()
    assert config.source == DEFAULT_SOURCE
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters == {"rootdirectory": "./wharf-data"}
    assert config.http.addr == ":5000"
    assert warnings == []


def test_configuration_path_variable_is_used_without_a_path(tmp_path: Path) -> None:
    path = minimal(tmp_path, "http: {addr: ':6000'}\n")
    config = load_config(None, {CONFIG_PATH_ENV: path})
    assert config.http.addr == ":6000"
    assert config.source == path


def test_an_explicit_path_wins_over_the_variable(tmp_path: Path) -> None:
    mine = minimal(tmp_path, "http: {addr: ':6001'}\n")
    other = write(tmp_path, "version: 0.1\nhttp: {addr: ':6002'}\n", "other.yml")
    assert load_config(mine, {CONFIG_PATH_ENV: other}).http.addr == ":6001"


def test_source_is_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    minimal(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert load_config("config.yml", {}).source == str(tmp_path / "config.yml")


def test_an_empty_file_needs_a_version(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="version"):
        load_config(write(tmp_path, ""), {})


def test_load_config_is_the_config_part(tmp_path: Path) -> None:
    path = minimal(tmp_path, "nonsense: 1\n")
    config, warnings = load_config_with_warnings(path, {}, lenient=True)
    assert load_config(path, {}, lenient=True) == config
    assert warnings == ["nonsense: unknown key, ignored"]


# --- complete files ----------------------------------------------------------------------------


def test_distribution_docker_image_config_loads_without_warnings(tmp_path: Path) -> None:
    # The config.yml shipped in Distribution's registry image.
    path = write(
        tmp_path,
        """\
        version: 0.1
        log:
          fields:
            service: registry
        storage:
          cache:
            blobdescriptor: inmemory
          filesystem:
            rootdirectory: /var/lib/registry
        http:
          addr: :5000
          headers:
            X-Content-Type-Options: [nosniff]
        health:
          storagedriver:
            enabled: true
            interval: 10s
            threshold: 3
        """,
    )
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    assert config.log.fields == {"service": "registry"}
    assert config.storage.cache_blobdescriptor == "inmemory"
    assert config.storage.parameters == {"rootdirectory": "/var/lib/registry"}
    assert config.http.headers == {"X-Content-Type-Options": ("nosniff",)}
    assert config.health.storage_driver.threshold == 3
    assert config.extra == {}


def test_full_file(tmp_path: Path) -> None:
    cert, key, ca1, ca2 = (tmp_path / name for name in ("c.pem", "k.pem", "ca1.pem", "ca2.pem"))
    for file in (cert, key, ca1, ca2):
        file.write_text("-----BEGIN-----\n")
    path = write(
        tmp_path,
        f"""\
        version: 0.1
        log:
          level: DEBUG
          formatter: json
          fields: {{service: registry, environment: staging}}
        storage:
          filesystem:
            rootdirectory: /srv/registry
            maxthreads: 100
            directwrites: false
          delete:
            enabled: true
          maintenance:
            readonly:
              enabled: true
            uploadpurging:
              enabled: false
              age: 1h30m
              interval: 10m
              dryrun: true
          redirect:
            disable: true
          cache:
            blobdescriptor: redis
        http:
          addr: 127.0.0.1:5443
          net: tcp
          prefix: /registry/
          host: https://registry.example.com
          secret: asecretforlocaldevelopment
          relativeurls: true
          draintimeout: 60s
          headers:
            X-Content-Type-Options: [nosniff]
            Strict-Transport-Security: max-age=31536000
          tls:
            certificate: {cert}
            key: {key}
            clientcas: [{ca1}, {ca2}]
            minimumtls: tls1.3
          workers: 3
          server: uvicorn
        catalog:
          maxentries: 250
        auth:
          htpasswd:
            realm: basic-realm
            path: /auth/htpasswd
        notifications:
          endpoints:
            - name: alistener
              url: https://my.listener.com/event
              timeout: 500ms
        redis:
          addr: localhost:6379
          db: 0
        middleware:
          registry:
            - name: ARegistryMiddleware
              disabled: true
        reporting:
          bugsnag: {{apikey: ""}}
        validation:
          disabled: true
        compatibility:
          schema1:
            enabled: false
        policy:
          repository:
            classes: []
        """,
    )
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    assert config.version == "0.1"
    assert config.log.level == "debug"
    assert config.log.formatter == "json"
    assert config.log.fields == {"service": "registry", "environment": "staging"}
    storage = config.storage
    assert storage.driver == "filesystem"
    assert storage.parameters == {
        "rootdirectory": "/srv/registry",
        "maxthreads": 100,
        "directwrites": False,
    }
    assert storage.delete_enabled is True
    assert storage.readonly is True
    assert storage.upload_purging == UploadPurgingConfig(
        enabled=False,
        age=timedelta(hours=1, minutes=30),
        interval=timedelta(minutes=10),
        dry_run=True,
    )
    assert storage.redirect_disabled is True
    assert storage.cache_blobdescriptor == "redis"
    http = config.http
    assert (http.addr, http.net, http.prefix) == ("127.0.0.1:5443", "tcp", "/registry/")
    assert http.host == "https://registry.example.com"
    assert http.secret == "asecretforlocaldevelopment"
    assert http.relative_urls is True
    assert http.drain_timeout == timedelta(seconds=60)
    assert http.headers == {
        "X-Content-Type-Options": ("nosniff",),
        "Strict-Transport-Security": ("max-age=31536000",),
    }
    assert http.tls == TLSConfig(
        certificate=str(cert), key=str(key), client_cas=(str(ca1), str(ca2)), minimum_tls="tls1.3"
    )
    assert (http.workers, http.server) == (3, "uvicorn")
    assert config.catalog.max_entries == 250
    assert config.extra == {
        "auth": {"htpasswd": {"realm": "basic-realm", "path": "/auth/htpasswd"}}
    }
    assert config.notifications.endpoints[0].timeout == timedelta(milliseconds=500)


def test_storage_and_auth_may_name_a_type_without_parameters(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path, "storage: inmemory\nauth: silly\n"), {})
    assert config.storage.driver == "inmemory"
    assert config.storage.parameters == {}
    assert config.extra["auth"] == {"silly": {}}


def test_driver_parameters_are_kept_raw(tmp_path: Path) -> None:
    path = minimal(
        tmp_path,
        """\
        storage:
          s3:
            region: us-east-1
            bucket: images
            regionendpoint: http://127.0.0.1:9000
            chunksize: 5242880
            secure: false
            anything: [1, 2]
        """,
    )
    config, warnings = load_config_with_warnings(path, {})
    assert config.storage.driver == "s3"
    assert config.storage.parameters == {
        "region": "us-east-1",
        "bucket": "images",
        "regionendpoint": "http://127.0.0.1:9000",
        "chunksize": 5242880,
        "secure": False,
        "anything": [1, 2],
    }
    assert warnings == []


def test_a_storage_section_without_a_driver_uses_the_default(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path, "storage: {delete: {enabled: true}}\n"), {})
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters == {"rootdirectory": "./wharf-data"}
    assert config.storage.delete_enabled is True


def test_deprecated_loglevel_and_logstash(tmp_path: Path) -> None:
    config, warnings = load_config_with_warnings(
        minimal(tmp_path, "loglevel: warn\nlog: {formatter: logstash}\n"), {}
    )
    assert config.log.level == "warn"
    assert config.log.formatter == "json"
    assert any("log.formatter" in warning for warning in warnings)


def test_layerinfo_is_the_old_name_of_blobdescriptor(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path, "storage: {cache: {layerinfo: inmemory}}\n"), {})
    assert config.storage.cache_blobdescriptor == "inmemory"


def test_ipv6_and_unix_addresses(tmp_path: Path) -> None:
    assert load_config(None, {"REGISTRY_HTTP_ADDR": "[::1]:5000"}).http.bind_host == "::1"
    config = load_config(None, {"REGISTRY_HTTP_NET": "unix", "REGISTRY_HTTP_ADDR": "/run/w.sock"})
    assert (config.http.net, config.http.addr) == ("unix", "/run/w.sock")


# --- environment overrides ---------------------------------------------------------------------


def test_environment_overrides_file_values(tmp_path: Path) -> None:
    path = minimal(
        tmp_path,
        """\
        log: {level: info}
        storage:
          filesystem: {rootdirectory: /from/file}
        http: {addr: ':5000', secret: fromfile}
        """,
    )
    config = load_config(
        path,
        {
            "REGISTRY_HTTP_ADDR": "127.0.0.1:7000",
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/from/env",
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
            "REGISTRY_LOG_LEVEL": "debug",
            "REGISTRY_HTTP_SECRET": "fromenv",
            "REGISTRY_HTTP_WORKERS": "4",
            "UNRELATED": "x",
        },
    )
    assert config.http.addr == "127.0.0.1:7000"
    assert config.storage.parameters == {"rootdirectory": "/from/env"}
    assert config.storage.delete_enabled is True
    assert config.log.level == "debug"
    assert config.http.secret == "fromenv"
    assert config.http.workers == 4


def test_environment_applies_to_the_defaults() -> None:
    config = load_config(
        None,
        {"REGISTRY_HTTP_ADDR": "127.0.0.1:7001", "REGISTRY_STORAGE_DELETE_ENABLED": "yes"},
    )
    assert config.http.addr == "127.0.0.1:7001"
    assert config.storage.driver == "filesystem"
    assert config.storage.parameters == {"rootdirectory": "./wharf-data"}
    assert config.storage.delete_enabled is True


def test_connection_limits_from_the_file_and_the_environment(tmp_path: Path) -> None:
    assert (HTTPConfig().header_timeout, HTTPConfig().idle_timeout) == (
        timedelta(seconds=20),
        timedelta(seconds=75),
    )
    assert HTTPConfig().max_connections == 0  # derived from the open-files limit
    path = minimal(tmp_path, "http: {headertimeout: 5s, idletimeout: 2m, maxconnections: 900}\n")
    http = load_config(path, {}).http
    assert (http.header_timeout, http.idle_timeout) == (timedelta(seconds=5), timedelta(minutes=2))
    assert http.max_connections == 900
    environ = {
        "REGISTRY_HTTP_HEADERTIMEOUT": "500ms",
        "REGISTRY_HTTP_IDLETIMEOUT": "10s",
        "REGISTRY_HTTP_MAXCONNECTIONS": "64",
    }
    http = load_config(path, environ).http
    assert http.header_timeout == timedelta(milliseconds=500)
    assert (http.idle_timeout, http.max_connections) == (timedelta(seconds=10), 64)


def test_string_settings_keep_the_variable_text() -> None:
    # YAML would read these as 123 and 1.1; a secret or a path must stay as written.
    config = load_config(
        None,
        {"REGISTRY_HTTP_SECRET": "0123", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "1.10"},
    )
    assert config.http.secret == "0123"
    assert config.storage.parameters["rootdirectory"] == "1.10"


def test_nested_overrides(tmp_path: Path) -> None:
    path = minimal(
        tmp_path,
        """\
        storage:
          filesystem: {rootdirectory: /data}
          maintenance:
            uploadpurging: {enabled: true, age: 168h}
        """,
    )
    config = load_config(
        path,
        {
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
            "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN": "true",
            "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED": "true",
            "REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH": "/prom",
            "REGISTRY_HTTP_DEBUG_ADDR": "127.0.0.1:5001",
            "REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS": "[DENY]",
            "REGISTRY_AUTH_HTPASSWD_REALM": "basic",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME": "first",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL": "http://listener",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME": "second",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS_1_URL": "http://second",
            "REGISTRY_REDIS_ADDR": "localhost:6379",
        },
    )
    assert config.storage.upload_purging.age == timedelta(hours=2)
    assert config.storage.upload_purging.dry_run is True
    assert config.storage.upload_purging.enabled is True
    assert config.storage.readonly is True
    assert config.http.headers == {"x-frame-options": ("DENY",)}
    assert config.http.debug is not None
    assert config.http.debug.prometheus_path == "/prom"
    assert config.extra["auth"] == {"htpasswd": {"realm": "basic"}}
    endpoints = config.notifications.endpoints
    assert [(e.name, e.url) for e in endpoints] == [
        ("first", "http://listener"),
        ("second", "http://second"),
    ]
    assert config.redis is not None
    assert config.redis.addr == "localhost:6379"


def test_variables_match_file_keys_whatever_their_case(tmp_path: Path) -> None:
    path = minimal(tmp_path, "log: {fields: {Service: registry}}\n")
    config = load_config(path, {"REGISTRY_LOG_FIELDS_SERVICE": "wharf"})
    assert config.log.fields == {"Service": "wharf"}


def test_registry_storage_selects_the_driver_and_keeps_the_options(tmp_path: Path) -> None:
    path = minimal(
        tmp_path,
        """\
        storage:
          filesystem: {rootdirectory: /data}
          delete: {enabled: true}
          redirect: {disable: true}
        """,
    )
    config = load_config(path, {"REGISTRY_STORAGE": "inmemory"})
    assert config.storage.driver == "inmemory"
    assert config.storage.parameters == {}
    assert config.storage.delete_enabled is True
    assert config.storage.redirect_disabled is True


def test_registry_storage_naming_the_same_driver_keeps_its_parameters(tmp_path: Path) -> None:
    path = minimal(tmp_path, "storage: {filesystem: {rootdirectory: /data}}\n")
    config = load_config(path, {"REGISTRY_STORAGE": "filesystem"})
    assert config.storage.parameters == {"rootdirectory": "/data"}


def test_registry_storage_is_applied_before_its_parameters(tmp_path: Path) -> None:
    # Lexical order, as in Distribution: REGISTRY_STORAGE < REGISTRY_STORAGE_S3_BUCKET.
    path = minimal(tmp_path, "storage: {filesystem: {rootdirectory: /data}}\n")
    config = load_config(
        path,
        {"REGISTRY_STORAGE_S3_BUCKET": "images", "REGISTRY_STORAGE": "s3"},
    )
    assert config.storage.driver == "s3"
    assert config.storage.parameters == {"bucket": "images"}


def test_registry_storage_as_a_mapping_replaces_the_section(tmp_path: Path) -> None:
    path = minimal(tmp_path, "storage: {filesystem: {}, delete: {enabled: true}}\n")
    config = load_config(path, {"REGISTRY_STORAGE": "{inmemory: {}}"})
    assert config.storage.driver == "inmemory"
    assert config.storage.delete_enabled is False


def test_the_configuration_path_variable_is_not_a_key(tmp_path: Path) -> None:
    path = minimal(tmp_path)
    _, warnings = load_config_with_warnings(None, {CONFIG_PATH_ENV: path})
    assert warnings == []


def test_the_version_cannot_be_overridden(tmp_path: Path) -> None:
    config, warnings = load_config_with_warnings(minimal(tmp_path), {"REGISTRY_VERSION": "0.2"})
    assert config.version == "0.1"
    assert warnings == ["REGISTRY_VERSION: the version cannot be overridden, ignored"]


# --- errors ------------------------------------------------------------------------------------

FILE_ERRORS = [
    ("version: 0.2\n", "version"),
    ("log: {level: verbose}\n", "log.level"),
    ("log: {formatter: xml}\n", "log.formatter"),
    ("log: {fields: [a]}\n", "log.fields"),
    ("log: [level]\n", "log"),
    ("storage: {filesystem: {}, inmemory: {}}\n", "storage"),
    ("storage: {filesystem: /data}\n", "storage.filesystem"),
    ("storage: {delete: {enabled: 'yes please'}}\n", "storage.delete.enabled"),
    ("storage: {maintenance: {readonly: {enabled: 1}}}\n", "storage.maintenance.readonly.enabled"),
    (
        "storage: {maintenance: {uploadpurging: {age: 7 days}}}\n",
        "storage.maintenance.uploadpurging.age",
    ),
    (
        "storage: {maintenance: {uploadpurging: {interval: 24}}}\n",
        "storage.maintenance.uploadpurging.interval",
    ),
    (
        "storage: {maintenance: {uploadpurging: {age: 0s}}}\n",
        "storage.maintenance.uploadpurging.age",
    ),
    ("storage: {redirect: {disable: maybe}}\n", "storage.redirect.disable"),
    ("storage: {cache: {blobdescriptor: memcached}}\n", "storage.cache.blobdescriptor"),
    ("http: {addr: '5000'}\n", "http.addr"),
    ("http: {addr: 'localhost:http'}\n", "http.addr"),
    ("http: {addr: ':99999'}\n", "http.addr"),
    ("http: {addr: '::1:5000'}\n", "http.addr"),
    ("http: {net: udp}\n", "http.net"),
    ("http: {net: unix, addr: ''}\n", "http.addr"),
    ("http: {prefix: v2}\n", "http.prefix"),
    ("http: {host: registry.example.com}\n", "http.host"),
    ("http: {secret: [a, b]}\n", "http.secret"),
    ("http: {secret: true}\n", "http.secret"),
    ("http: {relativeurls: 2}\n", "http.relativeurls"),
    ("http: {draintimeout: soon}\n", "http.draintimeout"),
    ("http: {headertimeout: 0s}\n", "http.headertimeout"),
    ("http: {headertimeout: 20}\n", "http.headertimeout"),
    ("http: {idletimeout: -1s}\n", "http.idletimeout"),
    ("http: {maxconnections: -1}\n", "http.maxconnections"),
    ("http: {maxconnections: lots}\n", "http.maxconnections"),
    ("http: {headers: {'Bad Header': [x]}}\n", "http.headers.Bad Header"),
    ("http: {headers: {X-Thing: {a: b}}}\n", "http.headers.X-Thing"),
    ("http: {workers: -1}\n", "http.workers"),
    ("http: {workers: two}\n", "http.workers"),
    ("http: {workers: true}\n", "http.workers"),
    ("http: {server: gunicorn}\n", "http.server"),
    ("http: {tls: {certificate: /nonexistent/cert.pem, key: /nonexistent/key.pem}}\n", "http.tls"),
    ("http: {tls: {minimumtls: tls0.9}}\n", "http.tls.minimumtls"),
    ("http: {tls: {clientcas: {a: b}}}\n", "http.tls.clientcas"),
    ("catalog: {maxentries: 0}\n", "catalog.maxentries"),
    ("catalog: {maxentries: 1.5}\n", "catalog.maxentries"),
]


@pytest.mark.parametrize(("text", "key"), FILE_ERRORS)
def test_bad_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(minimal(tmp_path, text), {})
    message = str(caught.value)
    assert message.startswith(key)
    assert "\n" not in message


def test_tls_key_is_required_with_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("x")
    path = minimal(tmp_path, f"http: {{tls: {{certificate: {tmp_path / 'cert.pem'}}}}}\n")
    with pytest.raises(ConfigError, match=r"^http\.tls\.key: required"):
        load_config(path, {})


def test_a_missing_client_ca_is_an_error(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    path = minimal(
        tmp_path,
        f"""\
        http:
          tls:
            certificate: {tmp_path / "cert.pem"}
            key: {tmp_path / "key.pem"}
            clientcas: [{tmp_path / "missing.pem"}]
        """,
    )
    with pytest.raises(ConfigError, match=r"^http\.tls\.clientcas: no such file"):
        load_config(path, {})


def test_missing_version_in_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'^version: must be "0\.1", it is missing'):
        load_config(write(tmp_path, "http: {addr: ':5000'}\n"), {})


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("REGISTRY_HTTP_WORKERS", "x", "http.workers"),
        ("REGISTRY_STORAGE_S3", "[1]", "storage.s3"),
        ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "1d", "uploadpurging.age"),
        ("REGISTRY_LOG_LEVEL", "loud", "log.level"),
        ("REGISTRY_CATALOG_MAXENTRIES", "-5", "catalog.maxentries"),
        ("REGISTRY_HTTP_IDLETIMEOUT", "75", "http.idletimeout"),
    ],
)
def test_bad_variables_name_key_and_variable(name: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {name: value})
    message = str(caught.value)
    assert key in message
    assert "\n" not in message
    assert name in message


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read configuration .*missing\.yml"):
        load_config(str(tmp_path / "missing.yml"), {})
    with pytest.raises(ConfigError, match=r"invalid YAML in .* at line 3, column 1"):
        load_config(write(tmp_path, "version: 0.1\nhttp: [unclosed\n"), {})
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), {})


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("168h", timedelta(hours=168)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("1.5h", timedelta(minutes=90)),
        (".5s", timedelta(milliseconds=500)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30.5)),
        ("1us", timedelta(microseconds=1)),
        ("1µs", timedelta(microseconds=1)),  # Go accepts the micro sign
        ("1500ns", timedelta(microseconds=1)),
        ("0", timedelta(0)),
        ("+5m", timedelta(minutes=5)),
        ("-1h", timedelta(hours=-1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1d", "1h 30m", "1.2.3s", " ", "-", "5 m", "1hh"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_a_zero_integer_is_a_zero_duration(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path, "http: {draintimeout: 0}\n"), {})
    assert config.http.drain_timeout == timedelta(0)


# --- unknown keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("nonsense: 1\n", "nonsense"),
        ("log: {colour: red}\n", "log.colour"),
        ("log: {accesslog: {enabled: false}}\n", "log.accesslog.enabled"),
        ("storage: {delete: {enable: true}}\n", "storage.delete.enable"),
        ("storage: {cache: {blobdescriptorsize: 10000}}\n", "storage.cache.blobdescriptorsize"),
        ("storage: {tag: {limit: 8}}\n", "storage.tag.limit"),
        ("http: {adr: ':5000'}\n", "http.adr"),
        ("http: {debug: {addr: ':5001', colour: red}}\n", "http.debug.colour"),
        ("http: {http2: {enabled: true}}\n", "http.http2.enabled"),
        ("catalog: {maxentires: 5}\n", "catalog.maxentires"),
        ("log: {reportcaller: true}\n", "log.reportcaller"),
        (
            "compatibility: {schema1: {signingkeyfile: /k}}\n",
            "compatibility.schema1.signingkeyfile",
        ),
        ("validation: {manifests: {url: {}}}\n", "validation.manifests.url"),
    ],
)
def test_unknown_keys_are_errors(tmp_path: Path, text: str, key: str) -> None:
    path = minimal(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    message = str(caught.value)
    assert message.startswith(f"{key}: ")
    assert message.endswith("(--lenient makes it a warning)")
    assert "\n" not in message
    _, warnings = load_config_with_warnings(path, {}, lenient=True)
    assert [warning.split(":")[0] for warning in warnings] == [key]


def test_lenient_loading_ignores_unknown_keys_with_warnings(tmp_path: Path) -> None:
    path = minimal(
        tmp_path,
        """\
        nonsense: 1
        log: {colour: red}
        storage:
          filesystem: {rootdirectory: /data}
          cache: {blobdescriptorsize: 10000}
        http:
          addr: ':5000'
          debug: {addr: ':5001'}
        catalog: {maxentires: 5}
        """,
    )
    config, warnings = load_config_with_warnings(path, {"REGISTRY_HTTP_FOO": "1"}, lenient=True)
    assert config.http.addr == ":5000"
    assert config.catalog.max_entries == 1000
    assert sorted(warnings) == sorted(
        [
            "nonsense: unknown key, ignored",
            "log.colour: unknown key, ignored",
            "storage.cache.blobdescriptorsize: not supported by wharf: its caches are bounded by "
            "their own limits, not by a count, ignored",
            "http.foo (from REGISTRY_HTTP_FOO): unknown key, ignored",
            "catalog.maxentires: unknown key, ignored",
        ]
    )


def test_a_variable_naming_no_section_is_a_warning_even_when_strict() -> None:
    # Kubernetes sets these for a service named "registry"; Distribution ignores them too.
    environ = {"REGISTRY_PORT": "tcp://10.0.0.1:5000", "REGISTRY_SERVICE_HOST": "10.0.0.1"}
    config, warnings = load_config_with_warnings(None, environ)
    assert config == Config()
    assert warnings == [
        "port (from REGISTRY_PORT): names no configuration section, ignored",
        "service (from REGISTRY_SERVICE_HOST): names no configuration section, ignored",
    ]
    with pytest.raises(ConfigError, match=r"^http\.foo \(from REGISTRY_HTTP_FOO\): unknown key"):
        load_config(None, {"REGISTRY_HTTP_FOO": "1"})


def test_driver_parameters_are_left_to_the_driver(tmp_path: Path) -> None:
    config = load_config(minimal(tmp_path, "storage: {inmemory: {a: 1}}\n"), {}, lenient=True)
    assert config.storage.parameters == {"a": 1}
    typo = minimal(tmp_path, "storage: {filesystem: {rootdirectroy: /data}}\n")
    parameters = load_config(typo, {}).storage.parameters
    assert parameters == {"rootdirectroy": "/data", "rootdirectory": "./wharf-data"}


def test_driver_parameters_from_variables_keep_their_text(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "0123",
            "REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS": "8",
        },
    )
    assert config.storage.parameters == {"rootdirectory": "0123", "maxthreads": "8"}


def test_malformed_variable_names_are_warnings() -> None:
    _, warnings = load_config_with_warnings(
        None, {"REGISTRY__HTTP": "1", "REGISTRY_NOTIFICATIONS_ENDPOINTS_3_NAME": "x"}
    )
    assert warnings == [
        "REGISTRY_NOTIFICATIONS_ENDPOINTS_3_NAME: does not address a configuration key, ignored",
        "REGISTRY__HTTP: not a configuration key, ignored",
    ]
