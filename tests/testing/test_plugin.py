"""The pytest plugin: its fixtures here, and from a project outside the source tree that
installs wharf and finds the fixtures through the ``pytest11`` entry point alone."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from wharf.client import AsyncRegistryClient, RegistryImage, copy, static
from wharf.testing import RunningRegistry, serve_in_process

ROOT = Path(__file__).resolve().parents[2]


def _push_image(registry: RunningRegistry, repository: str, tag: str) -> str:
    client = registry.client
    config = client.push_blob(repository, b"{}")
    layer = client.push_blob(repository, b"layer")
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},'
        f'"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]}}'
    ).encode()
    return client.put_manifest(
        repository, tag, manifest, "application/vnd.oci.image.manifest.v1+json"
    )


def test_registry_fixture_serves_wharf(registry: RunningRegistry) -> None:
    assert registry.url == f"http://127.0.0.1:{registry.port}"
    assert registry.root is None  # in memory
    digest = _push_image(registry, "team/app", "v1")
    answer = httpx.get(
        f"{registry.url}/v2/team/app/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert answer.status_code == 200
    assert answer.headers["docker-content-digest"] == digest
    assert registry.client.tags("team/app") == ["v1"]


@pytest.mark.wharf_registry(storage="filesystem", auth=("alice", "s3cret"))
def test_marker_sets_storage_and_auth(registry: RunningRegistry) -> None:
    assert registry.credentials == ("alice", "s3cret")
    assert httpx.get(f"{registry.url}/v2/").status_code == 401
    assert httpx.get(f"{registry.url}/v2/", auth=("alice", "s3cret")).status_code == 200
    _push_image(registry, "team/app", "v1")
    assert registry.root is not None
    assert (registry.root / "docker/registry/v2/repositories/team/app/_manifests").is_dir()


async def test_factory_starts_several(registry_factory: Callable[..., RunningRegistry]) -> None:
    source = registry_factory()
    target = registry_factory(auth=("bob", "pw"))
    assert source.port != target.port
    digest = await asyncio.to_thread(_push_image, source, "lib/app", "1.0")
    async with (
        AsyncRegistryClient(source.url) as pull,
        AsyncRegistryClient(target.url, credentials=static("bob", "pw")) as push,
    ):
        copied = await copy(
            RegistryImage(pull, "lib/app", "1.0"), RegistryImage(push, "mirror/app", "1.0")
        )
    assert copied == digest
    assert await asyncio.to_thread(target.client.manifest_digest, "mirror/app", "1.0") == digest


@pytest.mark.server
def test_registry_server_is_a_real_process(registry_server: RunningRegistry) -> None:
    assert registry_server.client.ping()
    assert registry_server.root is not None
    _push_image(registry_server, "session/app", "v1")
    assert "session/app" in registry_server.client.catalog()


def test_serve_in_process_outside_pytest() -> None:
    with serve_in_process() as registry:
        assert registry.client.ping()
        url = registry.url
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/v2/", timeout=2)


_PROJECT_TEST = textwrap.dedent(
    """
    import httpx
    import pytest
    import wharf


    def test_wharf_is_installed_here():
        print("WHARF", wharf.__file__)


    def test_push_and_pull(registry):
        digest = registry.client.push_blob("demo/app", b"hello")
        assert registry.client.get_blob("demo/app", digest) == b"hello"
        assert httpx.get(registry.url + "/v2/").status_code == 200


    @pytest.mark.wharf_registry(auth=("u", "p"))
    def test_with_auth(registry):
        assert httpx.get(registry.url + "/v2/").status_code == 401
        assert registry.client.ping()


    def test_real_process(registry_server):
        assert registry_server.client.ping()
    """
)


@pytest.mark.slow
@pytest.mark.server
def test_plugin_from_a_project_that_installs_wharf(tmp_path: Path) -> None:
    # The source as a distribution is built from it (a copy: no build files in the tree).
    source = tmp_path / "wharf-source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*cache")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name if source.exists() else _mkdir(source) / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # wharf's dependencies (and pytest) from this environment, which may itself be a venv
    # (--system-site-packages would reach past it): its site-packages directories are added
    # to the new one's path, after the new one's own, without their .pth files, so that an
    # editable wharf installed here stays out.
    inner = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = [path for path in sys.path if path.endswith("site-packages") and Path(path).is_dir()]
    (Path(inner) / "outer-environment.pth").write_text("\n".join(outer) + "\n")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    environment.pop("PYTHONPATH", None)
    # setuptools>=77 (PEP 639 metadata) in the environment itself: pip's build isolation
    # would see the outer environment's setuptools, which may be older.
    for arguments in (["setuptools>=77"], ["--no-deps", "--no-build-isolation", str(source)]):
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *arguments],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
            timeout=300,
        )
        assert install.returncode == 0, install.stderr[-3000:]
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_app.py").write_text(_PROJECT_TEST)
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-W", "error"],
        cwd=project,
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout
    installed = next(line for line in run.stdout.splitlines() if "WHARF" in line)
    assert str(venv) in installed  # the installed copy, not the source tree


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
