"""Drive real container clients (skopeo, podman, buildah) from tests, isolated from the host.

Each wrapper gets its own temporary directory and never reads the user's or the machine's
configuration: a permissive ``policy.json`` is passed explicitly, registries.conf and
storage.conf are written into the directory and named through the environment, and HOME,
XDG_* and TMPDIR point inside it. Only ``--tls-verify=false`` talks to the plain-HTTP test
registries; nothing is marked insecure globally.

A failing command raises :class:`ClientError` carrying the command line, its output and, when
a server was given, the tail of that server's log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, Self

__all__ = ["Buildah", "ClientError", "Podman", "Registry", "Skopeo", "binary"]

POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
REGISTRIES_CONF = 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'

#: Registry environment variables the clients must not inherit.
_DROPPED_ENV = ("REGISTRY_AUTH_FILE", "CONTAINERS_CONF", "CONTAINER_HOST", "DOCKER_CONFIG")


class Registry(Protocol):
    """What the tests need of a running registry: WharfServer or ReferenceRegistry."""

    @property
    def url(self) -> str: ...

    @property
    def host(self) -> str: ...

    def log(self) -> str: ...


def binary(name: str) -> str | None:
    """The path of a client executable, or None when it is not installed."""
    return shutil.which(name)


class ClientError(AssertionError):
    """A client command exited with an error."""

    def __init__(self, command: Sequence[str], result: subprocess.CompletedProcess[str], log: str):
        self.command = list(command)
        self.result = result
        message = (
            f"$ {' '.join(command)}\nexit status {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
        )
        if log:
            message += f"\n--- server log (tail) ---\n{log[-4000:]}"
        super().__init__(message)


class _Client:
    """A command-line client with an isolated home in ``workdir``."""

    program = ""

    def __init__(self, workdir: Path, server: Registry | None = None, timeout: float = 300) -> None:
        path = binary(self.program)
        if path is None:
            raise FileNotFoundError(f"{self.program} is not installed")
        self.path = path
        self.workdir = workdir
        self.server = server
        self.timeout = timeout
        for name in ("home", "config", "data", "run", "tmp"):
            (workdir / name).mkdir(parents=True, exist_ok=True)
        (workdir / "run").chmod(0o700)
        self.policy = workdir / "policy.json"
        self.policy.write_text(json.dumps(POLICY))
        self.registries_conf = workdir / "registries.conf"
        self.registries_conf.write_text(REGISTRIES_CONF)
        self.auth_file = workdir / "auth.json"
        self.auth_file.write_text('{"auths": {}}')
        env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
        env.update(
            HOME=str(workdir / "home"),
            XDG_CONFIG_HOME=str(workdir / "config"),
            XDG_DATA_HOME=str(workdir / "data"),
            XDG_RUNTIME_DIR=str(workdir / "run"),
            TMPDIR=str(workdir / "tmp"),
            CONTAINERS_REGISTRIES_CONF=str(self.registries_conf),
            REGISTRIES_CONFIG_PATH=str(self.registries_conf),
            REGISTRY_AUTH_FILE=str(self.auth_file),
        )
        self.env = env

    def global_args(self) -> list[str]:
        return []

    def close(self) -> None:
        """Remove what the client keeps outside ``workdir``."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [self.path, *self.global_args(), *args]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=self.timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and result.returncode != 0:
            raise ClientError(command, result, self.server.log() if self.server else "")
        return result


def _tls(flag: str, *references: str) -> list[str]:
    """``--<flag>=false`` when one of the references names a registry."""
    return [f"--{flag}=false"] if any(ref.startswith("docker://") for ref in references) else []


class Skopeo(_Client):
    program = "skopeo"

    def global_args(self) -> list[str]:
        return ["--policy", str(self.policy), "--tmpdir", str(self.workdir / "tmp")]

    def copy(
        self,
        source: str,
        destination: str,
        *args: str,
        all_images: bool = False,
        preserve_digests: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``skopeo copy``; by default refuses any conversion so digests survive."""
        flags = [*_tls("src-tls-verify", source), *_tls("dest-tls-verify", destination)]
        if all_images:
            flags.append("--all")
        if preserve_digests:
            flags.append("--preserve-digests")
        return self.run("copy", "--retry-times=0", *flags, *args, source, destination)

    def inspect_raw(self, reference: str, *args: str) -> bytes:
        """The manifest bytes exactly as the registry serves them."""
        result = self.run("inspect", "--raw", *_tls("tls-verify", reference), *args, reference)
        return result.stdout.encode()

    def inspect(self, reference: str, *args: str) -> dict[str, Any]:
        result = self.run("inspect", *_tls("tls-verify", reference), *args, reference)
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def list_tags(self, repository: str, *args: str) -> list[str]:
        """``args`` may carry credentials: ``--creds user:password``."""
        result = self.run("list-tags", *_tls("tls-verify", repository), *args, repository)
        tags: list[str] = json.loads(result.stdout)["Tags"]
        return tags

    def delete(self, reference: str) -> subprocess.CompletedProcess[str]:
        return self.run("delete", *_tls("tls-verify", reference), reference)


class _StorageClient(_Client):
    """A client with its own containers-storage (vfs driver) under ``workdir``."""

    def __init__(self, workdir: Path, server: Registry | None = None, timeout: float = 300) -> None:
        super().__init__(workdir, server, timeout)
        self.root = workdir / "storage"
        # podman refuses a run root longer than 50 characters (socket paths live under it).
        self._runroot = tempfile.TemporaryDirectory(prefix="wharf-run-", dir="/tmp")
        self.runroot = Path(self._runroot.name)
        self.storage_conf = workdir / "storage.conf"
        self.storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.root}"\nrunroot = "{self.runroot}"\n'
        )
        self.env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)

    def close(self) -> None:
        self._runroot.cleanup()

    def global_args(self) -> list[str]:
        return [
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
        ]


class Podman(_StorageClient):
    """podman for image commands only: no container is ever run."""

    program = "podman"

    def __init__(self, workdir: Path, server: Registry | None = None, timeout: float = 300) -> None:
        super().__init__(workdir, server, timeout)
        containers_conf = workdir / "containers.conf"
        containers_conf.write_text(
            '[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\n'
        )
        self.env["CONTAINERS_CONF"] = str(containers_conf)

    def global_args(self) -> list[str]:
        return [
            *super().global_args(),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
            "--tmpdir",
            str(self.workdir / "tmp"),
        ]

    def image_inspect(self, reference: str) -> dict[str, Any]:
        result = self.run("image", "inspect", reference)
        document: dict[str, Any] = json.loads(result.stdout)[0]
        return document


class Buildah(_StorageClient):
    program = "buildah"

    def image_inspect(self, reference: str) -> dict[str, Any]:
        result = self.run("inspect", "--type", "image", reference)
        document: dict[str, Any] = json.loads(result.stdout)
        return document
