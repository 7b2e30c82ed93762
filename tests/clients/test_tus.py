"""Real tus clients against wharf's tus endpoint: tuspy (Python) and tus-js-client (Node), on
the filesystem and on S3 (moto and Swift); the finished files pulled back with oras and skopeo.

On S3 the bucket is looked at while an upload is in progress (the ``.info``, the pending
objects and the multipart upload of tusd's s3store design) and after it finished or was
terminated (nothing of its bytes left).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.clients import Skopeo, binary
from tests.support.s3servers import S3Server
from tests.support.server import WharfServer, free_port

tus_client = pytest.importorskip("tusclient.client", reason="tuspy is not installed")
oras_provider = pytest.importorskip("oras.provider")

pytestmark = [pytest.mark.client, pytest.mark.server]

NODE_MODULES = Path(__file__).resolve().parents[2] / ".ci" / "node" / "node_modules"
UPLOAD_JS = Path(__file__).with_name("tus") / "upload.cjs"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_TYPE = {"Content-Type": "application/offset+octet-stream"}
MIB = 1 << 20


def _data(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


StorageFactory = Callable[[], dict[str, Any]]


@pytest.fixture(
    params=[
        "filesystem",
        pytest.param("moto", marks=pytest.mark.s3),
        pytest.param("swift", marks=pytest.mark.s3),
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, StorageFactory]:
    """The storage kind and a factory of one shared storage section (for several instances)."""
    if request.param == "filesystem":
        section = {"filesystem": {"rootdirectory": str(tmp_path / "data")}}
    else:
        s3: S3Server = request.getfixturevalue(f"{request.param}_server")
        section = {"s3": s3.fresh_parameters()}
    return request.param, lambda: section


def _server(section: dict[str, Any], **tus: Any) -> WharfServer:
    config: dict[str, Any] = {"tus": {"enabled": True, **tus}}
    return WharfServer(storage=section, config=config)


class _Oras(oras_provider.Registry):  # type: ignore[misc,name-defined]
    do_request = oras_provider.Registry.do_request.__wrapped__  # no retries with long sleeps

    def __init__(self, host: str) -> None:
        super().__init__(hostname=host, insecure=True)


def _pull_oras(server: WharfServer, reference: str, outdir: Path) -> dict[str, bytes]:
    pulled = _Oras(server.host).pull(f"{server.host}/{reference}", outdir=str(outdir))
    return {Path(path).name: Path(path).read_bytes() for path in pulled}


def _tuspy(server: WharfServer, data: bytes, chunk: int, **metadata: str) -> Any:
    client = tus_client.TusClient(server.url + "/tus/")
    return client.uploader(file_stream=io.BytesIO(data), chunk_size=chunk, metadata=metadata)


def _node(**options: Any) -> dict[str, Any]:
    node = binary("node")
    if node is None or not (NODE_MODULES / "tus-js-client").is_dir():
        # CI installs both: missing there is a broken setup, not an optional extra.
        if os.environ.get("CI"):
            pytest.fail("node or tus-js-client (npm, .ci/node) missing")
        pytest.skip("node or tus-js-client (npm, .ci/node) missing")
    result = subprocess.run(
        [node, str(UPLOAD_JS), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def _head(url: str) -> httpx.Response:
    return httpx.head(url, headers=TUS)


# -- the whole path: tus in, OCI out ------------------------------------------------------------


def test_tuspy_upload_pulled_by_oras_and_skopeo(
    storage: tuple[str, StorageFactory], tmp_path: Path
) -> None:
    data = _data(700_000)
    with _server(storage[1]()) as server:
        uploader = _tuspy(
            server, data, 256 * 1024, repository="files/report", filename="report.bin", tag="v1"
        )
        uploader.upload()
        head = _head(uploader.url)
        assert head.status_code == 200
        assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(data))
        assert head.headers["docker-content-digest"] == _sha256(data)

        assert _pull_oras(server, "files/report:v1", tmp_path / "oras") == {"report.bin": data}

        if binary("skopeo") is None:
            pytest.skip("skopeo is not installed")
        with Skopeo(tmp_path / "skopeo", server) as skopeo:
            skopeo.copy(f"docker://{server.host}/files/report:v1", f"dir:{tmp_path / 'dir'}")
        layer = tmp_path / "dir" / hashlib.sha256(data).hexdigest()
        assert layer.read_bytes() == data


def test_tus_js_client_deferred_length_and_parallel_concatenation(
    storage: tuple[str, StorageFactory], tmp_path: Path
) -> None:
    data = _data(600_000, seed=3)
    source = tmp_path / "file.bin"
    source.write_bytes(data)
    with _server(storage[1]()) as server:
        endpoint = server.url + "/tus/"
        deferred = _node(
            endpoint=endpoint,
            file=str(source),
            metadata={"repository": "files/js", "filename": "a.bin", "tag": "deferred"},
            chunkSize=150_000,
            deferLength=True,
        )
        parallel = _node(
            endpoint=endpoint,
            file=str(source),
            metadata={"repository": "files/js", "filename": "b.bin", "tag": "parallel"},
            parallelUploads=3,
        )
        final = _head(parallel["url"])
        assert final.headers["upload-concat"].startswith("final;")
        assert len(final.headers["upload-concat"].split()) == 3
        for url in (deferred["url"], parallel["url"]):
            assert _head(url).headers["docker-content-digest"] == _sha256(data)
        assert _pull_oras(server, "files/js:deferred", tmp_path / "a") == {"a.bin": data}
        assert _pull_oras(server, "files/js:parallel", tmp_path / "b") == {"b.bin": data}


@pytest.mark.s3
@pytest.mark.parametrize("kind", ["moto", "swift"])
def test_partial_uploads_joined_by_part_copies(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Partial uploads of S3's smallest part or more are joined inside the bucket.
    s3: S3Server = request.getfixturevalue(f"{kind}_server")
    data = _data(21 * MIB // 2, seed=17)
    source = tmp_path / "file.bin"
    source.write_bytes(data)
    with _server({"s3": s3.fresh_parameters()}) as server:
        joined = _node(
            endpoint=server.url + "/tus/",
            file=str(source),
            metadata={"repository": "files/joined", "filename": "j.bin", "tag": "v1"},
            parallelUploads=2,
        )
        assert _head(joined["url"]).headers["docker-content-digest"] == _sha256(data)
        assert _pull_oras(server, "files/joined:v1", tmp_path / "out") == {"j.bin": data}


# -- interruptions ------------------------------------------------------------------------------


def _patch_then_die(server: WharfServer, url: str, offset: int, sent: bytes, declared: int) -> None:
    """Send a PATCH's head and ``sent`` bytes of a ``declared``-byte body, then kill -9 the
    server while it waits for the rest."""
    path = url.removeprefix(server.url)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: {server.host}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + sent)
        time.sleep(0.5)  # received and written by the server
        server.kill()


def test_resumed_after_kill_9_on_a_second_instance(
    storage: tuple[str, StorageFactory], tmp_path: Path
) -> None:
    kind, section = storage
    data = _data(900_000, seed=5)
    first = _server(section()).start()
    try:
        uploader = _tuspy(
            server=first, data=data, chunk=200_000, repository="files/crash", tag="v1"
        )
        uploader.upload(stop_at=400_000)
        assert uploader.offset == 400_000
        upload_id = uploader.url.rpartition("/")[2]
        if kind == "filesystem":
            # Killed in the middle of a PATCH: what it stored is kept (its lease dies with it).
            _patch_then_die(first, uploader.url, 400_000, data[400_000:500_000], 300_000)
        else:
            # On S3 a lease held by a dead process lasts until it expires (30 s): killed
            # between requests here, and interrupted mid-request by the client below.
            first.kill()
    finally:
        first.cleanup()
    with _server(section()) as second:
        url = f"{second.url}/tus/{upload_id}"
        if kind != "filesystem":
            interrupted = httpx.Client(headers={**TUS, **OFFSET_TYPE})
            with pytest.raises((httpx.HTTPError, ConnectionError)):
                interrupted.patch(
                    url,
                    headers={"Upload-Offset": "400000", "Content-Length": "300000"},
                    content=_stops_after(data[400_000:450_000]),
                    timeout=2,
                )
            interrupted.close()
        offset = _wait_for_offset(url)
        assert 400_000 <= offset <= 500_000
        client = tus_client.TusClient(second.url + "/tus/")
        resumed = client.uploader(file_stream=io.BytesIO(data), chunk_size=200_000, url=url)
        assert resumed.offset == offset
        resumed.upload()
        assert _head(url).headers["docker-content-digest"] == _sha256(data)
        assert _pull_oras(second, "files/crash:v1", tmp_path / "out") == {upload_id: data}


def _stops_after(sent: bytes) -> Iterator[bytes]:
    yield sent
    raise ConnectionError("the client gives up mid-body")


def _wait_for_offset(url: str) -> int:
    """The offset once the upload is free again (the interrupted request has let go)."""
    deadline = time.monotonic() + 10
    while True:
        response = _head(url)
        assert response.status_code == 200, response.text
        offset = int(response.headers["upload-offset"])
        probe = httpx.patch(
            url, headers={**TUS, **OFFSET_TYPE, "Upload-Offset": str(offset)}, content=b""
        )
        if probe.status_code == 204 or time.monotonic() > deadline:
            assert probe.status_code == 204, probe.text
            return offset
        time.sleep(0.2)


# -- checksums, termination, expiry, limits, auth -----------------------------------------------


def test_checksums_right_and_wrong(tmp_path: Path) -> None:
    data = _data(300_000, seed=11)
    with _server({"filesystem": {"rootdirectory": str(tmp_path / "data")}}) as server:
        client = tus_client.TusClient(server.url + "/tus/")
        uploader = client.uploader(
            file_stream=io.BytesIO(data),
            chunk_size=100_000,
            metadata={"repository": "files/sums"},
            upload_checksum=True,  # sha1 on every chunk
        )
        uploader.upload(stop_at=100_000)
        url = uploader.url
        chunk = data[100_000:200_000]
        wrong = base64.b64encode(hashlib.sha256(b"not the chunk").digest()).decode()
        response = httpx.patch(
            url,
            headers={**TUS, **OFFSET_TYPE, "Upload-Offset": "100000"}
            | {"Upload-Checksum": f"sha256 {wrong}"},
            content=chunk,
        )
        assert response.status_code == 460, response.text
        assert _head(url).headers["upload-offset"] == "100000"  # the chunk was discarded
        for algorithm, start in (("sha256", 100_000), ("md5", 200_000)):
            part = data[start : start + 100_000]
            digest = base64.b64encode(hashlib.new(algorithm, part).digest()).decode()
            response = httpx.patch(
                url,
                headers={**TUS, **OFFSET_TYPE, "Upload-Offset": str(start)}
                | {"Upload-Checksum": f"{algorithm} {digest}"},
                content=part,
            )
            assert response.status_code == 204, response.text
        assert _head(url).headers["docker-content-digest"] == _sha256(data)
        options = httpx.options(server.url + "/tus/")
        assert options.headers["tus-checksum-algorithm"] == "sha1,sha256,md5"
        assert "checksum" in options.headers["tus-extension"].split(",")


def test_wrong_offset_termination_and_expiry(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with _server(
        {"filesystem": {"rootdirectory": str(root)}}, expiration="2s", purgeinterval="1s"
    ) as server:
        created = httpx.post(
            server.url + "/tus/",
            headers={
                **TUS,
                "Upload-Length": "1000",
                "Upload-Metadata": _metadata(repository="t/x"),
            },
        )
        assert created.status_code == 201, created.text
        url = server.url + created.headers["location"]
        conflict = httpx.patch(
            url, headers={**TUS, **OFFSET_TYPE, "Upload-Offset": "5"}, content=b"x"
        )
        assert conflict.status_code == 409
        assert (
            httpx.patch(
                url, headers={**TUS, **OFFSET_TYPE, "Upload-Offset": "0"}, content=b"x" * 10
            ).status_code
            == 204
        )
        upload_id = url.rpartition("/")[2]
        assert (root / "wharf" / "tus" / f"{upload_id}.info").exists()
        time.sleep(3.5)  # expired, and purged by the next round
        assert _head(url).status_code == 404
        assert not (root / "wharf" / "tus" / f"{upload_id}.info").exists()
        uploads = root / "docker/registry/v2/repositories/t/x/_uploads"
        assert not (uploads / upload_id).exists()

    with _server({"filesystem": {"rootdirectory": str(root)}}) as server:
        created = httpx.post(
            server.url + "/tus/",
            headers={
                **TUS,
                "Upload-Length": "1000",
                "Upload-Metadata": _metadata(repository="t/x"),
            },
        )
        url = server.url + created.headers["location"]
        assert httpx.delete(url, headers=TUS).status_code == 204
        assert _head(url).status_code == 404
        assert not list((root / "wharf" / "tus").glob("*.info"))


def test_protocol_errors_and_limits(tmp_path: Path) -> None:
    section = {"filesystem": {"rootdirectory": str(tmp_path / "data")}}
    with _server(section, maxsize=1000, maxuploadsperclient=2, maxmetadatasize=100) as server:
        endpoint = server.url + "/tus/"
        meta = {"Upload-Metadata": _metadata(repository="lim/a")}
        options = httpx.options(endpoint)
        assert options.status_code == 204
        assert options.headers["tus-version"] == "1.0.0"
        assert options.headers["tus-max-size"] == "1000"
        assert "concatenation" in options.headers["tus-extension"]
        no_version = httpx.post(endpoint, headers={"Upload-Length": "10", **meta})
        assert no_version.status_code == 412
        assert httpx.post(endpoint, headers={**TUS, "Upload-Length": "10"}).status_code == 400
        too_big = httpx.post(endpoint, headers={**TUS, "Upload-Length": "1001", **meta})
        assert too_big.status_code == 413
        long_meta = {"Upload-Metadata": _metadata(repository="lim/a", filename="f" * 200)}
        assert (
            httpx.post(endpoint, headers={**TUS, "Upload-Length": "10", **long_meta}).status_code
            == 413
        )
        bad_name = {"Upload-Metadata": _metadata(repository="Not/Valid")}
        assert (
            httpx.post(endpoint, headers={**TUS, "Upload-Length": "1", **bad_name}).status_code
            == 400
        )
        urls = []
        for _ in range(2):
            created = httpx.post(endpoint, headers={**TUS, "Upload-Length": "10", **meta})
            assert created.status_code == 201
            urls.append(server.url + created.headers["location"])
        limited = httpx.post(endpoint, headers={**TUS, "Upload-Length": "10", **meta})
        assert limited.status_code == 429
        over = httpx.patch(
            urls[0], headers={**TUS, **OFFSET_TYPE, "Upload-Offset": "0"}, content=b"x" * 11
        )
        assert over.status_code == 413
        # Finishing one frees a place.
        done = httpx.patch(
            urls[1], headers={**TUS, **OFFSET_TYPE, "Upload-Offset": "0"}, content=b"y" * 10
        )
        assert done.status_code == 204
        assert done.headers["docker-content-digest"] == _sha256(b"y" * 10)
        assert (
            httpx.post(endpoint, headers={**TUS, "Upload-Length": "10", **meta}).status_code == 201
        )
        assert _head(server.url + "/tus/00000000-0000-0000-0000-000000000000").status_code == 404


def test_push_access_is_required(tmp_path: Path) -> None:
    bcrypt = pytest.importorskip("bcrypt")
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"alice:{hashed}\n")
    server = WharfServer(
        storage={"filesystem": {"rootdirectory": str(tmp_path / "data")}},
        config={
            "tus": {"enabled": True},
            "auth": {"htpasswd": {"realm": "wharf", "path": str(htpasswd)}},
        },
    )
    data = _data(50_000)
    with server:
        endpoint = server.url + "/tus/"
        meta = {"Upload-Metadata": _metadata(repository="private/a")}
        anonymous = httpx.post(endpoint, headers={**TUS, "Upload-Length": "10", **meta})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Basic")
        token = base64.b64encode(b"alice:secret").decode()
        client = tus_client.TusClient(endpoint, headers={"Authorization": f"Basic {token}"})
        uploader = client.uploader(
            file_stream=io.BytesIO(data), chunk_size=20_000, metadata={"repository": "private/a"}
        )
        uploader.upload()
        assert _head(uploader.url).status_code == 401
        auth = {"Authorization": f"Basic {token}"}
        answered = httpx.head(uploader.url, headers={**TUS, **auth})
        assert answered.headers["docker-content-digest"] == _sha256(data)


# -- what S3 holds -------------------------------------------------------------------------------


def _bucket_keys(s3: S3Server, section: dict[str, Any]) -> list[str]:
    client = s3.client()
    bucket = section["s3"]["bucket"]
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


def _multipart_keys(s3: S3Server, section: dict[str, Any]) -> list[str]:
    listed = s3.client().list_multipart_uploads(Bucket=section["s3"]["bucket"])
    return [upload["Key"] for upload in listed.get("Uploads", [])]


@pytest.mark.s3
def test_the_bucket_during_and_after_an_upload(moto_server: S3Server, tmp_path: Path) -> None:
    section = {"s3": moto_server.fresh_parameters()}
    data = _data(7 * MIB, seed=13)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with _server(section) as server:
        endpoint = server.url + "/tus/"
        for ending in ("finished", "terminated"):
            stopped = _node(
                endpoint=endpoint,
                file=str(source),
                metadata={"repository": "files/s3", "tag": ending},
                chunkSize=MIB,
                stopAfter=6 * MIB,
            )
            upload_id = stopped["url"].rpartition("/")[2]
            offset = int(_head(stopped["url"]).headers["upload-offset"])
            assert offset == 6 * MIB
            keys = [k for k in _bucket_keys(moto_server, section) if upload_id in k]
            assert f"wharf/tus/{upload_id}.info" in keys
            data_key = f"docker/registry/v2/repositories/files/s3/_uploads/{upload_id}/data"
            # 5 MiB became part 1 of the multipart upload, the 6th MiB waits as a pending
            # object (tusd's .part) for the next PATCH.
            assert [k for k in keys if k.startswith(data_key + "#pending.")] == [
                f"{data_key}#pending.{5 * MIB:020d}"
            ]
            assert _multipart_keys(moto_server, section) == [data_key]
            if ending == "finished":
                finished = upload_id
                _node(endpoint=endpoint, file=str(source), uploadUrl=stopped["url"], chunkSize=MIB)
                assert _head(stopped["url"]).headers["docker-content-digest"] == _sha256(data)
                left = {f"wharf/tus/{upload_id}.info"}  # the digest, until it expires
            else:
                assert httpx.delete(stopped["url"], headers=TUS).status_code == 204
                left = set()
            keys = [k for k in _bucket_keys(moto_server, section) if upload_id in k]
            assert set(keys) == left
            assert _multipart_keys(moto_server, section) == []
        pulled = _pull_oras(server, "files/s3:finished", tmp_path / "out")
        # No filename in the metadata: the file is named after its upload.
        assert pulled == {finished: data}


def test_a_bearer_token_from_the_token_service(tmp_path: Path) -> None:
    from tests.auth.support import write_htpasswd

    users = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})
    port = free_port()
    access = [{"repository": "team/*", "push": ["alice"]}, {"repository": "**", "pull": ["*"]}]
    auth = {
        "token": {
            "realm": f"http://127.0.0.1:{port}/token",
            "service": "registry.test",
            "issuer": "wharf",
        },
        "tokenservice": {"users": str(users), "access": access},
    }
    section = {"filesystem": {"rootdirectory": str(tmp_path / "data")}}
    server = WharfServer(
        storage=section, config={"tus": {"enabled": True}, "auth": auth}, port=port
    )
    data = _data(40_000)

    def token(user: str, password: str) -> str:
        response = httpx.get(
            f"{server.url}/token",
            params={"service": "registry.test", "scope": "repository:team/app:pull,push"},
            auth=(user, password),
        )
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    with server:
        endpoint = server.url + "/tus/"
        meta = {"Upload-Metadata": _metadata(repository="team/app")}
        challenge = httpx.post(endpoint, headers={**TUS, "Upload-Length": "10", **meta})
        assert challenge.status_code == 401
        assert 'scope="repository:team/app:push"' in challenge.headers["www-authenticate"]
        # bob may pull team/app but not push: his token does not carry push.
        bobs = {"Authorization": f"Bearer {token('bob', 'builder')}"}
        assert (
            httpx.post(endpoint, headers={**TUS, "Upload-Length": "10", **meta, **bobs}).status_code
            == 401
        )
        client = tus_client.TusClient(
            endpoint, headers={"Authorization": f"Bearer {token('alice', 'wonderland')}"}
        )
        uploader = client.uploader(
            file_stream=io.BytesIO(data), chunk_size=15_000, metadata={"repository": "team/app"}
        )
        uploader.upload()
        assert httpx.head(uploader.url, headers={**TUS, **bobs}).status_code == 401
