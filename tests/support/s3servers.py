"""S3-compatible servers for tests, started on free loopback ports and stopped after the session.

- **moto** (``pip install 'moto[server]'``): ``python -m moto.server``. Starts in about a
  second, enforces the 5 MiB part minimum, accepts any credentials and any signature.
- **OpenStack Swift** with its ``s3api`` middleware (``pip install swift``): a proxy server,
  and account, container and object servers, each one process (``workers = 0``) unless
  ``start_swift`` is asked for more, with one-replica rings built here through swift's
  RingBuilder API, ``tempauth`` users, and memcached (Debian's ``memcached``) where it is
  installed: tempauth keeps the tokens of Swift's native API there (``/auth/v1.0``, used by
  the ``swift`` storage driver; without memcached only s3api works). ``tempurl`` and
  ``bulk`` are in the pipeline, as in Swift's sample configuration. Checks SigV4 and SigV2
  signatures and presigned URLs. Listing pages are kept small (``max_bucket_listing = 100``,
  ``max_parts_listing = 10``) so that a few hundred keys exercise pagination. The object
  server keeps metadata in user extended attributes, so its directory must be on a
  filesystem that supports them (ext4, xfs, btrfs; tmpfs only since Linux 6.6).
  From pip only on Debian 12: PyECLib's wheel bundles liberasurecode; nothing else is needed.

Both run as child processes, never in the test process, so their threads, eventlet patching
and warnings stay out of pytest's. Import the fixtures into a ``conftest.py``::

    from tests.support.s3servers import moto_server, s3_server, swift_server  # noqa: F401

``s3_server`` is parametrised over both; a server that cannot start (package missing,
no xattrs) skips its tests with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import pytest

from tests.support.server import free_port, wait_for_http

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

__all__ = [
    "S3Server",
    "moto_server",
    "s3_server",
    "start_moto",
    "start_swift",
    "swift_server",
]

_STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class S3Server:
    kind: str  # "moto" | "swift"
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    #: Whether the server rejects bad signatures (Swift) or takes anything (moto).
    checks_signatures: bool = False
    log: Path | None = None
    #: Swift's native auth endpoint (tempauth v1), when memcached runs to keep its tokens.
    auth_url: str = ""

    def client(self, endpoint: str | None = None) -> S3Client:
        """A boto3 client of the server (one, reused: making one takes 0.1 s), or of
        ``endpoint`` (a proxy in front of it)."""
        return self._client if endpoint is None else self._new_client(endpoint)

    @functools.cached_property
    def _client(self) -> S3Client:
        return self._new_client(self.endpoint)

    def _new_client(self, endpoint: str) -> S3Client:
        config = botocore.config.Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=config,
        )

    def create_bucket(self) -> str:
        name = f"wharf-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    @functools.cached_property
    def _shared_bucket(self) -> str:
        return self.create_bucket()

    def fresh_parameters(self, **extra: Any) -> dict[str, Any]:
        """``storage: s3:`` parameters on storage no one else uses: a new bucket on moto, a
        new root directory in one shared bucket on Swift (so both kinds of isolation, and
        a root directory below a bucket that holds other trees, are exercised)."""
        if self.kind == "moto":
            return self.parameters(self.create_bucket(), **extra)
        root = f"/wharf/{uuid.uuid4().hex[:16]}"
        return self.parameters(self._shared_bucket, rootdirectory=root, **extra)

    def parameters(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """``storage: s3:`` parameters for ``bucket`` on this server. Swift creates an
        object only if absent, but not atomically: two concurrent creates both succeed."""
        conditional = {} if self.kind == "moto" else {"conditionalwrites": False}
        return {
            **conditional,
            "bucket": bucket,
            "region": self.region,
            "regionendpoint": self.endpoint,
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
            "forcepathstyle": True,
            **extra,
        }


class _Processes:
    """Child processes with their output in one log file; stopped in reverse order."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start_command(self, *args: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as output:
            process = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def check(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_s3(server: S3Server, processes: _Processes) -> None:
    """Until a bucket can be created: every daemon behind the proxy answers."""
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    client = server.client()
    while True:
        processes.check()
        try:
            client.create_bucket(Bucket="wharf-ready")
            client.delete_bucket(Bucket="wharf-ready")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def start_moto(workdir: Path) -> Iterator[S3Server]:
    port = free_port()
    processes = _Processes(workdir / "moto.log")
    try:
        process = processes.start("-m", "moto.server", "-H", "127.0.0.1", "-p", str(port))
        wait_for_http(f"http://127.0.0.1:{port}/", _STARTUP_TIMEOUT, process)
        endpoint = f"http://127.0.0.1:{port}"
        server = S3Server("moto", endpoint, "wharf", "wharf-secret", log=processes.log)
        _wait_for_s3(server, processes)
        yield server
    finally:
        processes.stop()


_RINGS = textwrap.dedent(
    """
    import sys
    from swift.common.ring import RingBuilder

    directory = sys.argv[1]
    for kind, port in zip(("account", "container", "object"), sys.argv[2:5]):
        builder = RingBuilder(6, 1, 1)  # 2**6 partitions, 1 replica, 1 hour between moves
        builder.add_dev({"id": 0, "region": 1, "zone": 1, "weight": 1.0,
                         "ip": "127.0.0.1", "port": int(port), "device": "d0"})
        builder.rebalance()
        builder.get_ring().save(f"{directory}/{kind}.ring.gz")
    """
)
_SERVER_MAIN = "import sys; from swift.{module}.server import main; sys.exit(main())"
# Logging goes to syslog only; an unused UDP port keeps it off /dev/log, which containers lack.
_COMMON = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = {workers}
user = {user}
swift_dir = {dir}
devices = {dir}/srv
mount_check = false
log_level = WARNING
log_udp_host = 127.0.0.1
log_udp_port = 9
"""
_PROXY = """\
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk \
tempurl s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1
max_bucket_listing = {listing}
max_parts_listing = 10

[filter:tempauth]
use = egg:swift#tempauth
user_wharf_tester = {secret} .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = {memcache}
"""
# Each filter in the pipeline, by its pipeline name.
_FILTERS = {
    "catch_errors": "catch_errors",
    "gatekeeper": "gatekeeper",
    "healthcheck": "healthcheck",
    "proxy-logging": "proxy_logging",
    "bulk": "bulk",
    "tempurl": "tempurl",
    "listing_formats": "listing_formats",
    "copy": "copy",
    "slo": "slo",
    "dlo": "dlo",
}


def _supports_xattrs(directory: Path) -> str | None:
    probe = directory / "xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.wharf", b"x" * 200)
    except OSError as exc:
        return f"no user extended attributes in {directory} ({exc.strerror})"
    finally:
        probe.unlink()
    return None


@contextlib.contextmanager
def start_swift(workdir: Path, workers: int = 0, listing: int = 100) -> Iterator[S3Server]:
    """Swift's daemons as one process each by default (quickest to start), or each with
    ``workers`` forked processes, as Swift is deployed (workers drop privileges to ``user``,
    which here is whoever runs the tests). ``listing``: keys an s3api listing answers at
    most; small for tests (pagination), Swift's own default 1,000 for a benchmark."""
    if importlib.util.find_spec("swift") is None:
        pytest.skip("OpenStack Swift is not installed (pip install swift)")
    if (reason := _supports_xattrs(workdir)) is not None:
        pytest.skip(f"Swift needs xattrs: {reason}")
    (workdir / "srv" / "d0").mkdir(parents=True)
    ports = {kind: free_port() for kind in ("proxy", "account", "container", "object")}
    secret = secrets.token_hex(8)
    memcached = shutil.which("memcached")
    memcache_port = free_port()
    user = getpass.getuser()
    (workdir / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_suffix = wharf\nswift_hash_path_prefix = wharf\n\n"
        "[storage-policy:0]\nname = gold\ndefault = yes\n"
    )
    for kind in ("account", "container", "object"):
        (workdir / f"{kind}-server.conf").write_text(
            _COMMON.format(port=ports[kind], dir=workdir, workers=workers, user=user)
            + f"\n[pipeline:main]\npipeline = {kind}-server\n\n"
            + f"[app:{kind}-server]\nuse = egg:swift#{kind}\n"
        )
    filters = "".join(
        f"\n[filter:{name}]\nuse = egg:swift#{egg}\n" for name, egg in _FILTERS.items()
    )
    (workdir / "proxy-server.conf").write_text(
        _COMMON.format(port=ports["proxy"], dir=workdir, workers=workers, user=user)
        + "\n"
        + _PROXY.format(secret=secret, memcache=f"127.0.0.1:{memcache_port}", listing=listing)
        + filters
    )
    processes = _Processes(workdir / "swift.log")
    try:
        if memcached is not None:
            processes.start_command(
                memcached, "-l", "127.0.0.1", "-p", str(memcache_port), "-U", "0", "-m", "64",
                "-u", user,
            )  # fmt: skip
        subprocess.run(
            [sys.executable, "-c", _RINGS, str(workdir), *map(str, list(ports.values())[1:])],
            check=True,
            capture_output=True,
        )
        for kind, module in (("account", "account"), ("container", "container"), ("object", "obj")):
            processes.start(
                "-c", _SERVER_MAIN.format(module=module), str(workdir / f"{kind}-server.conf")
            )
        proxy = processes.start(
            "-c", _SERVER_MAIN.format(module="proxy"), str(workdir / "proxy-server.conf")
        )
        wait_for_http(f"http://127.0.0.1:{ports['proxy']}/healthcheck", _STARTUP_TIMEOUT, proxy)
        server = S3Server(
            "swift",
            f"http://127.0.0.1:{ports['proxy']}",
            "wharf:tester",
            secret,
            checks_signatures=True,
            log=processes.log,
            auth_url=f"http://127.0.0.1:{ports['proxy']}/auth/v1.0" if memcached else "",
        )
        _wait_for_s3(server, processes)
        yield server
    finally:
        processes.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with start_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="session")
def swift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with start_swift(tmp_path_factory.mktemp("swift")) as server:
        yield server


@pytest.fixture(scope="session", params=["moto", "swift"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each S3 server in turn."""
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server
