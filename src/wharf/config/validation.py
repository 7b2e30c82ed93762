"""``validation``: which references of a pushed manifest must already be in the repository.

Distribution 3's keys, with its meaning, and one of wharf's own::

    validation:
      disabled: false          # Distribution's; true: no index is checked (as platforms: none)
      manifests:
        indexes:
          platforms: all       # all | none | list
          platformlist:        # with list: the platforms whose manifests must exist
            - {os: linux, architecture: amd64}
        images:                # wharf's own
          layers: all          # all | none: with none, an image manifest's layers may be
                               # absent (its config must be there)

``platforms: all`` (the default) accepts an index or manifest list only when every manifest it
names is in the repository; ``none`` accepts it whatever is missing; ``list`` checks the
children whose platform's ``os`` and ``architecture`` match an entry of ``platformlist``, and
with an empty list every child, as Distribution's ``platformMustExist`` does. With
``validation.disabled`` (and not Distribution's older ``enabled: true``) Distribution checks no
index at all, and so does wharf. ``images.layers`` is wharf's, for "sparse" images whose layers
are deliberately left out (the conformance runner's sparse data); it is off unless set, and
``disabled`` does not touch it, since Distribution always checks an image's blobs.

Distribution's ``urls`` allow and deny lists are not implemented: a file that sets them (with
validation enabled) is refused, rather than run with a policy nobody enforces.
"""

from __future__ import annotations

from dataclasses import dataclass

from wharf.config.operations import SectionReader

__all__ = ["PlatformConfig", "ValidationConfig", "parse_validation"]

_PLATFORMS = ("all", "none", "list")
_LAYERS = ("all", "none")


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    os: str
    architecture: str


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    #: ``all`` | ``none`` | ``list``: which children of an index must exist.
    index_platforms: str = "all"
    #: With ``list``: the platforms whose children must exist (empty: every child).
    platform_list: tuple[PlatformConfig, ...] = ()
    #: ``all`` | ``none``: whether an image manifest's layers must exist (wharf's own).
    image_layers: str = "all"


def _choice(section: SectionReader, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = section.string(name, default).strip().lower()
    if value not in choices:
        raise section.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _platforms(indexes: SectionReader) -> tuple[PlatformConfig, ...]:
    listed = indexes.get("platformlist")
    if listed is None:
        return ()
    if not isinstance(listed, list):
        raise indexes.error("platformlist", "expected a list of {os, architecture}")
    platforms = []
    for index, entry in enumerate(listed):
        item = indexes.element("platformlist", index, entry)
        os_name = item.string("os", "").strip()
        architecture = item.string("architecture", "").strip()
        item.finish()
        if not os_name or not architecture:
            missing = "os" if not os_name else "architecture"
            raise item.error(missing, "every platform needs os and architecture")
        platforms.append(PlatformConfig(os_name, architecture))
    return tuple(platforms)


def parse_validation(section: SectionReader) -> ValidationConfig:
    """The ``validation`` section; ValueError (the loader's ConfigError) for a bad value and
    for the URL lists wharf does not enforce."""
    enabled = section.boolean("enabled", False)  # Distribution's older switch
    disabled = section.boolean("disabled", False) and not enabled
    manifests = section.section("manifests")
    urls = manifests.section("urls")
    allowed, denied = urls.get("allow"), urls.get("deny")
    urls.finish()
    indexes = manifests.section("indexes")
    platforms = _choice(indexes, "platforms", "all", _PLATFORMS)
    platform_list = _platforms(indexes)
    indexes.finish()
    images = manifests.section("images")
    layers = _choice(images, "layers", "all", _LAYERS)
    images.finish()
    manifests.finish()
    section.finish()
    if not disabled and (allowed or denied):
        raise urls.error(
            "allow" if allowed else "deny",
            "not supported by wharf: it accepts every absolute http(s) URL of a layer; URL "
            "allow and deny lists are not implemented",
        )
    if disabled:
        platforms = "none"
    return ValidationConfig(
        index_platforms=platforms,
        # Read, so that a bad entry is refused, but used only with list (as Distribution).
        platform_list=platform_list if platforms == "list" else (),
        image_layers=layers,
    )
