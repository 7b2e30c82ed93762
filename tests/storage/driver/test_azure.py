"""The Azure driver: the contract on Azurite, and what only Azure has."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.storage.driver.contract import DriverContract, random_bytes
from tests.support.azurite import ACCOUNT, AzuriteServer
from tests.support.faultproxy import FaultProxy, azure_operation
from wharf.config.model import StorageConfig
from wharf.storage.driver import DriverError, LeaseBusy, PathNotFound, StorageDriver
from wharf.storage.driver.azure import parse_parameters
from wharf.storage.driver.azure.client import RetryPolicy
from wharf.storage.driver.azure.driver import AzureDriver
from wharf.storage.driver.azure.layout import block_id
from wharf.storage.driver.checked import CheckedDriver
from wharf.storage.driver.factory import create_driver

pytestmark = pytest.mark.azure


@pytest.fixture
async def driver(azurite_server: AzuriteServer) -> AsyncIterator[StorageDriver]:
    # A fresh container per test, below a root directory.
    parameters = azurite_server.fresh_parameters()
    driver = create_driver(StorageConfig("azure", parameters))
    yield driver
    await driver.close()


class TestAzureContract(DriverContract):
    walk_etags = True
    mtime_resolution = 1.1  # Last-Modified has whole seconds


# -- helpers ------------------------------------------------------------------------------------

MiB = 1 << 20
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
_KNOBS = ("page_size", "block_size", "read_chunk", "read_ahead", "read_budget")


def make_driver(
    server: AzuriteServer, container: str, *, endpoint: str | None = None, **options: Any
) -> CheckedDriver:
    """A checked Azure driver on ``container``, through ``endpoint`` (a proxy) when given."""
    knobs = {name: options.pop(name) for name in _KNOBS if name in options}
    parameters = server.parameters(container, **options)
    if endpoint:
        parameters["serviceurl"] = endpoint + "/" + ACCOUNT
    return CheckedDriver(AzureDriver(parse_parameters(parameters), retry=FAST_RETRY, **knobs))


@pytest.fixture
def container(azurite_server: AzuriteServer) -> str:
    return azurite_server.create_container()


@pytest.fixture
def proxy(azurite_server: AzuriteServer) -> Iterator[FaultProxy]:
    with FaultProxy(azurite_server.endpoint, classify=azure_operation) as proxy:
        yield proxy


@pytest.fixture
async def proxied(
    azurite_server: AzuriteServer, container: str, proxy: FaultProxy
) -> AsyncIterator[CheckedDriver]:
    """A driver with 1 MiB blocks talking through ``proxy``."""
    driver = make_driver(azurite_server, container, endpoint=proxy.endpoint, block_size=MiB)
    yield driver
    await driver.close()


async def write(driver: StorageDriver, path: str, data: bytes, *, append: bool) -> int:
    writer = await driver.writer(path, append=append)
    await writer.write(data)
    await writer.close()
    return writer.size


def fetch(url: str) -> tuple[int, bytes]:
    """(status, body) of a plain GET, as a client following a redirect."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


# -- layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "prefix"),
    [
        ({}, ""),
        ({"rootdirectory": "/"}, ""),
        ({"rootdirectory": "/registry/"}, "registry/"),
        ({"rootdirectory": "a/b"}, "a/b/"),
        ({"legacyrootprefix": True}, "/"),  # Distribution 2.x
    ],
)
async def test_blob_names_follow_distribution(
    azurite_server: AzuriteServer, container: str, options: dict[str, Any], prefix: str
) -> None:
    driver = make_driver(azurite_server, container, **options)
    link = "/docker/registry/v2/repositories/library/alpine/_manifests/tags/3/current/link"
    await driver.put_content(link, b"sha256:abc")
    assert azurite_server.names(container) == [prefix + link[1:]]
    # What Distribution wrote is read as is.
    azurite_server.container(container).upload_blob(prefix + "docker/x", b"from go")
    assert await driver.get_content("/docker/x") == b"from go"
    assert await driver.list("/") == ["/docker"]
    await driver.close()


async def test_staged_blocks_stay_invisible(azurite_server: AzuriteServer, container: str) -> None:
    driver = make_driver(azurite_server, container, block_size=MiB)
    await driver.put_content("/up/startedat", b"now")
    assert await write(driver, "/up/data", random_bytes(2 * MiB + 5), append=False) == 2 * MiB + 5
    assert azurite_server.names(container) == ["up/startedat"]
    assert azurite_server.staged(container) == ["up/data"]
    assert await driver.list("/up") == ["/up/startedat"]
    assert [info.path async for info in driver.walk("/")] == ["/up", "/up/startedat"]
    with pytest.raises(PathNotFound):
        await driver.stat("/up/data")
    await driver.delete("/up")  # the session directory, staged blocks included
    assert azurite_server.staged(container) == []
    assert azurite_server.names(container) == []
    with pytest.raises(PathNotFound):
        await driver.writer("/up/data", append=True)
    await driver.close()


# -- the writer ---------------------------------------------------------------------------------


async def test_resume_in_another_driver(azurite_server: AzuriteServer, container: str) -> None:
    data = random_bytes(5 * MiB + 1)
    first = make_driver(azurite_server, container, block_size=MiB)
    second = make_driver(azurite_server, container, block_size=MiB)
    assert await write(first, "/u/data", data[: 3 * MiB + 7], append=False) == 3 * MiB + 7
    assert await write(second, "/u/data", data[3 * MiB + 7 : 4 * MiB], append=True) == 4 * MiB
    writer = await first.writer("/u/data", append=True)
    assert writer.size == 4 * MiB
    await writer.write(data[4 * MiB :])
    await writer.commit()
    assert await second.get_content("/u/data") == data
    assert azurite_server.names(container) == ["u/data"]
    assert azurite_server.staged(container) == []
    await first.close()
    await second.close()


async def test_a_resume_state_needs_no_listing(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(3 * MiB)
    writer = await proxied.writer("/u/data")
    await writer.write(data[:MiB])
    await writer.close()
    state = writer.resume_state()
    assert state is not None
    assert 0 < state.memory_size < 4096
    proxy.recorded()
    proxy.clear()
    writer = await proxied.resume_writer("/u/data", state)
    assert writer.size == MiB
    await writer.write(data[MiB:])
    await writer.commit()
    assert proxy.operations() == ["PutBlock", "PutBlock", "PutBlockList"]
    assert await proxied.get_content("/u/data") == data


async def test_small_appends_send_each_byte_once(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(2 * MiB + 100)
    chunk = 256 * 1024
    await write(proxied, "/u/data", data[:chunk], append=False)
    for start in range(chunk, len(data), chunk):
        await write(proxied, "/u/data", data[start : start + chunk], append=True)
    operations = proxy.operations()
    assert not {"CopyBlob", "PutBlockList", "PutBlob", "GetBlob"} & set(operations)
    sent = sum(int(r.headers.get("content-length", 0)) for r in proxy.recorded())
    assert sent < 1.01 * len(data)
    writer = await proxied.writer("/u/data", append=True)
    await writer.commit()
    assert await proxied.get_content("/u/data") == data


async def test_leftover_blocks_never_join_the_file(
    azurite_server: AzuriteServer, container: str
) -> None:
    """Blocks a killed writer staged past a gap, or under an older generation, stay off the
    file, and the next writer's blocks supersede them."""
    driver = make_driver(azurite_server, container, block_size=MiB)
    old = random_bytes(4 * MiB)
    blob = azurite_server.container(container).get_blob_client("u/data")
    for offset in (0, MiB, 3 * MiB):  # the block at 2 MiB never landed
        blob.stage_block(block_id(1 << 16, offset), old[offset : offset + MiB])
    writer = await driver.writer("/u/data", append=True)
    assert writer.size == 2 * MiB
    new = random_bytes(2 * MiB + 3)
    await writer.write(new[: MiB + 1])  # a block at 2 MiB, then one at 3 MiB + 1
    await writer.close()
    writer = await driver.writer("/u/data", append=True)
    assert writer.size == 3 * MiB + 1  # not the old block at 3 MiB
    await writer.write(new[MiB + 1 :])
    await writer.commit()
    assert await driver.get_content("/u/data") == old[: 2 * MiB] + new
    await driver.close()


async def test_continue_an_upload_distribution_started(
    azurite_server: AzuriteServer, container: str
) -> None:
    """Distribution keeps an upload in progress as an append blob: it is continued as one."""
    blob = azurite_server.container(container).get_blob_client("r/_uploads/u/data")
    blob.create_append_blob()
    head = random_bytes(5 * MiB + 3)
    for start in range(0, len(head), 4 * MiB):
        blob.append_block(head[start : start + 4 * MiB])
    driver = make_driver(azurite_server, container, rootdirectory="/r")
    writer = await driver.writer("/_uploads/u/data", append=True)
    assert writer.size == len(head)
    await writer.write(b"tail" * 1000)
    await writer.commit()
    assert await driver.get_content("/_uploads/u/data") == head + b"tail" * 1000
    await driver.close()


async def test_append_to_a_committed_file(azurite_server: AzuriteServer, container: str) -> None:
    driver = make_driver(azurite_server, container, block_size=MiB)
    first, second = random_bytes(3 * MiB + 5), random_bytes(100)
    await driver.put_content("/f", first)
    writer = await driver.writer("/f", append=True)
    assert writer.size == len(first)
    await writer.commit()  # nothing written: the committed blob is the file
    writer = await driver.writer("/f", append=True)
    await writer.write(second)
    await writer.commit()
    assert await driver.get_content("/f") == first + second
    await driver.close()


async def test_cancel_and_purge_leave_nothing(
    azurite_server: AzuriteServer, container: str
) -> None:
    driver = make_driver(azurite_server, container, block_size=MiB, rootdirectory="/r")
    writer = await driver.writer("/a/data")
    await writer.write(random_bytes(MiB + 1))
    await writer.cancel()
    assert azurite_server.staged(container) == []
    await write(driver, "/a/_uploads/u/data", random_bytes(MiB + 1), append=False)
    azure = driver.inner
    assert isinstance(azure, AzureDriver)
    now = datetime.now(UTC)
    assert await azure.purge_uncommitted(now - timedelta(hours=1)) == []
    later = now + timedelta(minutes=1)
    assert await azure.purge_uncommitted(later, dry_run=True) == ["/a/_uploads/u/data"]
    assert azurite_server.staged(container) == ["r/a/_uploads/u/data"]
    assert await azure.purge_uncommitted(later) == ["/a/_uploads/u/data"]
    assert azurite_server.staged(container) == []
    assert azurite_server.names(container) == []
    await driver.close()


# -- leases -------------------------------------------------------------------------------------


async def test_leases_exclude_other_instances(
    azurite_server: AzuriteServer, container: str
) -> None:
    first = make_driver(azurite_server, container)
    second = make_driver(azurite_server, container)
    await first.put_content("/u/startedat", b"now")
    held = await first.lease("/u/startedat")
    with pytest.raises(LeaseBusy):
        await second.lease("/u/startedat")
    assert azurite_server.names(container) == ["u/startedat", "u/startedat#lease"]
    await held.release()
    taken = await second.lease("/u/startedat", after=held.turn)
    assert taken.turn == (held.turn or 0) + 1
    # Deleting the directory breaks the lease blob's lease and takes it along.
    await second.delete("/u")
    await taken.release(deleted=True)
    assert azurite_server.names(container) == []
    with pytest.raises(PathNotFound):
        await first.lease("/u/startedat")
    await first.close()
    await second.close()


# -- move, redirects ----------------------------------------------------------------------------


async def test_move_is_a_server_side_copy(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(3 * MiB)
    await proxied.put_content("/up/data", data)
    proxy.recorded()  # the put's own record lands after its answer
    proxy.clear()
    await proxied.move("/up/data", "/blobs/data")
    assert proxy.operations() == ["GetBlobProperties", "CopyBlob", "DeleteBlob"]
    assert await proxied.get_content("/blobs/data") == data
    with pytest.raises(PathNotFound):
        await proxied.stat("/up/data")


async def test_redirects_are_sas_urls(azurite_server: AzuriteServer, container: str) -> None:
    driver = make_driver(azurite_server, container)
    await driver.put_content("/blob", b"signed bytes")
    url = await driver.redirect_url("/blob")
    assert url is not None
    assert "sig=" in url
    assert "sp=r" in url
    assert (await asyncio.to_thread(fetch, url)) == (200, b"signed bytes")
    forged = re.sub(r"sig=[^&]+", "sig=AAAA", url)
    assert (await asyncio.to_thread(fetch, forged))[0] == 403
    assert (await asyncio.to_thread(fetch, url.partition("?")[0]))[0] in (401, 403, 404)
    assert await driver.redirect_url("/blob", "PUT") is None
    await driver.close()


# -- faults -------------------------------------------------------------------------------------


async def test_transient_errors_are_retried(proxy: FaultProxy, proxied: StorageDriver) -> None:
    data = random_bytes(3 * MiB)
    proxy.fail("PutBlock", "status", status=503)
    proxy.fail("PutBlob", "status", status=500)
    proxy.fail("GetBlob", "drop")
    proxy.fail("ListBlobs", "cut")
    proxy.fail("GetBlobProperties", "status", status=503, times=2)
    proxy.fail("PutBlockList", "lose")
    await proxied.put_content("/small", b"small")
    writer = await proxied.writer("/big")
    await writer.write(data)
    await writer.commit()
    assert await proxied.get_content("/big") == data
    assert await proxied.list("/") == ["/big", "/small"]
    assert (await proxied.stat("/small")).size == 5
    assert all(fault.times == 0 for fault in proxy.faults)
    assert proxy.count("PutBlock") == 4  # three blocks, one sent again


@pytest.mark.parametrize("failing", ["PutBlock", "PutBlockList"])
async def test_persistent_failures_leave_a_resumable_prefix(
    azurite_server: AzuriteServer,
    container: str,
    proxy: FaultProxy,
    proxied: StorageDriver,
    failing: str,
) -> None:
    data = random_bytes(5 * MiB + 5)
    await write(proxied, "/u/data", data[: 2 * MiB], append=False)
    proxy.fail(failing, "status", status=500, times=1000)
    writer = await proxied.writer("/u/data", append=True)

    async def send() -> None:
        await writer.write(data[2 * MiB :])
        await (writer.commit() if failing == "PutBlockList" else writer.close())

    with pytest.raises(DriverError) as exc:
        await send()
    assert exc.value.driver == "azure"
    await writer.close()
    assert azurite_server.names(container) == []  # never visible before a commit succeeds
    proxy.clear()
    writer = await proxied.writer("/u/data", append=True)
    size = writer.size
    assert 2 * MiB <= size <= len(data)
    await writer.write(data[size:])
    await writer.commit()
    assert await proxied.get_content("/u/data") == data
    assert azurite_server.staged(container) == []


async def test_a_missing_container_is_an_error_not_a_missing_file(
    azurite_server: AzuriteServer,
) -> None:
    driver = make_driver(azurite_server, "wharf-no-such-container")
    with pytest.raises(DriverError, match="ContainerNotFound") as exc:
        await driver.get_content("/a")
    assert not isinstance(exc.value, PathNotFound)
    await driver.close()


# -- parameters ---------------------------------------------------------------------------------

_BASE = {"accountname": "acct1", "accountkey": "c2VjcmV0", "container": "registry"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"container": None}, "container must name a container"),
        ({"container": "Bad_Name"}, "container must name a container"),
        ({"accountname": "No"}, "accountname must be 3-24 lower-case"),
        ({"accountkey": None}, "accountkey is required with shared_key"),
        ({"accountkey": "not base64!"}, "accountkey must be the account's base64 key"),
        ({"accountname": None}, "accountname is required with shared_key"),
        ({"realm": "nodots"}, "realm must be a domain name"),
        ({"serviceurl": "ftp://x"}, "serviceurl must be a URL"),
        ({"credentials": "shared"}, "credentials must be a mapping"),
        ({"credentials": {"type": "sas"}}, "credentials.type must be one of shared_key"),
        ({"credentials": {"type": "client_secret", "clientid": "c", "tenantid": "t"}},
         "credentials.secret is required with client_secret"),
        ({"credentials": {"type": "client_secret", "user": "u"}},
         "unknown parameter 'credentials.user'"),
        ({"copy_status_poll_max_retry": -2}, "copy_status_poll_max_retry must be at least -1"),
        ({"copy_status_poll_delay": "soon"}, "copy_status_poll_delay must be a duration"),
        ({"max_retries": 3, "copy_status_poll_max_retry": 4}, "give copy_status_poll_max_retry"),
        ({"legacyrootprefix": "maybe"}, "legacyrootprefix must be a boolean"),
        ({"chunksize": 4}, "unknown parameter 'chunksize' for storage driver 'azure'"),
    ],
)  # fmt: skip
def test_parameters_are_checked(changes: dict[str, Any], message: str) -> None:
    parameters = {key: value for key, value in {**_BASE, **changes}.items() if value is not None}
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        create_driver(StorageConfig("azure", parameters))
    assert "\n" not in str(exc.value)
    assert "c2VjcmV0" not in str(exc.value)


def test_parameters_as_distribution_and_the_environment_give_them() -> None:
    parameters = parse_parameters(
        {
            **_BASE,
            "realm": "core.chinacloudapi.cn",
            "max_retries": "-1",  # Distribution 3.0's name, as an environment override
            "retry_delay": "250ms",
            "rootdirectory": None,
        }
    )
    assert parameters.serviceurl == "https://acct1.blob.core.chinacloudapi.cn"
    assert (parameters.copy_status_poll_max_retry, parameters.copy_status_poll_delay) == (-1, 0.25)
    assert parameters.credentials_type == "shared_key"
    assert "c2VjcmV0" not in repr(parameters)
    token = parse_parameters(
        {
            "accountname": "acct1",
            "container": "registry",
            "credentials": {"type": "client_secret", "clientid": "c", "tenantid": "t",
                            "secret": "s3cr3t"},
        }
    )  # fmt: skip
    assert (token.credentials_type, token.accountkey) == ("client_secret", "")
    assert "s3cr3t" not in repr(token)
    default = parse_parameters({"container": "registry", "serviceurl": "https://blobs.internal",
                                "credentials": {"type": "default_credentials"}})  # fmt: skip
    assert default.serviceurl == "https://blobs.internal"
    connection = parse_parameters(
        {
            "container": "registry",
            "connectionstring": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            "AccountKey=c2VjcmV0;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        }
    )
    assert connection.serviceurl == "http://127.0.0.1:10000/devstoreaccount1"
    assert (connection.accountname, connection.accountkey) == ("devstoreaccount1", "c2VjcmV0")
