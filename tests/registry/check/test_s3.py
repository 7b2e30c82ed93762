"""The check on S3 (moto): the walk by listing pages, ranged reads, repairs by key deletes."""

from __future__ import annotations

import os

import pytest

from tests.registry.check.conftest import Check
from tests.registry.check.support import (
    Damage,
    current_link,
    found,
    index_link,
    layer_link,
    referrer_entry,
)
from tests.registry.gc.support import Pusher, sha256
from tests.support.s3servers import S3Server
from wharf.config import StorageConfig
from wharf.registry.check import Kind

pytestmark = [pytest.mark.asyncio, pytest.mark.s3]


@pytest.fixture
def storage(moto_server: S3Server) -> StorageConfig:
    return StorageConfig(
        driver="s3",
        parameters=moto_server.fresh_parameters(),
        delete_enabled=True,
        redirect_disabled=True,
    )


@pytest.mark.parametrize("driver_name", ["s3"])
async def test_damage_on_s3_is_found_repaired_and_gone(
    pusher: Pusher, damage: Damage, check: Check, driver_name: str
) -> None:
    big = os.urandom(6 * 1024 * 1024 + 5)  # read in several ranges
    image = await pusher.image("app", "v1", layers=[b"base layer", big])
    signature = await pusher.image(
        "app", None, layers=[b"signature"], subject=image, artifact_type="x/sig"
    )
    other = await pusher.image("app", "v2", layers=[b"other"], seed="other")
    orphan = await pusher.blob("app", b"uploaded, never referenced")
    assert (await check()).clean

    corrupt = await damage.flip(orphan)
    await damage.delete(index_link("app", "v1", image.digest).removesuffix("/link"))
    dangling_tag = await damage.write(current_link("app", "v3"), sha256(b"nothing").encode())
    wrong = await damage.write(
        referrer_entry("app", other.digest, signature.digest),
        await damage.driver.get_content(referrer_entry("app", image.digest, signature.digest)),
    )
    expected = {
        (Kind.BLOB_CORRUPT, corrupt),
        (Kind.LAYER_LINK_DANGLING, layer_link("app", orphan)),
        (Kind.TAG_DANGLING, dangling_tag),
        (Kind.REFERRER_WRONG_SUBJECT, wrong),
    }
    assert found(await check()) == expected
    intact = await damage.blobs() - {orphan}

    report = await check(repair=True)

    assert found(report) == expected
    assert not report.unresolved, [p.line() for p in report.unresolved]
    assert await damage.blobs() == intact
    assert (await check()).clean
    await pusher.pulls(image, "v1")
