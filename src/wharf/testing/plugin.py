"""The pytest plugin, loaded by pytest wherever wharf is installed (entry point ``pytest11``,
name ``wharf``; ``-p no:wharf`` turns it off).

Fixtures:

- ``registry``: wharf served in the test's process on a free port, fresh for each test, in
  memory; ``@pytest.mark.wharf_registry(storage="filesystem", auth=("user", "pass"),
  config={...})`` changes that;
- ``registry_factory``: a function taking the same options and returning a started
  registry, for a test that needs several, stopped after the test;
- ``registry_server``: a real ``wharf serve`` process, shared by the whole session
  (filesystem storage under a temporary directory).

Each yields a :class:`wharf.testing.RunningRegistry`: ``.url``, ``.host``, ``.client``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wharf.testing._servers import RunningRegistry, serve_in_process, serve_process

__all__ = ["registry", "registry_factory", "registry_server"]

MARKER = "wharf_registry"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(storage='memory', auth=None, config=None): options of the registry fixture",
    )


@pytest.fixture
def registry_factory() -> Iterator[Callable[..., RunningRegistry]]:
    """``registry_factory(storage=..., auth=..., config=...)`` starts a registry in this
    process; every one started is stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> RunningRegistry:
            return stack.enter_context(serve_in_process(**options))

        yield start


@pytest.fixture
def registry(
    request: pytest.FixtureRequest, registry_factory: Callable[..., RunningRegistry]
) -> RunningRegistry:
    """wharf in this process, on a free port, for this test (see the module docstring)."""
    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    return registry_factory(**options)


@pytest.fixture(scope="session")
def registry_server() -> Iterator[RunningRegistry]:
    """A real ``wharf serve`` process for the whole session."""
    with serve_process() as running:
        yield running
