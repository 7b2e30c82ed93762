"""Garbage collection: mark and sweep, safe while the registry serves pushes.

Modules: ``collector`` runs one collection; ``mark`` and ``sweep`` are its phases over what
``inventory`` reads and ``references`` parses; ``safety`` holds the argument why nothing in
use is deleted, ``coordination`` (and ``redis_coordination``) the lease, epochs, pins and
claims it rests on, and ``guard`` the manifest PUT's side of it; ``schedule`` repeats
collections; ``progress`` reports them.
"""

from wharf.registry.gc.collector import CollectorBusy, GcOptions, GcResult, collect
from wharf.registry.gc.coordination import Coordination, FileCoordination
from wharf.registry.gc.guard import WriteGuard, create_coordination
from wharf.registry.gc.schedule import online_options, run_schedule

__all__ = [
    "CollectorBusy",
    "Coordination",
    "FileCoordination",
    "GcOptions",
    "GcResult",
    "WriteGuard",
    "collect",
    "create_coordination",
    "online_options",
    "run_schedule",
]
