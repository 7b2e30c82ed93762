"""The public modules: ``__all__`` lists exactly what each exports, every name in it exists,
and nothing private leaks (as httpx checks its own)."""

from __future__ import annotations

import importlib
import types

import pytest

PUBLIC = ["wharf.library", "wharf.cas", "wharf.client", "wharf.testing"]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_what_the_module_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    assert sorted(exported) == sorted(exported, key=str)  # no surprises in order-sensitive use
    for item in exported:
        assert hasattr(module, item), f"{name}.{item}"
        assert not item.startswith("_")
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(exported), f"{name}: exported but not in __all__, or the reverse"


def test_the_plugin_exports_its_fixtures() -> None:
    plugin = importlib.import_module("wharf.testing.plugin")
    assert set(plugin.__all__) == {"registry", "registry_factory", "registry_server"}
