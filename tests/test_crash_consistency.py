"""A registry killed with SIGKILL while it takes chunked uploads, completions and manifest PUTs,
round after round, then started again on the same storage: every manifest it acknowledged pulls
whole, every tag it lists resolves, every upload it was taking either resumes from where the
registry says it stands or is gone, and the store checks clean."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.server import WharfServer
from tests.support.urls import with_query
from wharf.config.model import StorageConfig
from wharf.registry.check import check_storage
from wharf.storage.driver.factory import create_driver

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROUNDS = int(os.environ.get("WHARF_TEST_CRASH_ROUNDS", "8"))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_NAME = "crash/app"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Pushed:
    """What the registry acknowledged, and the sessions it was taking when it died."""

    manifests: dict[str, tuple[bytes, list[bytes]]] = field(default_factory=dict)
    sessions: list[tuple[str, bytes]] = field(default_factory=list)


def _push_forever(url: str, pushed: Pushed, stop: threading.Event, seed: int) -> None:
    """Push images in chunks until the registry stops answering."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=10) as http:
        number = 0
        while not stop.is_set():
            number += 1
            layers = [rng.randbytes(rng.randrange(200_000, 1_500_000)) for _ in range(2)]
            config = json.dumps({"seed": seed, "n": number}).encode()
            try:
                for layer in layers:
                    _chunked(http, layer, pushed)
                done = http.post(
                    f"/v2/{_NAME}/blobs/uploads/",
                    params={"digest": _digest(config)},
                    content=config,
                )
                if done.status_code != 201:
                    return
                manifest = _manifest(config, layers)
                response = http.put(
                    f"/v2/{_NAME}/manifests/s{seed}-{number}",
                    content=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                if response.status_code != 201:
                    return
                pushed.manifests[f"s{seed}-{number}"] = (manifest, [config, *layers])
            except httpx.HTTPError:
                return


def _chunked(http: httpx.Client, data: bytes, pushed: Pushed) -> None:
    """Two thirds in two PATCHes, the rest with the completing PUT."""
    location = http.post(f"/v2/{_NAME}/blobs/uploads/").headers["Location"]
    pushed.sessions.append((location, data))
    third = len(data) // 3
    for start in (0, third):
        response = http.patch(location, content=data[start : start + third])
        response.raise_for_status()
        location = response.headers["Location"]
        pushed.sessions[-1] = (location, data)
    done = http.put(with_query(location, digest=_digest(data)), content=data[2 * third :])
    if done.status_code != 201:
        raise httpx.HTTPError(f"completion answered {done.status_code}")
    pushed.sessions.pop()


def _manifest(config: bytes, layers: list[bytes]) -> bytes:
    def descriptor(blob: bytes, media_type: str) -> dict[str, object]:
        return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(config, "application/vnd.oci.image.config.v1+json"),
            "layers": [descriptor(b, "application/vnd.oci.image.layer.v1.tar") for b in layers],
        }
    ).encode()


def _verify(url: str, pushed: Pushed) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        for tag, (manifest, blobs) in pushed.manifests.items():
            got = http.get(f"/v2/{_NAME}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert got.status_code == 200, (tag, got.text)
            assert got.content == manifest
            for blob in blobs:
                pulled = http.get(f"/v2/{_NAME}/blobs/{_digest(blob)}")
                assert pulled.status_code == 200, tag
                assert pulled.content == blob
        listed = http.get(f"/v2/{_NAME}/tags/list")
        for tag in listed.json()["tags"] if listed.status_code == 200 else []:
            assert http.head(f"/v2/{_NAME}/manifests/{tag}").status_code == 200, tag
        for location, data in pushed.sessions:
            status = http.get(location)
            if status.status_code == 404:
                continue
            assert status.status_code == 204, status.text
            # "0-0" is how an empty session is answered, as Distribution does.
            end = int(status.headers["Range"].rpartition("-")[2])
            size = end + 1 if end else 0
            assert size <= len(data)
            resumed = http.put(
                with_query(status.headers["Location"], digest=_digest(data)), content=data[size:]
            )
            assert resumed.status_code == 201, resumed.text
            assert http.get(f"/v2/{_NAME}/blobs/{_digest(data)}").content == data
        pushed.sessions.clear()


def test_killed_while_pushing_loses_nothing_acknowledged() -> None:
    rng = random.Random(7)
    with WharfServer(workers=2) as server:
        storage = {"filesystem": {"rootdirectory": str(server.root)}}
        pushed = Pushed()
        for round_ in range(ROUNDS):
            stop = threading.Event()
            pushers = [
                threading.Thread(
                    target=_push_forever, args=(server.url, pushed, stop, round_ * 10 + n)
                )
                for n in range(3)
            ]
            for pusher in pushers:
                pusher.start()
            time.sleep(rng.uniform(0.3, 1.5))
            server.kill()
            stop.set()
            for pusher in pushers:
                pusher.join()
            server.start()
            _verify(server.url, pushed)
        assert pushed.manifests, "no push was ever acknowledged"
        driver = create_driver(StorageConfig("filesystem", storage["filesystem"]))

        async def check() -> None:
            try:
                report = await check_storage(driver)
            finally:
                await driver.close()
            assert report.clean, [str(problem) for problem in report.problems]

        asyncio.run(check())
