"""The repository phase: layer and revision links, manifests, tags and referrers."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.registry.check.conftest import Check
from tests.registry.check.support import (
    Damage,
    current_link,
    digest,
    found,
    index_link,
    layer_link,
    referrer_entry,
    repo,
    revision_link,
)
from tests.registry.gc.support import Pushed, Pusher, sha256
from wharf.registry.check import CheckReport, Kind
from wharf.storage import paths

pytestmark = pytest.mark.asyncio


async def image_with_signature(pusher: Pusher) -> tuple[Pushed, Pushed]:
    image = await pusher.image("app", "v1", layers=[b"base layer", b"app layer"])
    signature = await pusher.image(
        "app", None, layers=[b"signature"], subject=image, artifact_type="x/sig"
    )
    return image, signature


async def repaired_to_clean(
    check: Check, damage: Damage, expected: set[tuple[Kind, str]]
) -> CheckReport:
    """Check finds exactly ``expected``, repair mends all of it, removes no blob, and leaves
    a store the next check finds clean."""
    assert found(await check()) == expected
    blobs = await damage.blobs()
    report = await check(repair=True)
    assert found(report) == expected
    assert not report.unresolved, [p.line() for p in report.unresolved]
    assert await damage.blobs() == blobs, "a blob that verifies is never removed"
    after = await check()
    assert after.clean, [p.line() for p in after.problems]
    return report


async def test_a_garbage_layer_link_is_written_again(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image, _ = await image_with_signature(pusher)
    link = await damage.write(layer_link("app", image.blobs[1]), b"garbage")

    report = await repaired_to_clean(check, damage, {(Kind.LAYER_LINK_INVALID, link)})

    assert report.problems[0].detail == f"holds b'garbage' instead of {image.blobs[1]}"
    assert report.problems[0].action == f"rewritten to hold {image.blobs[1]}"
    await pusher.pulls(image, "v1")


async def test_a_link_naming_another_digest_or_none_is_removed(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    await image_with_signature(pusher)
    missing = sha256(b"never pushed")
    wrong = await damage.write(layer_link("app", missing), sha256(b"other").encode())
    not_digest = await damage.write(
        f"{paths.layers_dir(repo('app'))}/sha256/xyz/link", b"sha256:xyz"
    )

    await repaired_to_clean(
        check,
        damage,
        {(Kind.LAYER_LINK_INVALID, wrong), (Kind.LAYER_LINK_INVALID, not_digest)},
    )
    assert not await damage.exists(paths.layer_dir(repo("app"), digest(missing)))


async def test_a_link_to_a_deleted_blob_is_removed(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    await image_with_signature(pusher)
    orphan = await pusher.blob("app", b"uploaded, never referenced")
    await damage.delete_blob(orphan)

    report = await repaired_to_clean(
        check, damage, {(Kind.LAYER_LINK_DANGLING, layer_link("app", orphan))}
    )
    assert report.problems[0].detail == f"the blob {orphan} is not in the store"
    head = await pusher.client.head(f"/v2/app/blobs/{orphan}")
    assert head.status_code == 404


async def test_a_deleted_layer_is_a_missing_reference_left_for_a_push(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image, _ = await image_with_signature(pusher)
    await damage.delete_blob(image.blobs[2])

    report = await check(repair=True)

    assert found(report) == {
        (Kind.LAYER_LINK_DANGLING, layer_link("app", image.blobs[2])),
        (Kind.REFERENCE_MISSING, revision_link("app", image.digest)),
    }
    missing = next(p for p in report.problems if p.kind is Kind.REFERENCE_MISSING)
    assert missing.detail == (
        f"{image.digest} references {image.blobs[2]}: the blob {image.blobs[2]} is not in the store"
    )
    assert missing.repository == "app"
    assert [p.kind for p in report.unresolved] == [Kind.REFERENCE_MISSING]


async def test_a_corrupt_manifest_goes_with_its_tags(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image, signature = await image_with_signature(pusher)
    data = await damage.flip(image.digest, offset=10)

    report = await check(repair=True)

    # The tag is sound until the revision goes: then it dangles, and goes too.
    assert found(report) == {
        (Kind.BLOB_CORRUPT, data),
        (Kind.REVISION_LINK_DANGLING, revision_link("app", image.digest)),
        (Kind.TAG_DANGLING, current_link("app", "v1")),
    }
    assert not report.unresolved
    assert (await check()).clean
    # A referrer may name a subject the repository lacks (it may be pushed first): it stays.
    assert await damage.exists(referrer_entry("app", image.digest, signature.digest))
    tags = await pusher.client.get("/v2/app/tags/list")
    assert tags.json()["tags"] is None or tags.json()["tags"] == []


async def test_a_tag_pointing_at_a_missing_revision_is_removed(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    await image_with_signature(pusher)
    nowhere = sha256(b"no such manifest")
    link = await damage.write(current_link("app", "v2"), nowhere.encode())

    report = await repaired_to_clean(check, damage, {(Kind.TAG_DANGLING, link)})

    assert report.problems[0].detail == f"points at {nowhere}, which is no manifest of app"
    assert report.problems[0].action == "tag removed"
    tags = await pusher.client.get("/v2/app/tags/list")
    assert tags.json()["tags"] == ["v1"]


async def test_unreadable_tags_are_removed(pusher: Pusher, damage: Damage, check: Check) -> None:
    image, _ = await image_with_signature(pusher)
    garbage = await damage.write(current_link("app", "v2"), b"not a digest")
    # Only an index entry: a tag the API lists and cannot resolve.
    await damage.write(index_link("app", "v3", image.digest), image.digest.encode())

    await repaired_to_clean(
        check,
        damage,
        {
            (Kind.TAG_LINK_INVALID, garbage),
            (Kind.TAG_LINK_INVALID, current_link("app", "v3").removesuffix("/current/link")),
        },
    )


async def test_a_tag_without_its_index_entry_is_counted_and_gets_one(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    """A push stopped between a tag's two links leaves a tag that works without its history:
    no problem, counted, and a repair writes the entry."""
    image, _ = await image_with_signature(pusher)
    entry = index_link("app", "v1", image.digest)
    await damage.delete(entry.removesuffix("/link"))

    looked = await check()
    assert looked.clean
    assert looked.stats.tag_history_missing == 1
    assert any("without its index entry" in line for line in looked.summary())
    repaired = await check(repair=True)
    assert repaired.clean
    assert repaired.stats.tag_history_added == 1
    assert await damage.driver.get_content(entry) == image.digest.encode()
    assert (await check()).stats.tag_history_missing == 0


async def test_garbage_index_entries_are_written_again_or_removed(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image, _ = await image_with_signature(pusher)
    rewritten = await damage.write(index_link("app", "v1", image.digest), b"junk")
    nowhere = sha256(b"no such manifest")
    removed = await damage.write(index_link("app", "v1", nowhere), b"junk")

    await repaired_to_clean(
        check,
        damage,
        {(Kind.TAG_INDEX_INVALID, rewritten), (Kind.TAG_INDEX_INVALID, removed)},
    )
    assert await damage.driver.get_content(rewritten) == image.digest.encode()


async def test_index_entries_of_deleted_manifests_are_no_problem(
    pusher: Pusher, client: httpx.AsyncClient, check: Check
) -> None:
    old = await pusher.image("app", "latest", layers=[b"old"], seed="old")
    await pusher.image("app", "latest", layers=[b"new"], seed="new")
    response = await client.delete(f"/v2/app/manifests/{old.digest}")
    assert response.status_code == 202

    report = await check()

    assert report.clean, [p.line() for p in report.problems]
    assert report.stats.tag_index_stale == 1
    assert "1 tag index entry of deleted manifests" in report.summary()[-1]


async def test_wrong_referrer_entries_are_removed(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image, signature = await image_with_signature(pusher)
    other = await pusher.image("app", "v2", layers=[b"other layer"], seed="other")
    # The signature does not refer to the other image; nothing has that digest.
    wrong = await damage.write(
        referrer_entry("app", other.digest, signature.digest),
        await damage.driver.get_content(referrer_entry("app", image.digest, signature.digest)),
    )
    nowhere = sha256(b"no such manifest")
    dangling = await damage.write(
        referrer_entry("app", image.digest, nowhere), json.dumps({"digest": nowhere}).encode()
    )

    report = await repaired_to_clean(
        check,
        damage,
        {(Kind.REFERRER_WRONG_SUBJECT, wrong), (Kind.REFERRER_DANGLING, dangling)},
    )
    details = {p.kind: p.detail for p in report.problems}
    assert details[Kind.REFERRER_WRONG_SUBJECT] == (
        f"the subject of {signature.digest} is {image.digest}, not {other.digest}"
    )
    referrers = await pusher.client.get(f"/v2/app/referrers/{image.digest}")
    assert [d["digest"] for d in referrers.json()["manifests"]] == [signature.digest]


async def test_a_missing_or_unreadable_referrer_entry_is_written_from_the_manifest(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    image, signature = await image_with_signature(pusher)
    entry = referrer_entry("app", image.digest, signature.digest)
    descriptor = await damage.driver.get_content(entry)
    await damage.delete(entry.removesuffix("/descriptor"))
    second = await pusher.image(
        "app", None, layers=[b"sbom"], subject=image, artifact_type="x/sbom"
    )
    garbled = await damage.write(referrer_entry("app", image.digest, second.digest), b"{")

    await repaired_to_clean(
        check, damage, {(Kind.REFERRER_MISSING, entry), (Kind.REFERRER_INVALID, garbled)}
    )
    assert await damage.driver.get_content(entry) == descriptor
    referrers = await pusher.client.get(f"/v2/app/referrers/{image.digest}")
    assert {d["digest"] for d in referrers.json()["manifests"]} == {
        signature.digest,
        second.digest,
    }


async def test_a_revision_that_is_no_manifest_is_reported_and_left(
    pusher: Pusher, damage: Damage, check: Check
) -> None:
    await image_with_signature(pusher)
    blob = await pusher.blob("app", b"just bytes")
    link = await damage.write(revision_link("app", blob), blob.encode())

    report = await check(repair=True)

    assert found(report) == {(Kind.MANIFEST_INVALID, link)}
    assert report.problems[0].detail.startswith(f"{blob}: not a manifest: ")
    assert not report.problems[0].repaired
    assert await damage.exists(link)


async def test_a_schema1_manifest_is_legacy_and_its_references_are_checked(
    damage: Damage, check: Check
) -> None:
    layer = sha256(b"schema 1 layer")
    body = json.dumps(
        {"schemaVersion": 1, "name": "old", "tag": "v1", "fsLayers": [{"blobSum": layer}]}
    ).encode()
    manifest = sha256(body)
    await damage.write(paths.blob_data(digest(manifest)), body)
    link = await damage.write(revision_link("old", manifest), manifest.encode())

    report = await check()

    assert found(report) == {(Kind.REFERENCE_MISSING, link)}
    assert report.stats.manifests_legacy == 1

    await damage.write(paths.blob_data(digest(layer)), b"schema 1 layer")
    assert (await check()).clean


async def test_upload_sessions_are_counted_not_problems(
    client: httpx.AsyncClient, check: Check
) -> None:
    for _ in range(2):
        response = await client.post("/v2/app/blobs/uploads/")
        assert response.status_code == 202

    report = await check()

    assert report.clean
    assert report.stats.upload_sessions == 2
    assert report.stats.repositories == 1
    assert report.summary()[-1] == "not problems: 2 upload sessions"


async def test_a_repository_name_the_api_cannot_reach_is_reported(
    damage: Damage, check: Check
) -> None:
    bad = f"{paths.repositories_dir()}/Upper/_layers/sha256/{'0' * 64}/link"
    await damage.write(bad, b"sha256:" + b"0" * 64)

    report = await check(repair=True)

    assert found(report) == {(Kind.REPOSITORY_NAME_INVALID, f"{paths.repositories_dir()}/Upper")}
    assert not report.problems[0].repaired
