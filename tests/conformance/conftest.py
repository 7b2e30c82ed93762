"""Fixtures for the OCI distribution-spec conformance suite.

With ``OCI_ROOT_URL`` set, the suite runs once against that registry, configured by the Go
suite's environment variables. Otherwise it starts wharf, once per *target*: each storage
backend (``filesystem``, ``inmemory``, ``s3-moto`` and ``s3-swift``, marked ``s3``,
``azure`` on Azurite, ``swift`` on Swift's native API and ``gcs`` on fake-gcs-server, each
marked so) in the main configuration, and the embedded ones also in every other
configuration of :data:`_VARIANTS`, so that the tests the Go suite runs only in some
configurations (a teardown order, pulling existing content) run against wharf too, each
against its own server and content. A test runs on the
wharf targets whose settings match its ``only_with`` marker and whose workflows include its
own; against ``OCI_ROOT_URL`` every test runs and skips itself as in the Go suite.

The workflows run in the Go suite's order (pull, push, content discovery, content
management) per target, with their tests in file order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.content import Content, build_content
from tests.conformance.existing import (
    EXISTING_TAG_LIST,
    existing_image_env,
    push_existing_image,
    push_existing_tags,
)
from tests.conformance.fixtures import OciClient, Settings, Suite, Workflow
from tests.support.azurite import AzuriteServer
from tests.support.gcs import GCSServer
from tests.support.s3servers import S3Server
from tests.support.server import WharfServer
from tests.support.swift import SwiftNative

_HERE = Path(__file__).parent
_WORKFLOWS = {
    "test_pull.py": Workflow.PULL,
    "test_push.py": Workflow.PUSH,
    "test_discovery.py": Workflow.CONTENT_DISCOVERY,
    "test_management.py": Workflow.CONTENT_MANAGEMENT,
}
_WORKFLOW_ORDER = {name: position for position, name in enumerate(_WORKFLOWS)}

#: storage section for WharfServer per backend; None means its default (filesystem).
_STORAGES: dict[str, dict[str, Any] | None] = {"filesystem": None, "inmemory": {"inmemory": {}}}
#: s3 backends: the S3 server fixture each runs on (fresh storage per wharf server). Blob
#: GETs and HEADs are answered by wharf, not redirected: the strict layer checks the headers
#: of the final response, and S3's answer to a presigned URL has no Docker-Content-Digest.
#: The real-client tests (tests/clients) follow wharf's default redirects.
_S3_STORAGES = {"s3-moto": "moto_server", "s3-swift": "swift_server"}
#: azure on Azurite, as s3 (blob GETs answered by wharf); marked ``azure``.
_AZURE_STORAGES = {"azure": "azurite_server"}
#: swift on OpenStack Swift's native API, likewise; marked ``swift``.
_SWIFT_STORAGES = {"swift": "swift_native"}
#: gcs on fake-gcs-server, likewise; marked ``gcs``.
_GCS_STORAGES = {"gcs": "gcs_server"}

#: Settings for wharf unless the environment says otherwise: the strict layer, and a test of
#: mounting without ``from`` (wharf mounts any blob it holds).
_WHARF_DEFAULTS = {"OCI_STRICT": "1", "OCI_AUTOMATIC_CROSSMOUNT": "1"}

Preload = Callable[[OciClient, Content], None]


@dataclass(frozen=True)
class Variant:
    """One wharf configuration: environment overrides, the workflows it runs (None: all
    enabled ones) and content to push before the workflows start."""

    suffix: str
    env: Mapping[str, str]
    workflows: frozenset[Workflow] | None = None
    preload: Preload | None = None


_VARIANTS = (
    Variant("", {"OCI_DELETE_MANIFEST_BEFORE_BLOBS": "1"}),
    Variant("-blobs-first", {"OCI_DELETE_MANIFEST_BEFORE_BLOBS": "0"}),
    # The digests replace every generated one, so only the pull workflow can use them.
    Variant(
        "-existing-image",
        existing_image_env(),
        frozenset({Workflow.PULL}),
        push_existing_image,
    ),
    Variant(
        "-existing-tags",
        {"OCI_TAG_LIST": ",".join(EXISTING_TAG_LIST)},
        frozenset({Workflow.CONTENT_DISCOVERY}),
        push_existing_tags,
    ),
)


@dataclass(frozen=True)
class Target:
    """A registry the suite runs against: ``OCI_ROOT_URL``, or wharf with a storage backend."""

    id: str
    settings: Settings
    storage: dict[str, Any] | None = None
    #: The S3 server (or Azurite) fixture for s3 (azure) storage: ``storage`` is then made
    #: per server.
    s3_server: str | None = None
    external: bool = False
    preload: Preload | None = None

    def runs(self, workflow: Workflow | None, only_with: Mapping[str, object]) -> bool:
        """Whether a test of ``workflow`` marked ``only_with`` runs here (always, externally)."""
        if self.external:
            return True
        if workflow is not None and workflow not in self.settings.workflows:
            return False
        return all(getattr(self.settings, key) == value for key, value in only_with.items())


def _targets() -> dict[str, Target]:
    if os.environ.get("OCI_ROOT_URL"):
        return {"external": Target("external", Settings.from_env(), external=True)}
    targets: dict[str, Target] = {}
    storages: list[tuple[str, dict[str, Any] | None, str | None]]
    storages = [(storage_id, storage, None) for storage_id, storage in _STORAGES.items()]
    storages += [(storage_id, None, fixture) for storage_id, fixture in _S3_STORAGES.items()]
    storages += [(storage_id, None, fixture) for storage_id, fixture in _AZURE_STORAGES.items()]
    storages += [(storage_id, None, fixture) for storage_id, fixture in _SWIFT_STORAGES.items()]
    storages += [(storage_id, None, fixture) for storage_id, fixture in _GCS_STORAGES.items()]
    for storage_id, storage, s3_server in storages:
        for variant in _VARIANTS:
            if variant.suffix and storage_id not in _STORAGES:
                # The other variants vary the API's workflow, not what reaches the storage:
                # the remote stores run the main one.
                continue
            settings = Settings.from_env({**_WHARF_DEFAULTS, **os.environ, **variant.env})
            if variant.workflows is not None:
                workflows = settings.workflows & variant.workflows
                settings = dataclasses.replace(settings, workflows=workflows)
            target_id = storage_id + variant.suffix
            targets[target_id] = Target(
                target_id, settings, storage, s3_server, preload=variant.preload
            )
    return targets


_TARGETS = _targets()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "only_with(**settings): a conformance test that its body skips unless the Settings "
        "have these values; against wharf it runs only on the targets that have them",
    )
    config.addinivalue_line(
        "markers", "strict: a check of the strict layer, skipped unless Settings.strict"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give each conformance test the targets it runs on."""
    if "target" not in metafunc.fixturenames:
        return
    workflow = _WORKFLOWS.get(metafunc.definition.path.name)
    only_with: dict[str, object] = {}
    for marker in metafunc.definition.iter_markers("only_with"):
        only_with.update(marker.kwargs)
    ids = [
        pytest.param(t.id, marks=_marks(t)) if t.s3_server else t.id
        for t in _TARGETS.values()
        if t.runs(workflow, only_with)
    ]
    metafunc.parametrize("target", ids, indirect=True, scope="session")


def _marks(target: Target) -> pytest.MarkDecorator:
    if target.s3_server in _SWIFT_STORAGES.values():
        return pytest.mark.swift
    if target.s3_server in _AZURE_STORAGES.values():
        return pytest.mark.azure
    if target.s3_server in _GCS_STORAGES.values():
        return pytest.mark.gcs
    return pytest.mark.s3


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    return _TARGETS[request.param]


@pytest.fixture(scope="session")
def oci_settings(target: Target) -> Settings:
    return target.settings


@pytest.fixture(scope="session")
def registry_url(target: Target, request: pytest.FixtureRequest) -> Iterator[str]:
    """The registry's base URL: ``OCI_ROOT_URL``, or a wharf server with the target's storage."""
    if target.external:
        assert target.settings.root_url is not None
        yield target.settings.root_url
        return
    storage = target.storage
    if target.s3_server in _AZURE_STORAGES.values():
        azurite: AzuriteServer = request.getfixturevalue(target.s3_server)
        storage = {"azure": azurite.fresh_parameters(), "redirect": {"disable": True}}
    elif target.s3_server in _SWIFT_STORAGES.values():
        swift: SwiftNative = request.getfixturevalue(target.s3_server)
        storage = {"swift": swift.fresh_parameters(), "redirect": {"disable": True}}
    elif target.s3_server in _GCS_STORAGES.values():
        gcs: GCSServer = request.getfixturevalue(target.s3_server)
        storage = {"gcs": gcs.fresh_parameters(), "redirect": {"disable": True}}
    elif target.s3_server is not None:
        s3: S3Server = request.getfixturevalue(target.s3_server)
        storage = {"s3": s3.fresh_parameters(), "redirect": {"disable": True}}
    with WharfServer(storage=storage) as server:
        yield server.url


@pytest.fixture(scope="session")
def suite(target: Target, registry_url: str) -> Iterator[Suite]:
    """Settings, client and freshly generated content for one target."""
    settings = target.settings
    client = OciClient(settings, registry_url)
    content = build_content(
        blob_digest=settings.blob_digest, manifest_digest=settings.manifest_digest
    )
    try:
        if target.preload is not None:
            target.preload(client, content)
        yield Suite(settings, client, content)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _strict_only(request: pytest.FixtureRequest, suite: Suite) -> None:
    if request.node.get_closest_marker("strict") and not suite.strict:
        pytest.skip("strict check; the strict layer is off (OCI_STRICT)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the workflows in the Go suite's order, per target, with their tests in file order
    (pytest's own grouping by parameter may have moved a test that runs on fewer targets).

    This only reorders the conformance items among the places they already hold.
    """
    slots = [i for i, item in enumerate(items) if item.path.parent == _HERE]
    if not slots:
        return
    targets = {target_id: position for position, target_id in enumerate(_TARGETS)}

    def key(position: int) -> tuple[int, int, int, int]:
        item = items[position]
        callspec = getattr(item, "callspec", None)
        target_id = str(callspec.params.get("target", "")) if callspec else ""
        return (
            targets.get(target_id, len(targets)),
            _WORKFLOW_ORDER.get(item.path.name, len(_WORKFLOW_ORDER)),
            item.location[1] or 0,  # the line of the test function
            position,  # parametrised cases keep their order
        )

    ordered = [items[position] for position in sorted(slots, key=key)]
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
