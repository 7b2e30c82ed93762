"""Which references of a pushed manifest must already be in the repository.

By default all of them: an image's config and layers, an index's every child. The
``validation`` configuration (:mod:`wharf.config.validation`) lets some be absent, for
"sparse" content: an index that names platforms never pushed here (Distribution 3's
``indexes.platforms``), an image whose layers are kept elsewhere (wharf's ``images.layers``).
What is absent is then simply unknown to a pull, as any content never pushed is.

A config is always required: a client reads it before any layer, and without it the image
cannot even be described. The pull-through cache stores what it fetched without these
checks; this policy is for pushes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wharf.config.validation import ValidationConfig
from wharf.registry.manifest_parse import Descriptor, ParsedManifest

__all__ = ["required_references"]


def _listed(platform: Mapping[str, Any] | None, policy: ValidationConfig) -> bool:
    if not policy.platform_list:
        return True  # Distribution's platformMustExist: an empty list checks every child
    if platform is None:
        return False
    return any(
        platform.get("os") == listed.os and platform.get("architecture") == listed.architecture
        for listed in policy.platform_list
    )


def required_references(
    manifest: ParsedManifest, policy: ValidationConfig
) -> tuple[tuple[Descriptor, ...], tuple[Descriptor, ...]]:
    """The blobs and the child manifests that must exist before ``manifest`` is stored."""
    blobs = manifest.blobs
    if policy.image_layers == "none" and manifest.config is not None:
        blobs = (manifest.config,)
    if policy.index_platforms == "none":
        children: tuple[Descriptor, ...] = ()
    elif policy.index_platforms == "list":
        children = tuple(d for d in manifest.manifests if _listed(d.platform, policy))
    else:
        children = manifest.manifests
    return blobs, children
