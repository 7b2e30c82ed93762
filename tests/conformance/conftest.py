"""Fixtures for the OCI distribution-spec conformance suite.

By default each storage backend gets its own wharf server, started once and shared by the four
workflows, which run in the Go suite's order (pull, push, content discovery, content
management) with their tests in file order. With ``OCI_ROOT_URL`` set, the suite runs once
against that registry instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.content import build_content
from tests.conformance.fixtures import OciClient, Settings, Suite
from tests.support.server import WharfServer

_HERE = Path(__file__).parent
_WORKFLOW_ORDER = {
    "test_pull.py": 0,
    "test_push.py": 1,
    "test_discovery.py": 2,
    "test_management.py": 3,
}

#: storage section for WharfServer per parameter; None means its default (filesystem).
_STORAGES: dict[str, dict[str, Any] | None] = {"filesystem": None, "inmemory": {"inmemory": {}}}
_TARGETS = ["external"] if os.environ.get("OCI_ROOT_URL") else list(_STORAGES)


@pytest.fixture(scope="session")
def oci_settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session", params=_TARGETS)
def registry_url(request: pytest.FixtureRequest, oci_settings: Settings) -> Iterator[str]:
    """The registry's base URL: ``OCI_ROOT_URL``, or a wharf server with the given storage."""
    if request.param == "external":
        assert oci_settings.root_url is not None
        yield oci_settings.root_url
        return
    with WharfServer(storage=_STORAGES[request.param]) as server:
        yield server.url


@pytest.fixture(scope="session")
def suite(oci_settings: Settings, registry_url: str) -> Iterator[Suite]:
    """Settings, client and freshly generated content for one registry."""
    client = OciClient(oci_settings, registry_url)
    content = build_content(
        blob_digest=oci_settings.blob_digest, manifest_digest=oci_settings.manifest_digest
    )
    try:
        yield Suite(oci_settings, client, content)
    finally:
        client.close()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the workflows in the Go suite's order, per registry, keeping file order within.

    pytest has already grouped the items by registry (a session-scoped parameter); this
    only reorders the conformance items among the places they already hold.
    """
    slots = [i for i, item in enumerate(items) if item.path.parent == _HERE]
    if not slots:
        return
    targets: dict[str, int] = {}

    def key(position: int) -> tuple[int, int, int]:
        item = items[position]
        callspec = getattr(item, "callspec", None)
        target = str(callspec.params.get("registry_url", "")) if callspec else ""
        return (
            targets.setdefault(target, len(targets)),
            _WORKFLOW_ORDER.get(item.path.name, len(_WORKFLOW_ORDER)),
            position,
        )

    ordered = [items[position] for position in sorted(slots, key=key)]
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
