"""Azurite, Microsoft's Azure Storage emulator, for tests: started on a free loopback port on
first use and stopped after the session.

``.ci/run`` installs it with npm into ``.ci/node`` (``npm install --prefix .ci/node
azurite``); ``$WHARF_AZURITE`` may name another ``azurite-blob``. It runs under Node.js as a
child process with its data in a temporary directory, checks shared-key signatures and SAS
tokens, and accepts the well-known development account ``devstoreaccount1``. wharf reaches it
the way Azure's users point SDKs at an emulator: through ``serviceurl``.

Without Azurite its tests are skipped with the reason, except under CI (``$CI``), where they
fail: CI installs it, so a missing one is a broken setup, not an optional extra. Import the
fixture into a ``conftest.py``::

    from tests.support.azurite import azurite_server  # noqa: F401
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import free_port, wait_for_http

__all__ = ["ACCOUNT", "KEY", "AzuriteServer", "azurite_binary", "azurite_server", "start_azurite"]

#: Azurite's development account and its published key.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_ROOT = Path(__file__).resolve().parents[2]
_STARTUP_TIMEOUT = 60.0


def azurite_binary() -> str | None:
    """``$WHARF_AZURITE``, the one ``.ci/run`` installs, or one on the PATH."""
    configured = os.environ.get("WHARF_AZURITE")
    if configured:
        return configured
    local = _ROOT / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


@dataclass(frozen=True)
class AzuriteServer:
    #: The blob service URL, account included: what ``serviceurl`` is set to.
    endpoint: str
    log: Path

    def service(self, endpoint: str | None = None) -> Any:
        """A blob service client of the emulator (or of ``endpoint``, a proxy before it)."""
        from azure.storage.blob import BlobServiceClient

        credential = {"account_name": ACCOUNT, "account_key": KEY}
        return BlobServiceClient(endpoint or self.endpoint, credential=credential)

    @functools.cached_property
    def _service(self) -> Any:
        return self.service()

    def container(self, name: str) -> Any:
        return self._service.get_container_client(name)

    def create_container(self) -> str:
        name = f"wharf-{uuid.uuid4().hex[:16]}"
        self.container(name).create_container()
        return name

    def parameters(self, container: str, **extra: Any) -> dict[str, Any]:
        """``storage: azure:`` parameters for ``container`` on this emulator."""
        return {
            "accountname": ACCOUNT,
            "accountkey": KEY,
            "container": container,
            "serviceurl": self.endpoint,
            **extra,
        }

    def fresh_parameters(self, **extra: Any) -> dict[str, Any]:
        """Parameters of a new container, below a root directory (as deployments use one)."""
        return self.parameters(self.create_container(), rootdirectory="/registry", **extra)

    def names(self, container: str, prefix: str = "") -> list[str]:
        """Every committed blob's name in ``container``."""
        return [b.name for b in self.container(container).list_blobs(name_starts_with=prefix)]

    def staged(self, container: str, prefix: str = "") -> list[str]:
        """Names of blobs holding only staged (uncommitted) blocks."""
        client = self.container(container)
        every = client.list_blobs(name_starts_with=prefix, include=["uncommittedblobs"])
        committed = set(self.names(container, prefix))
        return [b.name for b in every if b.name not in committed]


@contextlib.contextmanager
def start_azurite(workdir: Path) -> Iterator[AzuriteServer]:
    binary = azurite_binary()
    if binary is None:
        reason = "Azurite is not installed (npm install --prefix .ci/node azurite)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": .ci/run installs it")
        pytest.skip(reason)
    port = free_port()
    log = workdir / "azurite.log"
    command = [
        binary, "--silent", "--skipApiVersionCheck", "--disableTelemetry",
        "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workdir / "data"),
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
        endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
        try:
            wait_for_http(f"{endpoint}?comp=list", _STARTUP_TIMEOUT, process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"Azurite did not start: {exc}\n{log.read_text()[-3000:]}") from exc
        yield AzuriteServer(endpoint, log)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server
