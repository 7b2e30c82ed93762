"""The manifest PUT's side of the protocol, and how a configuration picks its coordination."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.registry.gc.conftest import make_config
from tests.registry.gc.support import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Pusher,
    PushError,
    Tree,
    sha256,
)
from wharf.api.app import WharfApp, create_app
from wharf.config import StorageConfig
from wharf.config.load import load_config
from wharf.config.model import GcConfig
from wharf.config.operations import RedisConfig
from wharf.registry.gc import GcOptions, collect, create_coordination
from wharf.registry.gc.coordination import FileCoordination
from wharf.registry.gc.guard import default_lockdir, redis_client
from wharf.registry.gc.mark import mark
from wharf.registry.gc.progress import Progress
from wharf.registry.gc.redis_coordination import RedisCoordination
from wharf.registry.gc.safety import Freshness
from wharf.registry.gc.sweep import sweep


def image_document(config: bytes, layer: bytes) -> dict[str, object]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
    }


async def test_a_put_referencing_a_claimed_blob_fails_before_linking(
    app: WharfApp, pusher: Pusher, tree: Tree
) -> None:
    config, layer = b"{}", b"claimed layer"
    await pusher.blob("app", config)
    await pusher.blob("app", layer)
    coordination = create_coordination(app.config)
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    assert await lease.claim([sha256(layer)]) == {sha256(layer)}

    response = await pusher.client.put(
        "/v2/app/manifests/v1",
        json=image_document(config, layer),
        headers={"Content-Type": OCI_MANIFEST},
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert response.json()["errors"][0]["detail"] == {"digest": sha256(layer)}
    assert not (tree.repository("app") / "_manifests").exists()

    await lease.unclaim([sha256(layer)])
    digest, _ = await pusher.manifest("app", "v1", image_document(config, layer), OCI_MANIFEST)
    # Pushed during the epoch: nothing it needs can be claimed any more.
    assert await lease.claim([digest, sha256(config), sha256(layer)]) == set()
    await lease.finish()


async def test_a_put_of_a_manifest_being_removed_is_unavailable(
    app: WharfApp, pusher: Pusher
) -> None:
    config, layer = b"{}", b"layer"
    await pusher.blob("app", config)
    await pusher.blob("app", layer)
    document = image_document(config, layer)
    digest, body = await pusher.manifest("app", None, document, OCI_MANIFEST)
    coordination = create_coordination(app.config)
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    await lease.claim([digest])

    response = await pusher.client.put(
        "/v2/app/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )

    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    await lease.finish()


async def test_without_its_redis_a_put_fails_closed(tmp_path: Path) -> None:
    from tests.support.server import free_port

    config = make_config(tmp_path / "data", tmp_path / "gc", redis=f"127.0.0.1:{free_port()}")
    app = create_app(config)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wharf") as client:
            response = await client.put(
                "/v2/app/manifests/v1",
                json=image_document(b"{}", b"layer"),
                headers={"Content-Type": OCI_MANIFEST},
            )
        assert response.status_code == 503
        error = response.json()["errors"][0]
        assert error["message"] == "garbage-collection coordination unavailable"
        assert not (tmp_path / "data" / "docker").exists(), "nothing stored"
    finally:
        await app.aclose()


async def test_a_pinned_orphan_survives_the_sweep(
    app: WharfApp, pusher: Pusher, tree: Tree
) -> None:
    orphan = await pusher.blob("app", b"about to be referenced")
    coordination = create_coordination(app.config)
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    ticket = await coordination.start_write([orphan])
    freshness = Freshness(datetime.now(UTC))
    marked = await mark(app.registry.driver, freshness, False, Progress())

    result = await sweep(app.registry.driver, marked, freshness, lease, Progress())

    assert tree.blob(orphan).exists()
    assert result.in_use == 1
    await coordination.end_write(ticket)
    await lease.finish()


def test_storage_gc_section(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        textwrap.dedent(
            """
            version: 0.1
            storage:
              filesystem:
                rootdirectory: /srv/registry
              gc:
                enabled: true
                interval: 6h
                grace: 30m
                deleteuntagged: true
                lockdir: /run/wharf-gc
            """
        )
    )
    gc = load_config(str(path), {}).storage.gc
    assert gc == GcConfig(
        enabled=True,
        interval=timedelta(hours=6),
        grace=timedelta(minutes=30),
        delete_untagged=True,
        lockdir="/run/wharf-gc",
    )
    environment = {"REGISTRY_STORAGE_GC_GRACE": "2h", "REGISTRY_STORAGE_GC_ENABLED": "false"}
    overridden = load_config(str(path), environment).storage.gc
    assert overridden.grace == timedelta(hours=2)
    assert not overridden.enabled
    assert load_config(None, {}).storage.gc == GcConfig()


def test_the_redis_client_follows_the_redis_section() -> None:
    client = redis_client(
        RedisConfig(
            "cache:6380", username="u", password="p", db=2, dial_timeout=timedelta(seconds=0.25)
        )
    )
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache", 6380, 2)
        assert (kwargs["username"], kwargs["password"]) == ("u", "p")
        assert kwargs["socket_connect_timeout"] == 0.25
    finally:
        client.close()


def test_every_process_on_one_storage_finds_the_same_lockdir(tmp_path: Path) -> None:
    def storage(root: Path, lockdir: str = "") -> StorageConfig:
        return StorageConfig(
            driver="filesystem",
            parameters={"rootdirectory": str(root)},
            gc=GcConfig(lockdir=lockdir),
        )

    (tmp_path / "a").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    same = default_lockdir(storage(tmp_path / "a"))
    assert default_lockdir(storage(tmp_path / "link")) == same
    assert default_lockdir(storage(tmp_path / "b")) != same
    assert default_lockdir(storage(tmp_path / "a", "/run/x")) == "/run/x"
    private = default_lockdir(StorageConfig(driver="inmemory", parameters={}))
    assert Path(private).is_dir()


async def test_redis_configured_means_redis_coordination(tmp_path: Path) -> None:
    found = create_coordination(make_config(tmp_path, tmp_path / "gc", redis="x:1"))
    assert isinstance(found, RedisCoordination)
    await found.close()
    assert isinstance(create_coordination(make_config(tmp_path, tmp_path / "gc")), FileCoordination)


async def test_a_pinned_manifest_keeps_its_doomed_children_and_referrers(
    app: WharfApp, pusher: Pusher, tree: Tree
) -> None:
    amd = await pusher.image("app", None, layers=[b"amd"], seed="amd")
    index = await pusher.index("app", None, [amd])
    signature = await pusher.image(
        "app", None, layers=[b"sig"], subject=index, artifact_type="application/x-sig"
    )
    other = await pusher.image("app", None, layers=[b"other"], seed="other")
    coordination = create_coordination(app.config)
    lease = await coordination.acquire()
    assert lease is not None
    await lease.start_epoch()
    freshness = Freshness(datetime.now(UTC))
    marked = await mark(app.registry.driver, freshness, True, Progress())
    assert len(marked.doomed) == 4
    # A push tags the index again while the collection runs.
    ticket = await coordination.start_write([index.digest])

    result = await sweep(app.registry.driver, marked, freshness, lease, Progress())

    assert result.manifests_removed == [f"app@{other.digest}"]
    assert result.manifests_spared == 3
    for pushed in (index, amd, signature):
        assert tree.revision("app", pushed.digest).exists()
        for digest in pushed.all_blobs:
            assert tree.blob(digest).exists()
    assert tree.referrer("app", index.digest, signature.digest).exists()
    assert not tree.blob(other.digest).exists()
    await coordination.end_write(ticket)
    await lease.finish()


async def test_a_push_after_another_process_collected_does_not_trust_its_caches(
    app: WharfApp, pusher: Pusher, tree: Tree
) -> None:
    child = await pusher.image("app", None, layers=[b"child"], seed="child")
    await pusher.pulls(child)  # this worker now caches "child exists"
    coordination = create_coordination(app.config)
    # A collector in another process: it cannot reach this worker's caches directly.
    result = await collect(app.registry.driver, coordination, GcOptions(delete_untagged=True))
    assert result.sweep.manifests_removed == [f"app@{child.digest}"]

    with pytest.raises(PushError) as refused:
        await pusher.index("app", "v1", [child])

    assert refused.value.codes == ["MANIFEST_BLOB_UNKNOWN"]
