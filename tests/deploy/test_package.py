"""The published distribution: its metadata (checked by twine too), what the wheel and sdist
hold, and an install with no extras into a new virtual environment serving a filesystem
registry, refusing with one line each configuration that needs an extra it lacks."""

from __future__ import annotations

import email
import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from tests.deploy.conftest import Dist, clean_environment
from tests.support.server import free_port, wait_for_http

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_twine_finds_the_metadata_valid(dist: Dist) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist.wheel), str(dist.sdist)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2


def test_the_metadata_names_the_license_extras_and_urls(dist: Dist) -> None:
    metadata = _metadata(dist.wheel)
    assert metadata["Name"] == "wharf-registry"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    assert metadata["Requires-Python"] == ">=3.11"
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    assert {"s3", "azure", "gcs", "redis", "granian", "tracing", "all", "test"} <= set(
        metadata.get_all("Provides-Extra") or []
    )
    requires = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    core = [r.name.lower() for r in requires if "extra" not in str(r.marker)]
    assert core == [
        "pyyaml",
        "uvicorn",
        "uvloop",
        "httptools",
        "bcrypt",
        "cryptography",
        "joserfc",
        "httpx",
        "httpcore",
    ]
    for package, extra in [
        ("boto3", "s3"),
        ("azure-storage-blob", "azure"),
        ("google-auth", "gcs"),
        ("redis", "redis"),
        ("granian", "granian"),
        ("opentelemetry-sdk", "tracing"),
    ]:
        assert any(
            r.name == package and r.marker and r.marker.evaluate({"extra": extra}) for r in requires
        )


def test_the_wheel_and_sdist_hold_the_package_and_the_license(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "wharf = wharf.cli:main" in archive.read(entry_points).decode()
    assert {"wharf/__init__.py", "wharf/py.typed", "wharf/extras.py"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    with tarfile.open(dist.sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        sdist = {n.removeprefix(top + "/") for n in archive.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "src/wharf/cli.py"} <= sdist


@pytest.fixture(scope="module")
def bare_venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel and no extras (the core from the index)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(dist.wheel)],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return venv


def _installed(venv: Path) -> set[str]:
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json"],
        capture_output=True,
        text=True,
        env=clean_environment(),
        check=True,
    )
    return {p["name"].lower() for p in json.loads(listed.stdout)}


@pytest.mark.slow
def test_no_extras_installs_the_core_alone(bare_venv: Path, dist: Dist) -> None:
    installed = _installed(bare_venv)
    assert "wharf-registry" in installed
    optional = {
        "boto3", "botocore", "azure-storage-blob", "google-auth", "redis", "granian",
        "opentelemetry-sdk",
    }  # fmt: skip
    assert not installed & optional
    version = subprocess.run(
        [str(bare_venv / "bin" / "wharf"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == f"wharf {_metadata(dist.wheel)['Version']}"


@pytest.fixture
def served(bare_venv: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        f"version: 0.1\nlog: {{level: warn}}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}', secret: s, workers: 2}}\n"
    )
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [str(bare_venv / "bin" / "wharf"), "serve", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=clean_environment(),
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/v2/", process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
@pytest.mark.server
def test_no_extras_serves_a_filesystem_registry(served: str) -> None:
    with httpx.Client(base_url=served) as http:
        blobs = [b'{"architecture":"amd64","os":"linux"}', b"a layer" * 1000]
        digests = []
        for blob in blobs:
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            started = http.post("/v2/bare/blobs/uploads/")
            assert started.status_code == 202
            patched = http.patch(started.headers["Location"], content=blob)
            assert patched.status_code == 202
            location = patched.headers["Location"]
            done = http.put(f"{location}{'&' if '?' in location else '?'}digest={digest}")
            assert done.status_code == 201, done.text
            digests.append(digest)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digests[0],
                    "size": len(blobs[0]),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": digests[1],
                        "size": len(blobs[1]),
                    }
                ],
            }
        ).encode()
        put = http.put(
            "/v2/bare/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
        got = http.get("/v2/bare/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert got.content == manifest
        assert http.get(f"/v2/bare/blobs/{digests[1]}").content == blobs[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("document", "environ", "extra"),
    [
        ("storage: {s3: {bucket: b, region: r}}", {}, "s3"),
        ("redis: {addr: '127.0.0.1:6379'}", {}, "redis"),
        ("http: {server: granian}", {}, "granian"),
        ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "tracing"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    bare_venv: Path, tmp_path: Path, document: str, environ: dict[str, str], extra: str
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\n{document}\n")
    result = subprocess.run(
        [str(bare_venv / "bin" / "wharf"), "serve", str(config)],
        capture_output=True,
        text=True,
        env=clean_environment(REGISTRY_HTTP_ADDR="127.0.0.1:0", **environ),
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wharf: error: ")
    assert lines[0].endswith(f"not installed: pip install 'wharf-registry[{extra}]'")
