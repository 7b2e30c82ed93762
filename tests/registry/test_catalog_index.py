"""The catalog index (kept at write time, built once from a walk) and the tag index of a
manifest delete: pages read without reading everything, and right with another writer."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wharf.coherence.caches import RegistryCache
from wharf.coherence.generations import Generations
from wharf.reference import Digest, RepositoryName, Tag
from wharf.registry import catalog_index, media
from wharf.registry.catalog_index import CatalogIndex
from wharf.registry.manifest_parse import digest_of
from wharf.registry.namespace import Registry, Repository
from wharf.registry.remover import RepositoryRemover
from wharf.storage import paths
from wharf.storage.driver import StorageDriver
from wharf.storage.driver.filesystem import FilesystemDriver
from wharf.storage.driver.inmemory import InMemoryDriver

pytestmark = pytest.mark.asyncio

ZERO = Digest("sha256", "0" * 64)


class CountingReads(InMemoryDriver):
    """The in-memory driver, counting reads and listings by path."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []
        self.lists: list[str] = []

    async def get_content(self, path: str) -> bytes:
        self.reads.append(path)
        return await super().get_content(path)

    async def list(self, path: str) -> list[str]:
        self.lists.append(path)
        return await super().list(path)


async def _distribution_repository(driver: StorageDriver, name: str) -> None:
    """A repository as Distribution writes it (no index entry)."""
    link = paths.layer_link(RepositoryName(name), ZERO)
    await driver.put_content(link, paths.link_content(ZERO))


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    with ThreadPoolExecutor(1) as hashing:
        yield Registry(CountingReads(), RegistryCache(Generations()), hashing)


async def _page_all(index: CatalogIndex, limit: int) -> list[str]:
    seen: list[str] = []
    last: str | None = None
    while True:
        page = await index.page(limit, last)
        assert page is not None
        names, more = page
        seen += names
        if not more:
            return seen
        last = names[-1]


async def test_pages_come_from_few_reads_at_any_size(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_index, "PAGE_MAX", 8)
    index = registry.catalog.index
    assert await index.page(10, None) is None  # not built: the catalog walks
    assert await index.build()
    assert await index.page(10, None) == ([], False)
    names = sorted(f"team{i % 4}/app{i:03d}" for i in range(100))
    for start in range(0, 100, 7):
        await index.add(names[start : start + 7])
    await index.add(names[:3])  # twice is once
    assert await _page_all(index, 7) == names
    assert await _page_all(index, 1000) == names
    driver = registry.driver
    assert isinstance(driver, CountingReads)
    driver.reads.clear()
    page = await index.page(5, "team2/app050")
    assert page == (
        ["team2/app054", "team2/app058", "team2/app062", "team2/app066", "team2/app070"],
        True,
    )
    assert len(driver.reads) <= 3  # the root and the pages of 5 names (4 to 8 a page)
    await index.remove(names[10:90])
    assert await _page_all(index, 3) == names[:10] + names[90:]
    pages = await driver.list(paths.catalog_page("x").rpartition("/")[0])
    root = json.loads(await driver.get_content(paths.catalog_root()))
    assert sorted(paths.catalog_page(page[1]) for page in root["pages"]) == sorted(pages)
    counts = [page[2] for page in root["pages"]]
    assert all(a + b > 4 for a, b in itertools.pairwise(counts))  # small ones merged


async def test_a_push_lists_the_repository_and_a_removal_unlists_it(registry: Registry) -> None:
    index = registry.catalog.index
    await index.build()
    repository = registry.repository(RepositoryName("team/app"))
    await registry.blobs.put(ZERO, b"")  # any content; linked below
    await repository.blobs.link(ZERO)
    assert await registry.catalog.page(10, None) == (["team/app"], False)
    await RepositoryRemover(registry).remove(RepositoryName("team/app"))
    assert await registry.catalog.page(10, None) == ([], False)
    await repository.blobs.link(ZERO)  # pushed again after the removal: listed again
    assert await registry.catalog.page(10, None) == (["team/app"], False)


async def test_build_walks_once_resumes_and_logs_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(catalog_index, "BUILD_GROUP", 2)
    driver = FilesystemDriver(str(tmp_path))
    names = [f"{top}/app{i}" for top in ("a", "b", "c", "d", "e") for i in range(3)] + ["f"]
    for name in names:
        await _distribution_repository(driver, name)
    # A build that stopped after "b": the walk continues there.
    index = CatalogIndex(driver)
    await index.add(["a/app0"])
    await driver.put_content(paths.catalog_build(), b'{"after": "b"}')
    with caplog.at_level(logging.INFO, logger="wharf.catalog"):
        assert await index.build()
    assert "continuing the build after b" in caplog.text
    assert "top-level directories" in caplog.text
    assert await _page_all(index, 4) == ["a/app0", *names[6:]]
    assert not await index.build()  # built: never again
    # Distribution writes meanwhile: a reconcile (the purge walk's) adds what it finds and
    # removes what is gone.
    await _distribution_repository(driver, "g/new")
    await driver.delete(paths.repository_dir(RepositoryName("c/app1")))
    walked = sorted({*names, "g/new"} - {"c/app1"})
    assert await index.reconcile(walked) == (6, 1)  # a/app1..2, b/*, g/new; c/app1
    assert await _page_all(index, 100) == walked
    await driver.close()


async def push_manifest(
    registry: Registry, repository: Repository, seed: str, tags: Sequence[str] = ()
) -> Digest:
    config = f'{{"seed":"{seed}"}}'.encode()
    config_digest = digest_of(config)
    await registry.blobs.put(config_digest, config)
    await repository.blobs.link(config_digest)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media.OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(config_digest),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    digest = digest_of(body)
    await repository.manifests.put(
        body, media.OCI_MANIFEST, digest, tags=[Tag(tag) for tag in tags]
    )
    return digest


async def test_manifest_delete_reads_only_its_own_tags(registry: Registry) -> None:
    driver = registry.driver
    assert isinstance(driver, CountingReads)
    repository = registry.repository(RepositoryName("big"))
    first = await push_manifest(registry, repository, "1")
    for index in range(50):
        await repository.tags.tag(Tag(f"t{index:02d}"), first)
    second = await push_manifest(registry, repository, "2", tags=["keep", "t00"])
    assert await repository.tags.lookup(second) == ["keep", "t00"]
    driver.reads.clear()
    driver.lists.clear()
    await repository.manifests.delete(second)
    tag_reads = [p for p in driver.reads if "/_manifests/tags/" in p]
    assert len(tag_reads) == 4  # its two tags, checked and untagged; not fifty-one
    assert not any(p.endswith("/_manifests/tags") for p in driver.lists)
    assert await repository.tags.all() == [f"t{i:02d}" for i in range(1, 50)]
    # A revision another writer stored first has no complete index: every tag is read.
    await driver.delete(paths.digest_tags_complete(repository.name, first))
    await repository.tags.tag(Tag("x"), first)  # as if the index missed it
    await driver.delete(paths.digest_tag(repository.name, first, Tag("x")))
    assert "x" in await repository.tags.lookup(first)
    await repository.manifests.delete(first)
    assert await repository.tags.all() == []


async def test_a_repository_another_writer_made_is_listed_once_served(registry: Registry) -> None:
    await registry.catalog.index.build()
    await _distribution_repository(registry.driver, "from/distribution")
    assert await registry.catalog.page(10, None) == ([], False)
    registry.served(RepositoryName("from/distribution"))
    registry.served(RepositoryName("from/distribution"))  # once per process
    await registry.aclose()  # waits for the note
    assert await registry.catalog.page(10, None) == (["from/distribution"], False)


async def test_an_unreadable_index_falls_back_to_the_walk(registry: Registry) -> None:
    await _distribution_repository(registry.driver, "walked/one")
    await registry.catalog.index.build()
    await registry.driver.put_content(paths.catalog_root(), b"{not json")
    assert await registry.catalog.index.page(10, None) is None
    assert await registry.catalog.page(10, None) == (["walked/one"], False)
    repository = registry.repository(RepositoryName("pushed/two"))
    await registry.blobs.put(ZERO, b"")
    await repository.blobs.link(ZERO)  # a push goes on; the index starts again
    assert await registry.catalog.index.all() == ["pushed/two"]
    assert await registry.catalog.index.build()  # rebuilt from the walk
    assert await registry.catalog.page(10, None) == (["pushed/two", "walked/one"], False)
