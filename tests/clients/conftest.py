"""Registries for the real-client tests: wharf on each storage, and the reference registry."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support.clients import Registry
from tests.support.reference_registry import ReferenceRegistry, docker_registry_binary
from tests.support.server import WharfServer


def _start(kind: str) -> WharfServer | ReferenceRegistry:
    server: WharfServer | ReferenceRegistry
    if kind == "reference":
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
    server = _start(request.param)
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
        pytest.param("reference", marks=pytest.mark.reference),
    ]
)
def registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A running registry: wharf on filesystem and in-memory storage, and docker-registry."""
    yield from _serve(request)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
