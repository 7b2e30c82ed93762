"""Two wharf instances on one remote store, no Redis: a chunked upload is continued on the
other instance and after a restart, and a pull follows the store's own signed redirect (a SAS
URL on Azure, a V4 signed URL on GCS, a temp URL on Swift). Nothing of the session is left
beside the blob afterwards."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.azurite import AzuriteServer
from tests.support.gcs import GCSServer
from tests.support.server import WharfServer
from tests.support.swift import SwiftNative
from tests.support.urls import with_query

pytestmark = pytest.mark.server


@dataclass(frozen=True)
class Store:
    """How one store is set up for the test and what it must look like afterwards."""

    #: The storage section for both instances, from the store's fixture.
    storage: Callable[[Any], dict[str, Any]]
    #: Where the store serves redirected pulls, from the fixture.
    endpoint: Callable[[Any], str]
    #: A query parameter every signed redirect carries.
    signature: str
    #: Names left in the store that belong to the session, not to the blob.
    leftovers: Callable[[Any, dict[str, Any]], list[str]]
    size: int = 9 << 20
    chunk: int = (2 << 20) + 17


def _azure_leftovers(server: AzuriteServer, storage: dict[str, Any]) -> list[str]:
    return server.staged(storage["azure"]["container"])


def _gcs_leftovers(server: GCSServer, storage: dict[str, Any]) -> list[str]:
    names = server.names(storage["gcs"]["bucket"])
    return [n for n in names if "#part." in n or "#compose." in n or "/_uploads/" in n]


def _swift_leftovers(server: SwiftNative, storage: dict[str, Any]) -> list[str]:
    names = server.names(storage["swift"]["container"])
    left = [name for name in names if "/_uploads/" in name]
    # One blob: its segments all lie under one segment path.
    segments = {name.rsplit("/", 1)[0] for name in names if name.startswith("segments/")}
    return left + (sorted(segments) if len(segments) != 1 else [])


_STORES = {
    "azure": Store(
        storage=lambda server: {"azure": server.fresh_parameters()},
        endpoint=lambda server: server.endpoint,
        signature="sig=",
        leftovers=_azure_leftovers,
    ),
    "gcs": Store(
        storage=lambda server: {"gcs": server.fresh_parameters()},
        endpoint=lambda server: server.endpoint,
        signature="X-Goog-Signature=",
        leftovers=_gcs_leftovers,
    ),
    # 1 MiB segments, so that chunks span several and end mid-segment.
    "swift": Store(
        storage=lambda server: {
            "swift": server.fresh_parameters(chunksize=1 << 20, secretkey="instances-key")
        },
        endpoint=lambda server: server.storage_url,
        signature="temp_url_sig=",
        leftovers=_swift_leftovers,
        size=5 << 20,
        chunk=(1 << 20) + 17,
    ),
}
_FIXTURES = {"azure": "azurite_server", "gcs": "gcs_server", "swift": "swift_native"}


@pytest.mark.parametrize(
    "store_name", [pytest.param(name, marks=getattr(pytest.mark, name)) for name in _STORES]
)
def test_a_chunked_upload_moves_between_instances_and_restarts(
    store_name: str, request: pytest.FixtureRequest
) -> None:
    store = _STORES[store_name]
    server = request.getfixturevalue(_FIXTURES[store_name])
    storage = store.storage(server)
    data = os.urandom(store.size)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    chunks = [data[i : i + store.chunk] for i in range(0, len(data), store.chunk)]
    with WharfServer(storage=storage) as first, WharfServer(storage=storage) as second:
        urls = [first.url, second.url]
        with httpx.Client(timeout=60) as client:
            start = client.post(f"{first.url}/v2/{store_name}/chunked/blobs/uploads/")
            location = start.headers["Location"]
            offset = 0
            for number, chunk in enumerate(chunks[:-1]):
                if number == 2:
                    first.stop()  # a restart in the middle: nothing was kept in memory
                    first.start()
                path = urllib.parse.urlsplit(location)
                url = urls[number % 2] + path.path + "?" + path.query
                headers = {"Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                response = client.patch(url, content=chunk, headers=headers)
                assert response.status_code == 202, response.text
                offset += len(chunk)
                assert response.headers["Range"] == f"0-{offset - 1}"
                location = response.headers["Location"]
            path = urllib.parse.urlsplit(location)
            url = with_query(second.url + path.path + "?" + path.query, digest=digest)
            response = client.put(url, content=chunks[-1])
            assert response.status_code == 201, response.text
            # A pull is redirected to a signed URL of the blob, which the store serves.
            blob = f"{first.url}/v2/{store_name}/chunked/blobs/{digest}"
            redirect = client.get(blob)
            assert redirect.status_code == 307
            target = redirect.headers["Location"]
            assert target.startswith(store.endpoint(server) + "/")
            assert store.signature in target
            followed = client.get(blob, follow_redirects=True)
            assert followed.status_code == 200
            assert followed.content == data
    assert store.leftovers(server, storage) == []
