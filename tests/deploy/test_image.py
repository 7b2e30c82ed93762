"""The container image: deploy/Containerfile built with buildah on a Debian root that
mmdebstrap makes from Debian's packages (no image is pulled from anywhere), the wheel and its
dependencies installed from a local wheelhouse; then the image's own command, user and
environment run from its file system under chroot (no container runtime), serving a skopeo
push and pull, answering its health check, stopping on SIGTERM.

The base and the image are built once per module (about a minute); run these alone with
``pytest -m image``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import ROOT, Dist, clean_environment
from tests.support.clients import Buildah, Skopeo, binary
from tests.support.images import build_image, read_layout_index, sha256_digest
from tests.support.server import free_port, wait_for_http

#: Debian's own Python, the same release as the base image's, resolves the wheelhouse: a
#: marker such as ``python_full_version < "3.11.3"`` must be judged as the image judges it.
HOST_PYTHON = "/usr/bin/python3"
TOOLS = ("mmdebstrap", "buildah", "skopeo", "unshare", "chroot")

pytestmark = [
    pytest.mark.image,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap, chroot and mounts need root"),
    pytest.mark.skipif(
        any(binary(tool) is None for tool in TOOLS),
        reason=f"needs {', '.join(TOOLS)} (.ci/run installs them)",
    ),
]


def _suite() -> str:
    """The host's Debian release: the base image is made from the same one."""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME=") and line.partition("=")[2]:
                return line.partition("=")[2].strip('"')
    return "bookworm"


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    workdir = tmp_path_factory.mktemp("buildah")
    with Buildah(workdir, timeout=900) as client:
        yield client
    # vfs keeps every layer as a whole copy of the root: hundreds of MB.
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def base_image(buildah: Buildah, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Debian with python3 and python3-venv, made by mmdebstrap and imported into buildah."""
    suite = _suite()
    tarball = tmp_path_factory.mktemp("base") / "root.tar"
    result = subprocess.run(
        [
            "mmdebstrap",
            "--variant=essential",
            "--include=python3,python3-venv,passwd",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            suite,
            str(tarball),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    container = buildah.run("from", "scratch").stdout.strip()
    buildah.run("add", container, str(tarball), "/")
    name = f"localhost/wharf-base:{suite}"
    buildah.run("commit", "--rm", container, name)
    tarball.unlink()
    return name


@pytest.fixture(scope="module")
def image(
    buildah: Buildah, base_image: str, dist: Dist, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """deploy/Containerfile with its defaults (every extra), offline from a wheelhouse."""
    if not Path(HOST_PYTHON).exists():
        pytest.skip(f"{HOST_PYTHON} (Debian's python3 with python3-venv) resolves the wheels")
    context = tmp_path_factory.mktemp("context")
    wheels = context / "dist"
    wheels.mkdir()
    shutil.copy(dist.wheel, wheels)
    shutil.copytree(ROOT / "deploy", context / "deploy")
    venv = tmp_path_factory.mktemp("wheelhouse-venv")
    subprocess.run([HOST_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = str(venv / "bin" / "pip")
    result = subprocess.run(
        [pip, "wheel", "-q", "--wheel-dir", str(wheels), f"{dist.wheel}[all]"],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    shutil.rmtree(venv)
    name = "localhost/wharf:test"
    buildah.run(
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--file",
        str(context / "deploy" / "Containerfile"),
        "--build-arg",
        f"BASE={base_image}",
        "--build-arg",
        "PIP_OPTIONS=--no-index --find-links /tmp/wheels",
        "--tag",
        name,
        str(context),
    )
    shutil.rmtree(context)
    return name


def _config(buildah: Buildah, image: str) -> dict[str, Any]:
    config: dict[str, Any] = buildah.image_inspect(image)["Docker"]["config"]
    return config


def test_the_image_is_laid_out_as_distributions(buildah: Buildah, image: str) -> None:
    config = _config(buildah, image)
    assert config["User"] == "wharf"
    assert set(config["ExposedPorts"]) == {"5000/tcp"}
    assert set(config["Volumes"]) == {"/var/lib/registry"}
    assert config["Entrypoint"] == ["wharf"]
    assert config["Cmd"] == ["serve", "/etc/distribution/config.yml"]
    assert config["Healthcheck"]["Test"][0] == "CMD"


@dataclass
class Rootfs:
    path: Path
    user: str  # uid:gid
    environment: list[str]
    workdir: str
    command: list[str]


@pytest.fixture
def rootfs(buildah: Buildah, image: str) -> Iterator[Rootfs]:
    """The image's file system, mounted (a directory, under vfs), and how it runs."""
    config = _config(buildah, image)
    container = buildah.run("from", image).stdout.strip()
    try:
        path = Path(buildah.run("mount", container).stdout.strip())
        users = {
            line.split(":")[0]: line.split(":")
            for line in (path / "etc" / "passwd").read_text().splitlines()
        }
        entry = users[config["User"]]
        yield Rootfs(
            path,
            f"{entry[2]}:{entry[3]}",
            list(config["Env"]),
            config["WorkingDir"] or "/",
            [*config["Entrypoint"], *config["Cmd"]],
        )
    finally:
        buildah.run("umount", container, check=False)
        buildah.run("rm", container, check=False)


#: In a mount namespace of its own: /proc, the host's /dev with a /dev/shm of its own, then
#: the image's command as the image's user, with the image's environment alone.
_RUN = """
set -e
root=$1; user=$2; workdir=$3; shift 3
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
exec chroot --userspec="$user" "$root" /usr/bin/env -i -C "$workdir" "$@"
"""


def _in_image(rootfs: Rootfs, *command: str, environment: tuple[str, ...] = ()) -> list[str]:
    return [
        "unshare",
        "--mount",
        "--fork",
        "sh",
        "-c",
        _RUN,
        "sh",
        str(rootfs.path),
        rootfs.user,
        rootfs.workdir,
        *rootfs.environment,
        *environment,
        *command,
    ]


@contextlib.contextmanager
def _serving(rootfs: Rootfs, address: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            _in_image(rootfs, *rootfs.command, environment=(f"REGISTRY_HTTP_ADDR={address}",)),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_the_image_serves_a_push_and_a_pull(rootfs: Rootfs, tmp_path: Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    log = tmp_path / "wharf.log"
    with _serving(rootfs, address, log) as process:
        try:
            wait_for_http(f"http://{address}/v2/", timeout=60, process=process)
        except (RuntimeError, TimeoutError) as error:
            raise AssertionError(f"{error}\n{log.read_text()[-4000:]}") from None
        built = build_image(tmp_path / "source", tag="v1", layers=3, layer_size=200_000)
        remote = f"docker://{address}/image-check/app:v1"
        with Skopeo(tmp_path / "skopeo") as skopeo:
            skopeo.copy(built.source, remote)
            assert sha256_digest(skopeo.inspect_raw(remote)) == built.digest
            back = tmp_path / "back"
            skopeo.copy(remote, f"oci:{back}:v1")
        (entry,) = read_layout_index(back)["manifests"]
        assert entry["digest"] == built.digest
        for digest in built.blob_digests:
            blob = back / "blobs" / "sha256" / digest.removeprefix("sha256:")
            assert sha256_digest(blob.read_bytes()) == digest

        # The image's health check, as a runtime would run it, with the same environment.
        check = subprocess.run(
            _in_image(
                rootfs,
                "/opt/wharf/bin/python",
                "/opt/wharf/healthcheck.py",
                environment=(f"REGISTRY_HTTP_ADDR={address}",),
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-4000:]

    # Written into the volume, by the image's unprivileged user.
    repository = rootfs.path / "var/lib/registry/docker/registry/v2/repositories/image-check/app"
    assert repository.is_dir()
    uid = int(rootfs.user.partition(":")[0])
    assert uid != 0
    assert repository.stat().st_uid == uid
    text = log.read_text()
    assert "listening on" in text
    assert "Traceback" not in text


def test_the_image_has_every_extra(rootfs: Rootfs) -> None:
    modules = "boto3, redis, granian, azure.storage.blob, opentelemetry.sdk.trace"
    result = subprocess.run(
        _in_image(rootfs, "/opt/wharf/bin/python", "-c", f"import {modules}"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sys.version_info >= (3, 11)
