"""TLS and mutual TLS (``http.tls``: certificate, key, clientcas, minimumtls) with a CA made
in the test, checked with httpx on both servers and with skopeo and podman."""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.support import Authority, cert_pem, pem_private, write_htpasswd
from tests.support.clients import ClientError, Podman, Skopeo, binary
from tests.support.images import build_image
from tests.support.server import WharfServer

pytestmark = [pytest.mark.server]

needs_skopeo = pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed")
needs_podman = pytest.mark.skipif(binary("podman") is None, reason="podman is not installed")


@dataclass
class Material:
    """A CA, the server's certificate, a client certificate from the CA and one from a
    stranger, as files."""

    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path

    def context(
        self, *, client: str | None = None, maximum: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if client == "client":
            context.load_cert_chain(self.client_cert, self.client_key)
        elif client == "stranger":
            context.load_cert_chain(self.stranger_cert, self.stranger_key)
        if maximum is not None:
            context.maximum_version = maximum
        return context

    def cert_dir(self, name: str, *, client: bool) -> Path:
        """A containers/image certificate directory: the CA, and the client pair if asked."""
        directory = self.directory / name
        directory.mkdir(exist_ok=True)
        (directory / "ca.crt").write_bytes(self.ca.read_bytes())
        if client:
            (directory / "client.cert").write_bytes(self.client_cert.read_bytes())
            (directory / "client.key").write_bytes(self.client_key.read_bytes())
        return directory


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    directory = tmp_path_factory.mktemp("tls")
    authority, stranger = Authority.create("wharf test CA"), Authority.create("stranger CA")
    files: dict[str, Path] = {"ca": directory / "ca.pem"}
    files["ca"].write_bytes(authority.pem())
    for name, (key, certificate) in {
        "server": authority.issue("localhost", server=True),
        "client": authority.issue("client", client=True),
        "stranger": stranger.issue("client", client=True),
    }.items():
        files[f"{name}_cert"] = directory / f"{name}.crt"
        files[f"{name}_key"] = directory / f"{name}.key"
        files[f"{name}_cert"].write_bytes(cert_pem(certificate))
        files[f"{name}_key"].write_bytes(pem_private(key))
    return Material(directory, **files)


class TLSServer(WharfServer):
    """A WharfServer on https, waited for with the test's CA (and client certificate)."""

    def __init__(self, context: ssl.SSLContext, **options: Any) -> None:
        super().__init__(**options)
        self.context = context

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> TLSServer:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wharf", "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url + "/v2/", verify=self.context, timeout=2)
                return self
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("wharf did not start:\n" + self.log()[-4000:]) from None
                time.sleep(0.1)


@contextlib.contextmanager
def serve(
    material: Material,
    *,
    mutual: bool = False,
    server: str = "granian",
    minimum: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Iterator[TLSServer]:
    tls: dict[str, Any] = {
        "certificate": str(material.server_cert),
        "key": str(material.server_key),
    }
    if mutual:
        tls["clientcas"] = [str(material.ca)]
    if minimum:
        tls["minimumtls"] = minimum
    context = material.context(client="client" if mutual else None)
    config = {"http": {"tls": tls, "server": server}, **(extra or {})}
    running = TLSServer(context, config=config)
    try:
        running.start()
        yield running
    finally:
        running.cleanup()


def _status(url: str, context: ssl.SSLContext) -> int | str:
    try:
        return httpx.get(url, verify=context, timeout=5).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_tls(material: Material, server: str) -> None:
    with serve(material, server=server) as running:
        assert _status(running.url + "/v2/", material.context()) == 200
        # A client that does not trust the CA refuses the server.
        assert isinstance(_status(running.url + "/v2/", ssl.create_default_context()), str)
        # A blob large enough for the server's file sending arrives whole, encrypted: the
        # bytes go through the TLS transport, never straight from the file to the socket.
        data = random.Random(9).randbytes(3 << 20)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with httpx.Client(base_url=running.url, verify=material.context(), timeout=30) as client:
            started = client.post("/v2/tls/blob/blobs/uploads/")
            location = started.headers["location"]
            joiner = "&" if "?" in location else "?"
            stored = client.put(f"{location}{joiner}digest={digest}", content=data)
            assert stored.status_code == 201, stored.text
            for _ in range(2):
                assert client.get(f"/v2/tls/blob/blobs/{digest}").content == data


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_mutual_tls(material: Material, server: str) -> None:
    with serve(material, mutual=True, server=server) as running:
        url = running.url + "/v2/"
        assert _status(url, material.context(client="client")) == 200
        assert isinstance(_status(url, material.context()), str)  # no client certificate
        assert isinstance(_status(url, material.context(client="stranger")), str)


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_minimum_tls_version(material: Material, server: str) -> None:
    with serve(material, server=server, minimum="tls1.3") as running:
        url = running.url + "/v2/"
        assert _status(url, material.context()) == 200
        assert isinstance(_status(url, material.context(maximum=ssl.TLSVersion.TLSv1_2)), str)


@pytest.mark.client
@needs_skopeo
def test_skopeo_over_mutual_tls(material: Material, tmp_path: Path) -> None:
    image = build_image(tmp_path / "layout", tag="v1", layers=2, layer_size=20_000)
    with serve(material, mutual=True) as running:
        skopeo = Skopeo(tmp_path / "skopeo", server=running)
        target = f"docker://{running.host}/secure/app:v1"
        verify = ["--dest-tls-verify=true"]
        with pytest.raises(ClientError):
            skopeo.copy(
                image.source,
                target,
                *verify,
                "--dest-cert-dir",
                str(material.cert_dir("ca-only", client=False)),
            )
        with_client = str(material.cert_dir("with-client", client=True))
        skopeo.copy(image.source, target, *verify, "--dest-cert-dir", with_client)
        listed = skopeo.run(
            "list-tags", "--tls-verify=true", "--cert-dir", with_client, target.rsplit(":", 1)[0]
        )
        assert '"v1"' in listed.stdout


@pytest.mark.client
@needs_podman
def test_podman_login_over_tls(material: Material, tmp_path: Path) -> None:
    users = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    auth = {"auth": {"htpasswd": {"realm": "wharf", "path": str(users)}}}
    image = build_image(tmp_path / "layout", tag="v1", layers=1, layer_size=20_000)
    with (
        serve(material, extra=auth) as running,
        Podman(tmp_path / "podman", server=running) as podman,
    ):
        certs = ["--cert-dir", str(material.cert_dir("podman", client=False))]
        target = f"{running.host}/secure/app:v1"
        podman.run("pull", "--signature-policy", str(podman.policy), image.source)
        podman.run("tag", image.config.digest.removeprefix("sha256:"), target)
        podman.run("login", *certs, "-u", "alice", "-p", "wonderland", running.host)
        podman.run("push", "--signature-policy", str(podman.policy), *certs, target)
        podman.run("rmi", target)
        podman.run("pull", "--signature-policy", str(podman.policy), *certs, target)


def _endless_head_status(host: str) -> int | None:
    """The status a server answers to a header block that keeps coming (None: no answer
    within seconds, while it went on buffering)."""
    address, _, port = host.rpartition(":")
    with socket.create_connection((address, int(port)), timeout=5) as connection:
        connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n")
        with contextlib.suppress(OSError):  # refused midway: the answer is already there
            for number in range(100):
                connection.sendall(b"X-Filler-%d: %s\r\n" % (number, b"a" * 20_000))
        try:
            status_line = connection.recv(100).split(b"\r\n", 1)[0]
        except TimeoutError:
            return None
        return int(status_line.split()[1]) if status_line else None


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_header_limits(server: str) -> None:
    """Oversized header blocks are answered 431, on HTTP/1 and (granian, h2c on) on HTTP/2."""
    http: dict[str, object] = {"server": server}
    if server == "granian":
        http["h2c"] = {"enabled": True}  # HTTP/2 without TLS is off unless asked for
    with WharfServer(storage={"inmemory": {}}, config={"http": http}) as running:
        big = {"X-Big": "a" * 600_000}
        assert httpx.get(running.url + "/v2/", headers=big).status_code == 431
        many = {f"X-Field-{i}": "x" for i in range(200)}
        assert httpx.get(running.url + "/v2/", headers=many).status_code == 431
        assert httpx.get(running.url + "/v2/", headers={"X-Ok": "a" * 8000}).status_code == 200
        assert _endless_head_status(running.host) == 431
        with httpx.Client() as client:  # the limits apply per request on a kept connection
            for _ in range(3):
                response = client.get(running.url + "/v2/", headers={"X-Ok": "a" * 50_000})
                assert response.status_code == 200
        if server != "granian":
            return
        with httpx.Client(http1=False, http2=True) as client:
            response = client.get(running.url + "/v2/", headers={"X-Big": "a" * 60_000})
            assert (response.http_version, response.status_code) == ("HTTP/2", 200)
            response = client.get(running.url + "/v2/", headers={"X-Big": "a" * 70_000})
            assert response.status_code == 431
