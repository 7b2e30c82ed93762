"""The blob phase: corrupt, truncated, misplaced and empty blobs, found and repaired."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import httpx
import pytest

from tests.registry.check.conftest import Check
from tests.registry.check.support import Damage, digest, found, layer_link, revision_link
from tests.registry.gc.support import Pusher, sha256
from wharf.api.app import WharfApp
from wharf.registry.check import Kind
from wharf.storage import paths

pytestmark = pytest.mark.asyncio

BIG = os.urandom(3 * 1024 * 1024 + 17)  # several hash chunks, and a partial one


async def test_a_store_as_pushed_is_clean(pusher: Pusher, damage: Damage, check: Check) -> None:
    image = await pusher.image("app", "v1", layers=[b"base layer", BIG])
    await pusher.image("app", None, layers=[b"signature"], subject=image, artifact_type="x/sig")
    await pusher.index("multi", "latest", [await pusher.image("multi", None, layers=[b"amd"])])

    report = await check()

    assert report.clean, [p.line() for p in report.problems]
    stats = report.stats
    # 4 manifests, 2 configs (both images have the same), 4 layers.
    assert stats.blobs == len(await damage.blobs()) == 10
    assert stats.bytes_hashed >= len(BIG)
    assert stats.repositories == 2
    assert stats.revisions == 4
    assert stats.tags == 2
    assert stats.tag_index_entries == 2
    assert stats.referrers == 1
    assert stats.references == 3 + 2 + 2 + 1
    assert stats.layer_links == 7
    assert report.summary()[1] == "no problems found"


async def test_a_flipped_bit_is_found_with_what_it_breaks(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image = await pusher.image("app", "v1", layers=[b"base layer", BIG])
    big = sha256(BIG)
    data = await damage.flip(big, offset=len(BIG) - 1)

    report = await check()

    assert found(report) == {
        (Kind.BLOB_CORRUPT, data),
        (Kind.LAYER_LINK_DANGLING, layer_link("app", big)),
        (Kind.REFERENCE_MISSING, revision_link("app", image.digest)),
    }
    corrupt = next(p for p in report.problems if p.kind is Kind.BLOB_CORRUPT)
    assert corrupt.detail.startswith(f"its {len(BIG)} bytes hash to sha256:")
    assert corrupt.repository is None
    assert not corrupt.repaired
    assert corrupt.action is None
    assert report.stats.blobs_corrupt == 1
    assert await damage.exists(data), "nothing is removed without repair"


async def test_repair_removes_a_corrupt_blob_and_its_links_and_a_push_makes_it_whole(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image = await pusher.image("app", "v1", layers=[b"base layer", BIG])
    await pusher.image("other", "v1", layers=[BIG], seed="other")
    big = sha256(BIG)
    data = await damage.truncate(big, 1000)
    intact = await damage.blobs() - {big}

    report = await check(repair=True)

    assert found(report) == {
        (Kind.BLOB_CORRUPT, data),
        (Kind.LAYER_LINK_DANGLING, layer_link("app", big)),
        (Kind.LAYER_LINK_DANGLING, layer_link("other", big)),
        (Kind.REFERENCE_MISSING, revision_link("app", image.digest)),
        (Kind.REFERENCE_MISSING, revision_link("other", (await _tagged(pusher, "other")))),
    }
    repaired = {p.kind: p for p in report.problems}
    assert repaired[Kind.BLOB_CORRUPT].repaired
    assert repaired[Kind.BLOB_CORRUPT].action == "removed"
    assert repaired[Kind.LAYER_LINK_DANGLING].repaired
    assert not repaired[Kind.REFERENCE_MISSING].repaired
    assert repaired[Kind.REFERENCE_MISSING].action == "push the missing content again"
    assert len(report.unresolved) == 2
    assert await damage.blobs() == intact, "only the corrupt blob went"

    # Only the content pushed again mends the manifests: then all is well.
    again = await check()
    assert {kind for kind, _ in found(again)} == {Kind.REFERENCE_MISSING}
    await pusher.blob("app", BIG)
    await pusher.blob("other", BIG)
    assert (await check()).clean
    await pusher.pulls(image, "v1")


async def _tagged(pusher: Pusher, name: str) -> str:
    response = await pusher.client.head(
        f"/v2/{name}/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    return response.headers["Docker-Content-Digest"]


async def test_an_unreferenced_corrupt_blob_is_repaired_to_a_clean_store(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    await pusher.image("app", "v1", layers=[b"base layer"])
    orphan = await pusher.blob("app", b"uploaded, never referenced")
    data = await damage.flip(orphan)

    report = await check(repair=True)

    assert found(report) == {
        (Kind.BLOB_CORRUPT, data),
        (Kind.LAYER_LINK_DANGLING, layer_link("app", orphan)),
    }
    assert not report.unresolved
    assert (await check()).clean


async def test_sha512_blobs_are_verified(
    client: httpx.AsyncClient, damage: Damage, check: Check
) -> None:
    data = b"sha512 content" * 1000
    blob = "sha512:" + hashlib.sha512(data).hexdigest()
    response = await client.post("/v2/app/blobs/uploads/", params={"digest": blob}, content=data)
    assert response.status_code == 201, response.text
    assert (await check()).clean

    await damage.flip(blob, offset=5)
    report = await check()
    assert (Kind.BLOB_CORRUPT, paths.blob_data(digest(blob))) in found(report)


async def test_misplaced_data_is_moved_to_its_place_or_removed(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    lost = digest(sha256(b"lost blob"))
    kept = digest(await pusher.blob("app", b"kept blob"))
    wrong = digest(sha256(b"wrong bytes"))
    stray = {d: f"{paths.blobs_dir()}/sha256/zz/{d.hex}/data" for d in (lost, kept, wrong)}
    await damage.write(stray[lost], b"lost blob")  # nowhere else: moved
    await damage.write(stray[kept], b"kept blob")  # also at its place: the stray copy goes
    await damage.write(stray[wrong], b"not what its name says")

    report = await check(repair=True)

    assert found(report) == {(Kind.BLOB_MISPLACED, path) for path in stray.values()}
    actions = {p.path: p.action for p in report.problems}
    assert actions == {
        stray[lost]: "moved to its place",
        stray[kept]: "removed: the blob is intact at its place",
        stray[wrong]: "removed: its bytes do not hash to its name",
    }
    assert await damage.driver.get_content(paths.blob_data(lost)) == b"lost blob"
    assert await damage.driver.get_content(paths.blob_data(kept)) == b"kept blob"
    assert (await check()).clean


async def test_a_blob_directory_not_naming_a_digest_is_reported_and_left(
    damage: Damage, check: Check
) -> None:
    path = await damage.write(f"{paths.blobs_dir()}/sha256/ab/abc/data", b"what is this")

    report = await check(repair=True)

    assert found(report) == {(Kind.BLOB_NAME_INVALID, path)}
    assert report.problems[0].action == "left for an operator"
    assert await damage.exists(path)


@pytest.mark.parametrize("driver_name", ["filesystem"])
async def test_an_empty_blob_directory_is_removed_once_quiet(
    app: WharfApp, damage: Damage, check: Check, driver_name: str
) -> None:
    directory = paths.blob_dir(digest(sha256(b"never written")))
    full = app.registry.driver.inner.full_path(directory)  # type: ignore[attr-defined]
    os.makedirs(full)

    report = await check(repair=True)

    assert found(report) == {(Kind.BLOB_DATA_MISSING, directory)}
    assert report.problems[0].action == "changed in the last minute: a write may be under way"
    assert await damage.exists(directory)

    hour_ago = datetime.now(UTC).timestamp() - 3600
    os.utime(full, (hour_ago, hour_ago))
    report = await check(repair=True)
    assert report.problems[0].repaired
    assert not await damage.exists(directory)
    assert (await check()).clean
