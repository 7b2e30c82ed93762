"""``wharf check``: verify a registry's storage, and with ``repair`` mend what is broken.

Modules: ``run`` runs one check, the blob phase (``blobs``) then the repository phase
(``repository``: ``links`` for layer links, ``revisions`` for manifests, ``tags``,
``referrers``); ``checker`` holds what they share and gives every finding its second look;
``report`` is what comes out.

Safe beside a running registry: nothing is written without ``repair``; a path that vanishes
mid-walk is not a problem (a delete or a collection got there first); every finding is looked
at again after a pause before it is reported, so a push or delete between two of its steps
is not mistaken for damage; and a repair never removes a blob that verifies. What a repair
may still race (a client pushing, at that moment, the very blob or tag being removed) is in
the modules' docstrings.
"""

from wharf.registry.check.checker import RECHECK_DELAY
from wharf.registry.check.report import CheckReport, CheckStats, Kind, Problem
from wharf.registry.check.run import DEFAULT_CONCURRENCY, check_storage

__all__ = [
    "DEFAULT_CONCURRENCY",
    "RECHECK_DELAY",
    "CheckReport",
    "CheckStats",
    "Kind",
    "Problem",
    "check_storage",
]
