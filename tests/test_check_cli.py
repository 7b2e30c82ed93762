"""``wharf check``: its output, exit statuses and repairs, and a check beside a served registry
that clients push to."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.registry.gc.support import Pusher, Tree, hex_of
from tests.support.server import WharfServer
from wharf.api.app import create_app
from wharf.cli import main
from wharf.coherence.generations import Generations
from wharf.coherence.shared import shared_state_path
from wharf.config import StorageConfig
from wharf.config.load import load_config
from wharf.registry.check import CheckReport, check_storage
from wharf.storage.driver.factory import create_driver

SRC = Path(__file__).resolve().parents[1] / "src"


def write_config(tmp_path: Path) -> Path:
    document = {
        "version": "0.1",
        "log": {"level": "warn"},
        "storage": {
            "filesystem": {"rootdirectory": str(tmp_path / "data")},
            "delete": {"enabled": True},
        },
        "http": {"secret": "test"},
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def populate(config: Path) -> dict[str, str]:
    """A tagged image and a blob nothing references."""

    async def push() -> dict[str, str]:
        app = create_app(load_config(str(config), {}))
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as http:
                pusher = Pusher(http)
                image = await pusher.image("app", "v1", layers=[b"base", b"app"])
                orphan = await pusher.blob("app", b"orphan")
                return {"image": image.digest, "layer": image.blobs[1], "orphan": orphan}
        finally:
            await app.aclose()

    return asyncio.run(push())


def wharf(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "WHARF_"))}
    clean["PYTHONPATH"] = os.pathsep.join([str(SRC), clean.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "wharf", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
        check=False,
    )


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_clean_store_exits_0(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    populate(config)

    done = wharf("check", str(config))

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("checked 5 blobs (")
    assert ", 1 repository, 4 layer links, 1 manifest (3 references), 1 tag " in lines[0]
    assert lines[1:] == ["no problems found"]
    # Not a terminal: plain progress lines.
    assert "checking blobs: done, 5" in done.stderr
    assert "checking repositories (1)" in done.stderr


def test_problems_exit_1_until_repaired(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pushed = populate(config)
    tree = Tree(tmp_path / "data")
    flip(tree.blob(pushed["orphan"]))
    blob_path = f"/docker/registry/v2/blobs/sha256/{hex_of(pushed['orphan'])[:2]}/"
    blob_path += f"{hex_of(pushed['orphan'])}/data"

    done = wharf("check", str(config))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"blob-corrupt {blob_path}: its 6 bytes hash to sha256:")
    assert lines[1].startswith("layer-link-dangling /docker/registry/v2/repositories/app/")
    assert lines[-1] == "found 2 problems: 1 blob-corrupt, 1 layer-link-dangling"
    assert tree.blob(pushed["orphan"]).exists()

    done = wharf("check", "--json", str(config))
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["clean"] is False
    assert report["unresolved"] == 2
    assert report["stats"]["blobs_corrupt"] == 1
    assert [(p["kind"], p["repaired"]) for p in report["problems"]] == [
        ("blob-corrupt", False),
        ("layer-link-dangling", False),
    ]
    assert report["problems"][0]["path"] == blob_path

    done = wharf("check", "--repair", str(config))
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[0].endswith("[repaired: removed]")
    assert "found 2 problems: 1 blob-corrupt, 1 layer-link-dangling; repaired 2" in done.stdout
    assert not tree.blob(pushed["orphan"]).exists()

    assert wharf("check", str(config)).returncode == 0


def test_a_problem_repair_cannot_mend_keeps_exit_1(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pushed = populate(config)
    tree = Tree(tmp_path / "data")
    flip(tree.blob(pushed["layer"]))

    status = main(["check", "--repair", "--json", str(config)])

    assert status == 1
    assert not tree.blob(pushed["layer"]).exists()
    assert tree.blob(pushed["orphan"]).exists(), "a blob that verifies stays"
    assert main(["check", str(config)]) == 1  # the image's missing layer: push it again


def test_repairs_reach_the_caches_of_a_registry_serving_the_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    pushed = populate(config)
    flip(Tree(tmp_path / "data").blob(pushed["orphan"]))
    # Where a registry serving the storage on this machine keeps its change tokens.
    loaded = load_config(str(config), {})
    generations = Generations(shared_state_path(loaded.storage))
    before = generations.token("app")

    assert main(["check", str(config)]) == 1
    assert generations.token("app") == before, "a check without repair changes nothing"

    assert main(["check", "--repair", str(config)]) == 0
    assert generations.token("app") != before
    generations.close()
    capsys.readouterr()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": "0.1", "storage": {"inmemory": {}}}, "in-memory storage cannot be checked"),
        ({"version": "0.1", "storage": {"filesystem": {}, "nosuch": 1}}, "storage"),
    ],
)
def test_configuration_errors_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    document: dict[str, object],
    message: str,
) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))

    assert main(["check", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_missing_configuration_and_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["check", str(tmp_path / "absent.yml")]) == 2
    assert "cannot read configuration" in capsys.readouterr().err
    monkeypatch.delenv("REGISTRY_CONFIGURATION_PATH", raising=False)
    assert main(["check"]) == 2, "never the defaults: ./wharf-data would pass for clean"
    assert "the registry's config.yml is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--jobs", "0", str(tmp_path / "absent.yml")])
    assert exit_info.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err


@pytest.mark.server
@pytest.mark.slow
async def test_a_check_beside_a_served_registry_finds_no_false_problems() -> None:
    """Clients push, move tags, add referrers, delete manifests and leave uploads open while
    checks run (half of them repairing), each with its default pause before a second look."""
    # Upload purging may remove a session whose startedat is being written (it sees a
    # directory without files): a failed push, whatever the check does, so it is off here.
    purging = {"maintenance": {"uploadpurging": {"enabled": False}}}
    with WharfServer(workers=2, config={"storage": purging}) as server:
        storage = StorageConfig(driver="filesystem", parameters={"rootdirectory": str(server.root)})
        driver = create_driver(storage)
        stop, started = asyncio.Event(), asyncio.Event()
        pushed = 0

        async def client(number: int) -> int:
            nonlocal pushed
            pushes = 0
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                pusher = Pusher(http)
                previous = None
                while not stop.is_set():
                    name = f"team/app{number}"
                    seed = f"{number}-{pushes}"
                    image = await pusher.image(
                        name, "latest", layers=[seed.encode() * 1000, b"shared base"], seed=seed
                    )
                    await pusher.image(
                        name, None, layers=[seed.encode()], subject=image, artifact_type="x/sig"
                    )
                    if previous is not None and pushes % 2:
                        response = await http.delete(f"/v2/{name}/manifests/{previous}")
                        assert response.status_code == 202, response.text
                    if pushes % 5 == 0:
                        response = await http.post(f"/v2/{name}/blobs/uploads/")
                        assert response.status_code == 202
                    previous = image.digest
                    pushes += 1
                    pushed += 1
                    started.set()
            return pushes

        clients = [asyncio.ensure_future(client(n)) for n in range(3)]
        try:
            await started.wait()
            reports: list[CheckReport] = []
            deadline = asyncio.get_running_loop().time() + 60
            while len(reports) < 4 or pushed < 40:
                assert asyncio.get_running_loop().time() < deadline
                # Every other one with repair: nothing is found, so nothing is touched.
                reports.append(await check_storage(driver, repair=len(reports) % 2 == 1))
            stop.set()
            pushes = await asyncio.gather(*clients)
        finally:
            stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            await driver.close()

        for report in reports:
            assert report.clean, [problem.line() for problem in report.problems]
        assert reports[-1].stats.revisions >= 6
        assert reports[-1].stats.tag_index_stale > 0  # deletes happened meanwhile
        assert sum(pushes) >= 40
        # At rest, the whole store is sound and the command line agrees.
        done = await asyncio.to_thread(wharf, "check", str(server.config_path))
        assert done.returncode == 0, done.stdout + done.stderr
