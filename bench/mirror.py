"""Item 8: a pull through a pull-through cache, cold (nothing cached) and warm (all cached).

One upstream for both mirrors: a docker-registry 2.8 on filesystem storage holding the skopeo
image of item 4, pushed once. wharf mirrors it with Distribution's ``proxy`` section,
docker-registry in its own proxy mode (the same section), each on a fresh data directory every
round, so that the first pull of a round fetches every blob from the upstream and the second
finds everything cached. The same round also pulls the image from the registry it was pushed
to directly (the run's main registries, item 4's repository pushed again here): the warm pull
through wharf's mirror must be no slower than that. Of two pulls one after the other the
second tends to be the faster, so the direct pull comes before the mirror's in odd rounds and
after it in even ones, and the ratio of the two is taken in each round. And it pulls the image
from the upstream itself: every byte of a cold pull passes through the upstream, so that is a
cold pull's floor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.clients import Skopeo
from tests.support.reference_registry import ReferenceRegistry
from tests.support.server import WharfServer

from bench.base import Environment, Item
from bench.registries import REFERENCE, WHARF, Target
from bench.report import Metric
from bench.report import Target as Goal
from bench.transfer import forget_image

if TYPE_CHECKING:
    from tests.support.clients import Registry

__all__ = ["MirrorPull"]

_UPSTREAM_REPOSITORY = "library/app"
_DIRECT_REPOSITORY = "bench/mirror-direct"
_LOG = {"level": "info", "accesslog": {"disabled": True}}


class MirrorPull(Item):
    name = "mirror"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self._stack = contextlib.ExitStack()
        self._upstream: ReferenceRegistry | None = None

    def metrics(self) -> list[Metric]:
        s = self.settings
        image = f"{s.image_layers}-layer {s.image_bytes / 1e6:g} MB image"
        return [
            Metric(
                "mirror_cold_pull",
                f"Mirror: skopeo pull of a {image}, nothing cached",
                "s",
                Goal(ratio_max=1 / 1.2),
                digits=2,
            ),
            Metric(
                "mirror_warm_pull", f"Mirror: skopeo pull of the {image}, cached", "s", digits=2
            ),
            Metric(
                "mirror_warm_over_direct",
                "Mirror: the cached pull / the pull of the image pushed to the registry itself"
                " (no slower; 5% for the rounds' spread)",
                "x",
                Goal(wharf_max=1.05),
                digits=2,
            ),
            Metric(
                "mirror_upstream_pull",
                f"Mirror: skopeo pull of the {image} from the upstream itself (cold's floor)",
                "s",
                digits=2,
            ),
            Metric(
                "mirror_direct_pull",
                f"Mirror: skopeo pull of the {image} pushed to the registry itself",
                "s",
                digits=2,
            ),
        ]

    def _start_upstream(self) -> ReferenceRegistry:
        if self._upstream is None:
            image = self.env.image
            if image is None:
                raise RuntimeError("the skopeo image was not built")
            upstream = self._stack.enter_context(ReferenceRegistry(config={"log": _LOG}))
            work = self.env.workdir / "mirror-upstream"
            with Skopeo(work) as skopeo:
                skopeo.copy(image.source, f"docker://{upstream.host}/{_UPSTREAM_REPOSITORY}:v1")
            shutil.rmtree(work)
            os.sync()  # the upstream's new files written back before the first pull, not during it
            self._upstream = upstream
        return self._upstream

    def setup(self, target: Target) -> None:
        self._start_upstream()

    def _push_direct(self, target: Target, work: Path) -> None:
        """The image pushed to the registry itself, again each round (item 4 and this item
        make its blobs new to the registry after each round)."""
        image = self.env.image
        assert image is not None
        with Skopeo(work, target.server) as skopeo:
            skopeo.copy(image.source, f"docker://{target.host}/{_DIRECT_REPOSITORY}:v1")

    def _mirror(self, name: str, upstream: ReferenceRegistry) -> WharfServer | ReferenceRegistry:
        proxy = {"proxy": {"remoteurl": upstream.url}, "log": _LOG}
        if name == WHARF:
            return WharfServer(workers=self.settings.workers, config=proxy)
        if name == REFERENCE:
            return ReferenceRegistry(config=proxy)
        raise ValueError(name)

    def measure(self, target: Target, round_number: int) -> dict[str, float]:
        upstream = self._start_upstream()
        work = self.env.workdir / "mirror" / f"{target.name}-{round_number}"
        if round_number % 2:
            pushed = self._pull_direct(target, work)
        mirror = self._mirror(target.name, upstream)
        with mirror:
            through = f"docker://{mirror.host}/{_UPSTREAM_REPOSITORY}:v1"
            cold = _pull(work / "cold", mirror, through)
            warm = _pull(work / "warm", mirror, through)
        if not round_number % 2:
            pushed = self._pull_direct(target, work)
        source = f"docker://{upstream.host}/{_UPSTREAM_REPOSITORY}:v1"
        floor = _pull(work / "upstream", upstream, source)
        shutil.rmtree(work, ignore_errors=True)  # the pushes' work
        return {
            "mirror_cold_pull": cold,
            "mirror_warm_pull": warm,
            "mirror_warm_over_direct": warm / pushed,
            "mirror_upstream_pull": floor,
            "mirror_direct_pull": pushed,
        }

    def _pull_direct(self, target: Target, work: Path) -> float:
        self._push_direct(target, work / "push")
        direct = f"docker://{target.host}/{_DIRECT_REPOSITORY}:v1"
        pulled = _pull(work / "direct", target.server, direct)
        forget_image(self.env, target, _DIRECT_REPOSITORY)  # item 4 pushes them anew
        return pulled

    def close(self) -> None:
        self._stack.close()


def _pull(work: Path, server: Registry, reference: str) -> float:
    with Skopeo(work, server) as skopeo:
        started = time.perf_counter()
        skopeo.copy(reference, f"oci:{work / 'image'}:v1")
        took = time.perf_counter() - started
    # Removed at once: 300 MB of the client's files would otherwise be written back to the
    # disk during the next pull.
    shutil.rmtree(work)
    return took
