"""Two wharf instances on one Swift container (native API, tempauth), no Redis: a chunked
upload is continued on the other instance and after a restart, and a pull follows the temp
URL redirect to Swift."""

from __future__ import annotations

import hashlib
import os
import urllib.parse

import httpx
import pytest

from tests.support.server import WharfServer
from tests.support.swift import SwiftNative
from tests.support.urls import with_query

pytestmark = [pytest.mark.server, pytest.mark.swift]


def test_a_chunked_upload_moves_between_instances_and_restarts(swift_native: SwiftNative) -> None:
    # 1 MiB segments, so that chunks span several and end mid-segment.
    parameters = swift_native.fresh_parameters(chunksize=1 << 20, secretkey="instances-key")
    storage = {"swift": parameters}
    data = os.urandom(5 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    step = (1 << 20) + 17
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    with WharfServer(storage=storage) as first, WharfServer(storage=storage) as second:
        urls = [first.url, second.url]
        with httpx.Client(timeout=60) as client:
            location = client.post(f"{first.url}/v2/sw/chunked/blobs/uploads/").headers["Location"]
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
            # A pull is redirected to a temp URL of the blob, which Swift serves.
            blob = f"{first.url}/v2/sw/chunked/blobs/{digest}"
            redirect = client.get(blob)
            assert redirect.status_code == 307
            target = redirect.headers["Location"]
            assert target.startswith(swift_native.storage_url + "/")
            assert "temp_url_sig=" in target
            followed = client.get(blob, follow_redirects=True)
            assert followed.status_code == 200
            assert followed.content == data
    # Nothing left of the session: only the blob's manifest, its segments and the links.
    names = swift_native.names(parameters["container"])
    assert not [name for name in names if "/_uploads/" in name]
    segments = [name for name in names if name.startswith("segments/")]
    assert len({name.rsplit("/", 1)[0] for name in segments}) == 1
