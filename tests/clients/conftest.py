"""Registries for the real-client tests: wharf on each storage, and the reference registry.

wharf on s3, azure and gcs keeps its default: blob GETs and HEADs answer 307 to a presigned
S3 URL, a SAS URL on Azurite or a V4 signed URL on fake-gcs-server, which the clients (and the
tests' own checks) follow.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support.azurite import AzuriteServer
from tests.support.clients import Registry
from tests.support.gcs import GCSServer
from tests.support.reference_registry import ReferenceRegistry, docker_registry_binary
from tests.support.s3servers import S3Server
from tests.support.server import WharfServer
from tests.support.swift import SwiftNative


def _start(kind: str, request: pytest.FixtureRequest) -> WharfServer | ReferenceRegistry:
    server: WharfServer | ReferenceRegistry
    if kind == "wharf-swift":
        swift: SwiftNative = request.getfixturevalue("swift_native")
        server = WharfServer(storage={"swift": swift.fresh_parameters(secretkey="wharf-tempurl")})
    elif kind == "wharf-azure":
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        server = WharfServer(storage={"azure": azurite.fresh_parameters()})
    elif kind == "wharf-gcs":
        gcs: GCSServer = request.getfixturevalue("gcs_server")
        server = WharfServer(storage={"gcs": gcs.fresh_parameters()})
    elif kind.startswith("wharf-s3-"):
        s3: S3Server = request.getfixturevalue(kind.removeprefix("wharf-s3-") + "_server")
        server = WharfServer(storage={"s3": s3.fresh_parameters()})
    elif kind == "reference":
        if docker_registry_binary() is None:
            pytest.skip("docker-registry (Distribution 2.8) is not installed")
        server = ReferenceRegistry()
    elif kind == "wharf-inmemory":
        server = WharfServer(storage={"inmemory": {}})
    else:
        server = WharfServer()
    try:
        return server.start()
    except BaseException:
        server.cleanup()
        raise


def _serve(request: pytest.FixtureRequest) -> Iterator[Registry]:
    server = _start(request.param, request)
    try:
        yield server
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"--- {request.param} log (tail) ---\n{server.log()[-6000:]}")
        server.cleanup()


@pytest.fixture(
    params=[
        "wharf-filesystem",
        "wharf-inmemory",
        pytest.param("wharf-s3-moto", marks=pytest.mark.s3),
        pytest.param("wharf-s3-swift", marks=pytest.mark.s3),
        pytest.param("wharf-azure", marks=pytest.mark.azure),
        pytest.param("wharf-swift", marks=pytest.mark.swift),
        pytest.param("wharf-gcs", marks=pytest.mark.gcs),
        pytest.param("reference", marks=pytest.mark.reference),
    ]
)
def registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A running registry: wharf on filesystem, in-memory, s3 (on moto and on Swift), azure
    (on Azurite) and gcs (on fake-gcs-server) storage, and docker-registry."""
    yield from _serve(request)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
