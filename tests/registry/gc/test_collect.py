"""Mark and sweep over content pushed through the API: what stays, what goes, what goes with it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.registry.gc.conftest import Collect
from tests.registry.gc.support import Pusher, Tree, sha256
from tests.support.urls import with_query
from wharf.api.app import WharfApp

pytestmark = pytest.mark.asyncio

HOUR = timedelta(hours=1)


def layer(name: str) -> bytes:
    return f"layer {name} ".encode() * 64


async def test_tagged_image_stays_and_orphan_blob_goes(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    image = await pusher.image("app", "v1", layers=[layer("a"), layer("b")])
    orphan = await pusher.blob("app", b"uploaded, never referenced")

    result = await gc()

    await pusher.pulls(image, "v1")
    assert not tree.blob(orphan).exists()
    assert not tree.layer("app", orphan).exists(), "the swept blob's link goes with it"
    assert [str(d) for d in result.sweep.blobs_removed] == [orphan]
    assert result.sweep.bytes_removed == len(b"uploaded, never referenced")
    assert result.sweep.links_removed == 1
    assert result.mark.repositories == 1
    assert result.mark.manifests == 1


async def test_untagged_manifest_stays_without_delete_untagged(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    old = await pusher.image("app", "latest", layers=[layer("base"), layer("old")], seed="old")
    new = await pusher.image("app", "latest", layers=[layer("base"), layer("new")], seed="new")

    result = await gc()

    assert result.sweep.manifests_removed == []
    assert result.sweep.blobs_removed == []
    await pusher.pulls(old)
    await pusher.pulls(new, "latest")


async def test_delete_untagged_removes_the_manifest_and_what_only_it_used(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    old = await pusher.image("app", "latest", layers=[layer("base"), layer("old")], seed="old")
    new = await pusher.image("app", "latest", layers=[layer("base"), layer("new")], seed="new")
    assert tree.tag_index("app", "latest", old.digest).exists()

    result = await gc(delete_untagged=True)

    assert result.sweep.manifests_removed == [f"app@{old.digest}"]
    assert not tree.revision("app", old.digest).exists()
    assert not tree.tag_index("app", "latest", old.digest).exists()
    assert tree.tag_index("app", "latest", new.digest).exists()
    only_old = set(old.all_blobs) - set(new.all_blobs)
    assert {str(d) for d in result.sweep.blobs_removed} == only_old
    for digest in only_old:
        assert not tree.blob(digest).exists()
        assert not tree.layer("app", digest).exists()
    assert tree.blob(sha256(layer("base"))).exists()
    await pusher.pulls(new, "latest")


async def test_index_children_stay_while_the_index_is_tagged(
    pusher: Pusher, client: httpx.AsyncClient, tree: Tree, gc: Collect
) -> None:
    amd = await pusher.image("multi", None, layers=[layer("amd")], seed="amd")
    arm = await pusher.image("multi", None, layers=[layer("arm")], seed="arm")
    index = await pusher.index("multi", "v1", [amd, arm])

    result = await gc(delete_untagged=True)

    assert result.sweep.manifests_removed == []
    assert result.sweep.blobs_removed == []
    await pusher.pulls(index, "v1")

    await pusher.delete_tag("multi", "v1")
    result = await gc(delete_untagged=True)

    assert sorted(result.sweep.manifests_removed) == sorted(
        f"multi@{m.digest}" for m in (index, amd, arm)
    )
    for digest in index.all_blobs:
        assert not tree.blob(digest).exists()


async def test_referrers_stay_with_their_subject_and_go_with_it(
    pusher: Pusher, client: httpx.AsyncClient, tree: Tree, gc: Collect
) -> None:
    subject = await pusher.image("app", "v1", layers=[layer("s")], seed="s")
    signature = await pusher.image(
        "app", None, layers=[b"sig"], subject=subject, artifact_type="application/x-sig"
    )
    # A referrer of the referrer: kept because its subject is kept, recursively.
    attestation = await pusher.image(
        "app", None, layers=[b"att"], subject=signature, artifact_type="application/x-att"
    )
    sbom = await pusher.image(
        "app", "sbom", layers=[b"sbom"], subject=subject, artifact_type="application/x-sbom"
    )

    result = await gc(delete_untagged=True)

    assert result.sweep.manifests_removed == []
    for pushed in (subject, signature, attestation, sbom):
        await pusher.pulls(pushed)
    listed = await client.get(f"/v2/app/referrers/{subject.digest}")
    assert {m["digest"] for m in listed.json()["manifests"]} == {signature.digest, sbom.digest}

    await pusher.delete_tag("app", "v1")
    result = await gc(delete_untagged=True)

    removed = {f"app@{m.digest}" for m in (subject, signature, attestation)}
    assert set(result.sweep.manifests_removed) == removed
    assert not tree.referrer("app", subject.digest, signature.digest).exists()
    assert not tree.referrer("app", signature.digest, attestation.digest).exists()
    # A tagged referrer stays, and so does its entry under its (now removed) subject.
    await pusher.pulls(sbom, "sbom")
    assert tree.referrer("app", subject.digest, sbom.digest).exists()
    listed = await client.get(f"/v2/app/referrers/{subject.digest}")
    assert [m["digest"] for m in listed.json()["manifests"]] == [sbom.digest]


async def test_dry_run_changes_nothing_and_predicts_the_real_run(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    await pusher.image("app", "latest", layers=[layer("base"), layer("old")], seed="old")
    await pusher.image("app", "latest", layers=[layer("base"), layer("new")], seed="new")
    await pusher.blob("other", b"orphan")
    before = tree.snapshot()

    dry = await gc(dry_run=True, delete_untagged=True)

    assert tree.snapshot() == before
    assert len(dry.sweep.manifests_removed) == 1
    assert len(dry.sweep.blobs_removed) == 4  # old manifest, its config and layer, the orphan
    assert any("would remove" in line for line in dry.summary())

    real = await gc(delete_untagged=True)
    assert real.sweep.manifests_removed == dry.sweep.manifests_removed
    assert sorted(map(str, real.sweep.blobs_removed)) == sorted(map(str, dry.sweep.blobs_removed))
    assert real.sweep.bytes_removed == dry.sweep.bytes_removed
    assert real.sweep.links_removed == dry.sweep.links_removed


async def test_grace_period_keeps_recent_blobs_and_manifests(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    orphan = await pusher.blob("app", b"a push in progress")
    child = await pusher.image("app", None, layers=[layer("child")], seed="child")

    result = await gc(grace=HOUR, delete_untagged=True)

    assert tree.blob(orphan).exists()
    assert tree.revision("app", child.digest).exists()
    assert result.sweep.recent == 1
    assert result.sweep.blobs_removed == []

    tree.age(2 * 3600)
    result = await gc(grace=HOUR, delete_untagged=True)

    assert not tree.blob(orphan).exists()
    assert not tree.revision("app", child.digest).exists()
    assert result.sweep.manifests_removed == [f"app@{child.digest}"]


async def test_an_offline_collection_keeps_nothing_for_being_recent(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    """A store whose clock runs ahead, or that rounds times up (Swift's Last-Modified),
    dates what was written just before a collection after its start: a collection beside a
    serving registry keeps it, one with no registry serving does not."""
    orphan = await pusher.blob("app", b"written the moment before")
    tree.age(-5)  # every file dated 5 s ahead

    result = await gc()
    assert tree.blob(orphan).exists()
    assert result.sweep.recent == 1

    result = await gc(offline=True)
    assert not tree.blob(orphan).exists()
    assert [str(d) for d in result.sweep.blobs_removed] == [orphan]


async def test_a_recent_layer_link_keeps_an_old_blob(
    pusher: Pusher, client: httpx.AsyncClient, tree: Tree, gc: Collect
) -> None:
    digest = await pusher.blob("first", b"old bytes, linked again")
    tree.age(2 * 3600)
    mounted = await client.post(
        "/v2/second/blobs/uploads/", params={"mount": digest, "from": "first"}
    )
    assert mounted.status_code == 201

    await gc(grace=HOUR)

    assert tree.blob(digest).exists()


async def test_layer_links_of_a_swept_blob_go_in_every_repository(
    pusher: Pusher, client: httpx.AsyncClient, tree: Tree, gc: Collect
) -> None:
    digest = await pusher.blob("first", b"linked twice")
    mounted = await client.post(
        "/v2/second/blobs/uploads/", params={"mount": digest, "from": "first"}
    )
    assert mounted.status_code == 201

    result = await gc()

    assert not tree.blob(digest).exists()
    assert not tree.layer("first", digest).exists()
    assert not tree.layer("second", digest).exists()
    assert result.sweep.links_removed == 2


async def test_an_upload_in_progress_keeps_the_blob_it_becomes(
    pusher: Pusher, client: httpx.AsyncClient, tree: Tree, gc: Collect
) -> None:
    data = b"bytes an idle upload holds" * 100
    # The same bytes already stored, referenced by nothing.
    digest = await pusher.blob("elsewhere", data)
    started = await client.post("/v2/app/blobs/uploads/")
    location = started.headers["Location"]
    patched = await client.patch(location, content=data)
    assert patched.status_code == 202
    tree.age(2 * 3600)  # the session has been idle for longer than the grace period

    result = await gc(grace=HOUR)

    assert tree.blob(digest).exists()
    assert result.sweep.in_use == 1
    location = patched.headers["Location"]
    done = await client.put(with_query(location, digest=digest))
    assert done.status_code == 201, done.text
    assert (await client.get(f"/v2/app/blobs/{digest}")).content == data

    # Without a hash state to say what it becomes, a session keeps every blob of its size.
    other = await pusher.blob("elsewhere", b"y" * 500)
    started = await client.post("/v2/app/blobs/uploads/")
    patched = await client.patch(started.headers["Location"], content=b"z" * 500)
    assert patched.status_code == 202
    for state in (tree.repository("app") / "_uploads").rglob("hashstates"):
        for path in sorted(state.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    tree.age(2 * 3600)

    await gc(grace=HOUR)

    assert tree.blob(other).exists()


async def test_an_unreadable_manifest_keeps_every_blob_of_its_repository(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    broken = await pusher.image("app", None, layers=[layer("kept")], seed="broken")
    tree.blob(broken.digest).write_bytes(b"not json")

    result = await gc(delete_untagged=True)

    assert tree.revision("app", broken.digest).exists()
    for digest in broken.blobs:
        assert tree.blob(digest).exists()
    assert result.mark.unreadable == [f"app@{broken.digest}"]
    assert any("cannot be read" in line for line in result.summary())


async def test_a_collection_drops_cached_views_of_what_it_removed(
    pusher: Pusher, app: WharfApp, client: httpx.AsyncClient, gc: Collect
) -> None:
    old = await pusher.image("app", "latest", layers=[layer("old")], seed="old")
    await pusher.image("app", "latest", layers=[layer("new")], seed="new")
    await pusher.pulls(old)  # cached now
    epoch = app.generations.epoch()

    await gc(delete_untagged=True)

    assert app.generations.epoch() != epoch
    gone = await client.get(f"/v2/app/manifests/{old.digest}")
    assert gone.status_code == 404


async def test_nothing_to_collect_in_an_empty_registry(gc: Collect) -> None:
    result = await gc(delete_untagged=True)
    assert result.mark.repositories == 0
    assert result.sweep.blobs == 0
    assert result.summary()[1].startswith("removed: 0 manifests, 0 blobs (0 bytes)")


async def test_many_orphans_go_together_with_their_links(
    pusher: Pusher, tree: Tree, gc: Collect
) -> None:
    # More than a batch's worth of blobs deleted several at once (sweep.BLOBS_AT_ONCE).
    image = await pusher.image("app", "v1", layers=[layer("kept")])
    orphans = [await pusher.blob(f"repo{n % 2}", f"orphan {n}".encode()) for n in range(40)]

    result = await gc()

    assert sorted(str(d) for d in result.sweep.blobs_removed) == sorted(orphans)
    assert result.sweep.links_removed == 40
    for number, orphan in enumerate(orphans):
        assert not tree.blob(orphan).exists()
        assert not tree.layer(f"repo{number % 2}", orphan).exists()
    await pusher.pulls(image, "v1")
