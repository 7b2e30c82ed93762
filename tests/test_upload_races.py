"""Requests racing on one upload session, on real server processes: two workers of one
instance, two instances on one filesystem root, two instances on one S3 bucket (moto), two on
one Azure container (Azurite), two on one GCS bucket (fake-gcs-server), none of them sharing
Redis. Whatever the order the requests land in, exactly one of the racing requests succeeds,
the others are refused with a 4xx, and every blob stored hashes to its name (the store is
checked clean after each scenario)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.azurite import AzuriteServer
from tests.support.gcs import GCSServer
from tests.support.s3servers import S3Server
from tests.support.server import WharfServer
from tests.support.swift import SwiftNative
from tests.support.urls import with_query
from wharf.config.model import StorageConfig
from wharf.registry.check import check_storage
from wharf.storage.driver.factory import create_driver

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROUNDS = int(os.environ.get("WHARF_TEST_RACE_ROUNDS", "8"))
_REFUSED = {404, 416}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Cluster:
    """Servers on one storage, and a client for each (for one server: two clients, so two
    connections, which its workers take as they come)."""

    def __init__(self, servers: list[WharfServer], storage: dict[str, Any]) -> None:
        self.servers = servers
        self.storage = storage
        urls = [server.url for server in servers]
        if len(urls) == 1:
            urls *= 2
        self.clients = [
            httpx.AsyncClient(base_url=url, timeout=60, follow_redirects=True) for url in urls
        ]

    async def start(self, name: str, data: bytes = b"") -> str:
        """A session holding ``data``; its Location."""
        response = await self.clients[0].post(f"/v2/{name}/blobs/uploads/")
        assert response.status_code == 202, response.text
        location = response.headers["Location"]
        if data:
            response = await self.clients[0].patch(location, content=data)
            assert response.status_code == 202, response.text
            location = response.headers["Location"]
        return location

    async def pull(self, name: str, digest: str) -> httpx.Response:
        return await self.clients[1].get(f"/v2/{name}/blobs/{digest}")

    async def assert_clean(self) -> None:
        driver = create_driver(StorageConfig(*next(iter(self.storage.items()))))
        try:
            report = await check_storage(driver)
        finally:
            await driver.close()
        assert report.clean, [str(problem) for problem in report.problems]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


def _filesystem(root: str) -> dict[str, Any]:
    return {"filesystem": {"rootdirectory": root}}


@pytest.fixture(
    scope="module",
    params=[
        "workers",
        "instances",
        "s3-instances",
        pytest.param("azure-instances", marks=pytest.mark.azure),
        pytest.param("swift-instances", marks=pytest.mark.swift),
        pytest.param("gcs-instances", marks=pytest.mark.gcs),
    ],
)
def servers(request: pytest.FixtureRequest) -> Iterator[tuple[list[WharfServer], dict[str, Any]]]:
    kind = request.param
    if kind == "workers":
        server = WharfServer(workers=2)
        storage = _filesystem(str(server.root))
        with server:
            yield [server], storage
        return
    if kind == "instances":
        first = WharfServer(workers=2)
        storage = _filesystem(str(first.root))
        second = WharfServer(storage=storage, workers=2)
    elif kind == "swift-instances":
        swift: SwiftNative = request.getfixturevalue("swift_native")
        storage = {"swift": swift.fresh_parameters()}
        first, second = WharfServer(storage=storage, workers=2), WharfServer(storage=storage)
    elif kind == "azure-instances":
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        storage = {"azure": azurite.fresh_parameters()}
        first, second = WharfServer(storage=storage, workers=2), WharfServer(storage=storage)
    elif kind == "gcs-instances":
        gcs: GCSServer = request.getfixturevalue("gcs_server")
        storage = {"gcs": gcs.fresh_parameters()}
        first, second = WharfServer(storage=storage, workers=2), WharfServer(storage=storage)
    else:
        s3: S3Server = request.getfixturevalue("moto_server")
        storage = {"s3": s3.parameters(s3.create_bucket())}
        first, second = WharfServer(storage=storage, workers=2), WharfServer(storage=storage)
    with first, second:
        yield [first, second], storage


@pytest.fixture
async def cluster(servers: tuple[list[WharfServer], dict[str, Any]]) -> AsyncIterator[Cluster]:
    cluster = Cluster(*servers)
    yield cluster
    await cluster.assert_clean()
    await cluster.aclose()


def _one_winner(statuses: list[int], success: int) -> None:
    assert statuses.count(success) == 1, statuses
    assert set(statuses) - {success} <= _REFUSED, statuses


async def test_two_completions_of_one_session(cluster: Cluster) -> None:
    for number in range(ROUNDS):
        head, tail = os.urandom(700_000), os.urandom(300_000)
        with_body = number % 2 == 1
        data = head + tail if with_body else head
        location = await cluster.start("race/complete", head)
        url = with_query(location, digest=_digest(data))
        body = tail if with_body else b""
        responses = await asyncio.gather(*(c.put(url, content=body) for c in cluster.clients))
        _one_winner([r.status_code for r in responses], 201)
        pulled = await cluster.pull("race/complete", _digest(data))
        assert pulled.status_code == 200
        assert pulled.content == data


async def test_two_completions_with_different_bodies(cluster: Cluster) -> None:
    """Each client completes with its own last bytes and digest: the winner's blob is whole,
    the loser's digest is not stored at all."""
    for _ in range(ROUNDS):
        head = os.urandom(500_000)
        tails = [os.urandom(200_000) for _ in cluster.clients]
        location = await cluster.start("race/different", head)
        responses = await asyncio.gather(
            *(
                client.put(with_query(location, digest=_digest(head + tail)), content=tail)
                for client, tail in zip(cluster.clients, tails, strict=True)
            )
        )
        statuses = [r.status_code for r in responses]
        _one_winner(statuses, 201)
        for status, tail in zip(statuses, tails, strict=True):
            pulled = await cluster.pull("race/different", _digest(head + tail))
            if status == 201:
                assert pulled.content == head + tail
            else:
                assert pulled.status_code == 404


async def test_patch_racing_a_put(cluster: Cluster) -> None:
    for _ in range(ROUNDS):
        head, more = os.urandom(600_000), os.urandom(600_000)
        location = await cluster.start("race/patchput", head)
        patching, putting = await asyncio.gather(
            cluster.clients[0].patch(location, content=more),
            cluster.clients[1].put(with_query(location, digest=_digest(head))),
        )
        # The PATCH first (the PUT finds the session busy or moved on), or the PUT first
        # (the PATCH finds it busy, or already gone).
        outcomes = ([202, 416], [201, 416], [201, 404])
        assert sorted([patching.status_code, putting.status_code]) in outcomes
        if putting.status_code == 201:
            assert (await cluster.pull("race/patchput", _digest(head))).content == head
            continue
        assert (await cluster.pull("race/patchput", _digest(head))).status_code == 404
        done = await cluster.clients[1].put(
            with_query(patching.headers["Location"], digest=_digest(head + more))
        )
        assert done.status_code == 201, done.text
        assert (await cluster.pull("race/patchput", _digest(head + more))).content == head + more


async def _slowly(data: bytes, pieces: int = 20, pause: float = 0.05) -> AsyncIterator[bytes]:
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        yield data[start : start + step]
        await asyncio.sleep(pause)


async def test_put_racing_a_slow_patch(cluster: Cluster) -> None:
    """The PATCH holds the session while its body trickles in: a PUT meanwhile is refused, and
    nothing the PATCH writes after a completion elsewhere can reach a stored blob."""
    for _ in range(ROUNDS // 2 or 1):
        head, more = os.urandom(400_000), os.urandom(800_000)
        location = await cluster.start("race/slow", head)
        patch = asyncio.ensure_future(
            cluster.clients[0].patch(
                location,
                content=_slowly(more),
                headers={"Content-Length": str(len(more))},
            )
        )
        await asyncio.sleep(0.3)
        put = await cluster.clients[1].put(with_query(location, digest=_digest(head)))
        assert put.status_code == 416, put.text
        patched = await patch
        assert patched.status_code == 202, patched.text
        assert (await cluster.pull("race/slow", _digest(head))).status_code == 404
        done = await cluster.clients[1].put(
            with_query(patched.headers["Location"], digest=_digest(head + more))
        )
        assert done.status_code == 201, done.text
        assert (await cluster.pull("race/slow", _digest(head + more))).content == head + more


async def test_two_patches_with_one_content_range(cluster: Cluster) -> None:
    for _ in range(ROUNDS):
        head = os.urandom(300_000)
        bodies = [os.urandom(500_000) for _ in cluster.clients]
        location = await cluster.start("race/range", head)
        headers = {"Content-Range": f"{len(head)}-{len(head) + 500_000 - 1}"}
        responses = await asyncio.gather(
            *(
                client.patch(location, content=body, headers=headers)
                for client, body in zip(cluster.clients, bodies, strict=True)
            )
        )
        statuses = [r.status_code for r in responses]
        assert sorted(statuses) == [202, 416], statuses
        winner = statuses.index(202)
        data = head + bodies[winner]
        done = await cluster.clients[1 - winner].put(
            with_query(responses[winner].headers["Location"], digest=_digest(data))
        )
        assert done.status_code == 201, done.text
        assert (await cluster.pull("race/range", _digest(data))).content == data


async def test_one_digest_completed_in_twenty_repositories(cluster: Cluster) -> None:
    for number in range(max(ROUNDS // 4, 1)):
        data = os.urandom(1_000_000)
        digest = _digest(data)

        async def push(
            index: int, data: bytes = data, digest: str = digest, number: int = number
        ) -> int:
            client = cluster.clients[index % len(cluster.clients)]
            name = f"race/twenty{number}/r{index}"
            if index % 2:
                location = await cluster.start(name)
                response = await client.put(with_query(location, digest=digest), content=data)
            else:
                response = await client.post(
                    f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data
                )
            return response.status_code

        assert await asyncio.gather(*(push(index) for index in range(20))) == [201] * 20
        for index in range(20):
            pulled = await cluster.pull(f"race/twenty{number}/r{index}", digest)
            assert pulled.content == data
