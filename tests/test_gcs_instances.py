"""Two wharf instances on one GCS bucket (fake-gcs-server), no Redis: a chunked upload is
continued on the other instance and after a restart, and a pull follows the signed URL (V4) to
the store."""

from __future__ import annotations

import hashlib
import os
import urllib.parse

import httpx
import pytest

from tests.support.gcs import GCSServer
from tests.support.server import WharfServer
from tests.support.urls import with_query

pytestmark = [pytest.mark.server, pytest.mark.gcs]


def test_a_chunked_upload_moves_between_instances_and_restarts(
    gcs_server: GCSServer,
) -> None:
    storage = {"gcs": gcs_server.fresh_parameters()}
    data = os.urandom(9 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    chunks = [data[i : i + (2 << 20) + 17] for i in range(0, len(data), (2 << 20) + 17)]
    with WharfServer(storage=storage) as first, WharfServer(storage=storage) as second:
        urls = [first.url, second.url]
        with httpx.Client(timeout=60) as client:
            location = client.post(f"{first.url}/v2/gs/chunked/blobs/uploads/").headers["Location"]
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
            blob = f"{first.url}/v2/gs/chunked/blobs/{digest}"
            redirect = client.get(blob)
            assert redirect.status_code == 307
            target = redirect.headers["Location"]
            assert target.startswith(gcs_server.endpoint + "/")
            assert "X-Goog-Signature=" in target
            followed = client.get(blob, follow_redirects=True)
            assert followed.status_code == 200
            assert followed.content == data
    # Nothing is left beside the blob: the session's parts were composed and deleted.
    names = gcs_server.names(storage["gcs"]["bucket"])
    leftovers = [n for n in names if "#part." in n or "#compose." in n or "/_uploads/" in n]
    assert not leftovers, names
