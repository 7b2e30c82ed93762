"""Load a Distribution-compatible ``config.yml`` (version 0.1) into a typed :class:`Config`.

Three steps, as Distribution's ``configuration.Parse`` does them:

1. the YAML file (``path``, else ``$REGISTRY_CONFIGURATION_PATH``, else no file: the defaults);
2. ``REGISTRY_<SECTION>_<KEY>...`` environment overrides, applied in lexical order of the
   variable names so that ``REGISTRY_STORAGE`` lands before
   ``REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY``; each value is parsed as YAML;
3. conversion into the frozen dataclasses of :mod:`wharf.config.model`, where every bad value
   raises :class:`ConfigError` naming its key, and so does every unknown key, unless loading
   is ``lenient`` (then it is a warning and ignored, for configurations being migrated).

Every section of Distribution's configuration is read: into the model, or by
``wharf.config.unsupported``, which accepts what asks for nothing wharf does not do and refuses
the rest with one line saying why. A top-level key set only by the environment and naming no
section is a warning, lenient or not: Kubernetes sets ``REGISTRY_PORT`` and
``REGISTRY_SERVICE_HOST`` for a service named ``registry`` (Distribution ignores them too).
Storage driver parameters are the driver's to check (``wharf.storage.driver.factory``), and
``auth`` the access controller's; neither is ever lenient, since a misspelt key there puts
the data elsewhere or weakens access control.

Deliberate differences from Distribution: a missing storage driver means the default
(filesystem under ``./wharf-data``) instead of an error; ``REGISTRY_STORAGE=<driver>`` keeps
the ``delete``/``maintenance``/``redirect``/``cache`` options instead of dropping them; a
duration needs a unit (``168`` would be 168 ns in Go, which is never what was meant).
"""

from __future__ import annotations

import copy
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from wharf.config.middleware import MiddlewareConfig, parse_middleware
from wharf.config.mirrors import parse_mirrors
from wharf.config.model import (
    CatalogConfig,
    Config,
    GcConfig,
    HTTPConfig,
    LogConfig,
    StorageConfig,
    UploadPurgingConfig,
)
from wharf.config.operations import parse_debug, parse_health, parse_notifications, parse_redis
from wharf.config.sources import (
    CONFIG_PATH_ENV,
    STORAGE_OPTIONS,
    ConfigError,
    Context,
    apply_environment,
    read_file,
)
from wharf.config.tls import parse_tls
from wharf.config.tus import parse_tus
from wharf.config.unsupported import (
    check_compatibility,
    check_log_hooks,
    check_policy,
    check_reporting,
)
from wharf.config.validation import parse_validation

__all__ = [
    "CONFIG_PATH_ENV",
    "DEFAULT_SOURCE",
    "ConfigError",
    "Loaded",
    "load",
    "load_config",
    "load_config_with_warnings",
    "parse_duration",
]

#: ``Config.source`` when no file was read; a file's source is always an absolute path.
DEFAULT_SOURCE = "defaults"

_DEFAULT_ROOT = "./wharf-data"
#: Sections kept raw in ``Config.extra`` for the subsystem that reads them.
_RAW_SECTIONS = ("auth",)
#: Sections wharf reads only to refuse what it does not do (``wharf.config.unsupported``).
_REFUSING_CHECKS = (
    check_reporting,
    check_compatibility,
    check_policy,
)
_LOG_LEVELS = ("error", "warn", "info", "debug")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded configuration, with what loading met on the way."""

    config: Config
    warnings: list[str]
    #: The configuration tree as read: the file with the environment's overrides applied.
    tree: dict[str, Any]
    #: Dotted keys ignored under ``lenient``, which the model does not hold.
    ignored: list[str]


def load(path: str | None, environ: Mapping[str, str], *, lenient: bool = False) -> Loaded:
    """Load the configuration: ConfigError (one line) for a bad value, and for an unknown
    key unless ``lenient``."""
    path = path or environ.get(CONFIG_PATH_ENV) or None
    tree = read_file(path) if path is not None else {}
    context = Context(lenient=lenient)
    apply_environment(tree, environ, context)
    source = os.path.abspath(path) if path is not None else DEFAULT_SOURCE
    config = _build(copy.deepcopy(tree), context, source, from_file=path is not None)
    return Loaded(config, context.warnings, tree, context.ignored)


def load_config(path: str | None, environ: Mapping[str, str], *, lenient: bool = False) -> Config:
    """Load the configuration; the warnings (there are some only when ``lenient``) are dropped.

    Worker processes load with ``lenient``: their parent has refused, or warned about, every
    unknown key already."""
    return load(path, environ, lenient=lenient).config


def load_config_with_warnings(
    path: str | None, environ: Mapping[str, str], *, lenient: bool = False
) -> tuple[Config, list[str]]:
    """Load the configuration and the warnings to log at start."""
    loaded = load(path, environ, lenient=lenient)
    return loaded.config, loaded.warnings


# --- durations -----------------------------------------------------------------------------

_DURATION_ELEMENT = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_MICROSECONDS = {
    "ns": Decimal("0.001"),
    "us": Decimal(1),
    "µs": Decimal(1),
    "μs": Decimal(1),
    "ms": Decimal(1000),
    "s": Decimal(1_000_000),
    "m": Decimal(60_000_000),
    "h": Decimal(3_600_000_000),
}


def parse_duration(text: str) -> timedelta:
    """Parse Go's ``time.ParseDuration`` format: ``"168h"``, ``"1h30m"``, ``"500ms"``, ``"0"``."""
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.removeprefix("+"))
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = Decimal(0)
    position = 0
    while position < len(body):
        match = _DURATION_ELEMENT.match(body, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r} (examples: 168h, 1h30m, 500ms)")
        try:
            total += Decimal(match[1]) * _MICROSECONDS[match[2]]
        except InvalidOperation as exc:
            raise ValueError(f"invalid duration {text!r}") from exc
        position = match.end()
    return timedelta(microseconds=sign * int(total))


# --- typed conversion ----------------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Section:
    """Typed reads from one mapping; keys never read are reported as unknown by ``finish``."""

    def __init__(self, data: Any, path: str, ctx: Context) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ctx.error(path, f"expected a mapping, got {_show(data)}")
        self.data: dict[Any, Any] = data
        self.path = path
        self.ctx = ctx
        self._read: set[Any] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> ConfigError:
        return self.ctx.error(self.key(name), message)

    def get(self, name: str) -> Any:
        self._read.add(name)
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def unsupported(self, name: str, why: str) -> None:
        """A Distribution key that means nothing to wharf: refused as an unknown key is (so
        ``lenient`` ignores it), saying why."""
        if name in self.data:
            self._read.add(name)
            self.ctx.unknown(self.key(name), f"not supported by wharf: {why}")

    def section(self, name: str) -> _Section:
        return _Section(self.get(name), self.key(name), self.ctx)

    def element(self, name: str, index: int, data: Any) -> _Section:
        """Item ``index`` of the list under ``name`` (read by the caller), as a section."""
        return _Section(data, f"{self.key(name)}.{index}", self.ctx)

    def raw(self, name: str) -> Any:
        return copy.deepcopy(self.get(name))

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(name, f"expected a mapping, got {_show(value)}")
        return {str(key): item for key, item in copy.deepcopy(value).items()}

    def string(self, name: str, default: str) -> str:
        value = self.get(name)
        if value is None:
            return default
        text = self.ctx.env_text.get(self.key(name))
        if text is not None:
            return text
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"expected a string, got {_show(value)}")
        return str(value)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(name, default).strip().lower()
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {_show(value)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {_show(value)}")
        return value

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer, got {_show(value)}")
        if value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        return value

    def duration(self, name: str, default: _T, *, positive: bool = False) -> timedelta | _T:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and value == 0:
            result = timedelta(0)
        elif isinstance(value, str):
            try:
                result = parse_duration(value.strip())
            except ValueError as exc:
                raise self.error(name, str(exc)) from None
        else:
            raise self.error(name, f"expected a duration with a unit like 24h, got {_show(value)}")
        if result < timedelta(0) or (positive and result == timedelta(0)):
            raise self.error(name, f"must be {'positive' if positive else 'zero or more'}")
        return result

    def finish(self) -> None:
        """Refuse the keys nobody read (under ``lenient``, warn about them)."""
        for name in self.data:
            if name in self._read:
                continue
            key = self.key(str(name))
            variables = [v for k, v in self.ctx.origins.items() if k.split(".")[0] == key]
            if not self.path and variables:
                self.ctx.ignored.append(key)
                message = f"{key} (from {variables[0]}): names no configuration section, ignored"
                self.ctx.warnings.append(message)
            else:
                self.ctx.unknown(key)


def _build(tree: dict[str, Any], ctx: Context, source: str, *, from_file: bool) -> Config:
    top = _Section(tree, "", ctx)
    version = top.string("version", "")
    if from_file and version != "0.1":
        got = f"got {_show(version)}" if version else "it is missing"
        raise top.error("version", f'must be "0.1", {got}')
    middleware = parse_middleware(top)
    for check in _REFUSING_CHECKS:
        check(top)
    config = Config(
        log=_log(top),
        storage=_storage(top.section("storage"), middleware),
        http=_http(top.section("http")),
        catalog=_catalog(top.section("catalog")),
        extra={name: top.raw(name) for name in _RAW_SECTIONS if top.has(name)},
        source=source,
        notifications=parse_notifications(top.section("notifications")),
        redis=parse_redis(top.section("redis")),
        health=parse_health(top.section("health")),
        mirrors=parse_mirrors(top),
        validation=parse_validation(top.section("validation")),
        tus=parse_tus(top.section("tus")),
    )
    if config.storage.cache_blobdescriptor == "redis" and config.redis is None:
        raise ctx.error("storage.cache.blobdescriptor", "redis needs a redis section with addr")
    top.finish()
    return config


def _log(top: _Section) -> LogConfig:
    section = top.section("log")
    deprecated = top.choice("loglevel", "info", _LOG_LEVELS)
    level = section.choice("level", deprecated, _LOG_LEVELS)
    formatter = section.choice("formatter", "text", ("text", "json", "logstash"))
    if formatter == "logstash":
        section.ctx.warn(section.key("formatter"), "logstash is written as json")
        formatter = "json"
    fields = section.mapping("fields")
    accesslog = section.section("accesslog")
    access_log = not accesslog.boolean("disabled", False)
    accesslog.finish()
    check_log_hooks(section)
    if section.data.get("reportcaller"):
        section.unsupported("reportcaller", "its lines name their logger, not a file and line")
    section.boolean("reportcaller", False)
    section.finish()
    return LogConfig(level=level, formatter=formatter, fields=fields, access_log=access_log)


def _storage(section: _Section, middleware: tuple[MiddlewareConfig, ...]) -> StorageConfig:
    drivers = [name for name in section.data if name not in STORAGE_OPTIONS]
    if len(drivers) > 1:
        names = ", ".join(str(name) for name in drivers)
        raise section.ctx.error("storage", f"exactly one driver allowed, got {names}")
    # Which drivers exist is the storage layer's to say (``validate_storage``).
    driver = str(drivers[0]) if drivers else "filesystem"
    parameters = _driver_parameters(driver, section)

    delete = section.section("delete")
    delete_enabled = delete.boolean("enabled", False)
    delete.finish()

    maintenance = section.section("maintenance")
    readonly = maintenance.section("readonly")
    readonly_enabled = readonly.boolean("enabled", False)
    readonly.finish()
    purging = _upload_purging(maintenance.section("uploadpurging"))
    maintenance.finish()

    redirect = section.section("redirect")
    redirect_disabled = redirect.boolean("disable", False)
    redirect.finish()

    cache = section.section("cache")
    layerinfo = cache.string("layerinfo", "")  # Distribution's older name for blobdescriptor
    blobdescriptor = cache.string("blobdescriptor", "") or layerinfo
    if blobdescriptor and blobdescriptor not in ("inmemory", "redis"):
        raise cache.error(
            "blobdescriptor", f"must be inmemory or redis, got {_show(blobdescriptor)}"
        )
    cache.unsupported(
        "blobdescriptorsize", "its caches are bounded by their own limits, not by a count"
    )
    cache.finish()
    tag = section.section("tag")
    tag_limit = tag.integer("concurrencylimit", 0, minimum=0)
    tag.finish()
    gc = _gc(section.section("gc"))
    section.finish()
    return StorageConfig(
        driver=driver,
        parameters=parameters,
        delete_enabled=delete_enabled,
        readonly=readonly_enabled,
        upload_purging=purging,
        redirect_disabled=redirect_disabled,
        cache_blobdescriptor=blobdescriptor or None,
        gc=gc,
        tag_concurrency_limit=tag_limit,
        middleware=middleware,
    )


def _driver_parameters(driver: str, storage: _Section) -> dict[str, Any]:
    """The driver's parameters as written: the driver checks them (``validate_storage`` of
    ``wharf.storage.driver.factory``, before any worker starts). A value set by a variable is
    its text, as the variable had it: the driver reads "0123" or "true" as it means them."""
    params = storage.section(driver)
    parameters: dict[str, Any] = {}
    for key, value in copy.deepcopy(params.data).items():
        text = storage.ctx.env_text.get(params.key(str(key)))
        scalar = text is not None and not isinstance(value, dict | list)
        parameters[str(key)] = text if scalar else value
    if driver == "filesystem":
        parameters.setdefault("rootdirectory", _DEFAULT_ROOT)
    return parameters


def _upload_purging(section: _Section) -> UploadPurgingConfig:
    defaults = UploadPurgingConfig()
    purging = UploadPurgingConfig(
        enabled=section.boolean("enabled", defaults.enabled),
        age=section.duration("age", defaults.age, positive=True),
        interval=section.duration("interval", defaults.interval, positive=True),
        dry_run=section.boolean("dryrun", defaults.dry_run),
    )
    section.finish()
    return purging


def _gc(section: _Section) -> GcConfig:
    defaults = GcConfig()
    gc = GcConfig(
        enabled=section.boolean("enabled", defaults.enabled),
        interval=section.duration("interval", defaults.interval, positive=True),
        grace=section.duration("grace", defaults.grace),
        delete_untagged=section.boolean("deleteuntagged", defaults.delete_untagged),
        lockdir=section.string("lockdir", defaults.lockdir),
    )
    section.finish()
    return gc


def _http(section: _Section) -> HTTPConfig:
    defaults = HTTPConfig()
    net = section.choice("net", defaults.net, ("tcp", "unix"))
    addr = section.string("addr", defaults.addr).strip()
    if net == "tcp":
        _check_addr(section, addr)
    elif not addr:
        raise section.error("addr", "a unix socket path is required when net is unix")
    prefix = section.string("prefix", "")
    if prefix and not prefix.startswith("/"):
        raise section.error("prefix", f"must start with '/', got {_show(prefix)}")
    host = section.string("host", "")
    if host:
        parsed = urllib.parse.urlsplit(host)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise section.error(
                "host", f"must be a URL like https://registry.example, got {_show(host)}"
            )
    config = HTTPConfig(
        addr=addr,
        net=net,
        secret=section.string("secret", ""),
        prefix=prefix,
        host=host,
        headers=_headers(section),
        tls=parse_tls(section.section("tls")),
        workers=section.integer("workers", defaults.workers, minimum=0),
        server=section.choice("server", defaults.server, ("granian", "uvicorn")),
        relative_urls=section.boolean("relativeurls", False),
        drain_timeout=section.duration("draintimeout", None),
        body_timeout=section.duration("bodytimeout", defaults.body_timeout, positive=True),
        header_timeout=section.duration("headertimeout", defaults.header_timeout, positive=True),
        idle_timeout=section.duration("idletimeout", defaults.idle_timeout, positive=True),
        max_connections=section.integer("maxconnections", defaults.max_connections, minimum=0),
        debug=parse_debug(section.section("debug")),
        http2_disabled=_flag(section, "http2", "disabled"),
        h2c_enabled=_flag(section, "h2c", "enabled"),
    )
    section.finish()
    _check_server(section, config)
    return config


def _flag(section: _Section, name: str, flag: str) -> bool:
    options = section.section(name)
    value = options.boolean(flag, False)
    options.finish()
    return value


def _check_server(section: _Section, http: HTTPConfig) -> None:
    """What one HTTP server cannot do: refused rather than served otherwise."""
    tls = http.tls
    if http.server == "uvicorn":
        if http.h2c_enabled:
            raise section.error("h2c", "uvicorn serves HTTP/1.1 only: set http.server: granian")
        return
    if tls is None:
        return
    if tls.cipher_suites:
        raise section.error("tls.ciphersuites", "granian cannot restrict them: use uvicorn")
    if tls.client_cas and tls.client_auth != "require-and-verify-client-cert":
        raise section.error("tls.clientauth", f"granian cannot {tls.client_auth}: use uvicorn")
    if tls.minimum_tls in ("tls1.0", "tls1.1"):
        raise section.error("tls.minimumtls", "granian accepts TLS 1.2 or later only")


def _check_addr(section: _Section, addr: str) -> None:
    host, colon, port = addr.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not colon or not port.isdigit() or int(port) > 65535 or (":" in host and not bracketed):
        raise section.error(
            "addr", f"must be host:port such as :5000 or [::1]:5000, got {_show(addr)}"
        )


def _headers(section: _Section) -> dict[str, tuple[str, ...]]:
    headers: dict[str, tuple[str, ...]] = {}
    for name, value in section.mapping("headers").items():
        key = f"{section.key('headers')}.{name}"
        if not _HEADER_NAME.match(name):
            raise section.ctx.error(key, "not a valid header name")
        values = value if isinstance(value, list) else [value]
        if not all(
            isinstance(item, str | int | float) and not isinstance(item, bool) for item in values
        ):
            raise section.ctx.error(key, f"expected a list of strings, got {_show(value)}")
        headers[name] = tuple(str(item) for item in values)
    return headers


def _catalog(section: _Section) -> CatalogConfig:
    catalog = CatalogConfig(max_entries=section.integer("maxentries", 1000, minimum=1))
    section.finish()
    return catalog
