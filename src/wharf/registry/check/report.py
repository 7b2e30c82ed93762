"""What a check found: the problems, one line or JSON object each, and the counts around them.

A problem's ``kind`` and ``path`` are its stable, machine-readable part: the kinds are the
values of :class:`Kind` and will not be renamed; ``detail`` and ``action`` are for people.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from wharf.registry.gc.collector import format_size

__all__ = ["CheckReport", "CheckStats", "Kind", "Problem"]


class Kind(StrEnum):
    """Every kind of problem a check reports."""

    BLOB_CORRUPT = "blob-corrupt"
    BLOB_DATA_MISSING = "blob-data-missing"
    BLOB_MISPLACED = "blob-misplaced"
    BLOB_NAME_INVALID = "blob-name-invalid"
    REPOSITORY_NAME_INVALID = "repository-name-invalid"
    LAYER_LINK_INVALID = "layer-link-invalid"
    LAYER_LINK_DANGLING = "layer-link-dangling"
    REVISION_LINK_INVALID = "revision-link-invalid"
    REVISION_LINK_DANGLING = "revision-link-dangling"
    MANIFEST_INVALID = "manifest-invalid"
    REFERENCE_MISSING = "reference-missing"
    TAG_NAME_INVALID = "tag-name-invalid"
    TAG_LINK_INVALID = "tag-link-invalid"
    TAG_DANGLING = "tag-dangling"
    TAG_INDEX_MISSING = "tag-index-missing"  # no longer reported: counted (tag_history_missing)
    TAG_INDEX_INVALID = "tag-index-invalid"
    REFERRER_INVALID = "referrer-invalid"
    REFERRER_DANGLING = "referrer-dangling"
    REFERRER_WRONG_SUBJECT = "referrer-wrong-subject"
    REFERRER_MISSING = "referrer-missing"


@dataclass(slots=True)
class Problem:
    kind: Kind
    #: The storage path of what is wrong (a file, or the directory that should hold one).
    path: str
    detail: str
    #: The repository it belongs to; None for the blob store.
    repository: str | None = None
    repaired: bool = False
    #: What the repair did, or why it left the problem alone; None without ``--repair``.
    action: str | None = None

    def line(self) -> str:
        """``<kind> <path>: <detail>``, and the repair's outcome when one was tried."""
        text = f"{self.kind} {self.path}: {self.detail}"
        if self.action is not None:
            text += f" [{'repaired' if self.repaired else 'not repaired'}: {self.action}]"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "path": self.path,
            "detail": self.detail,
            "repository": self.repository,
            "repaired": self.repaired,
            "action": self.action,
        }


@dataclass(slots=True)
class CheckStats:
    blobs: int = 0
    bytes_hashed: int = 0
    blobs_corrupt: int = 0
    repositories: int = 0
    layer_links: int = 0
    revisions: int = 0
    #: Manifests only the lenient reader understands (Docker schema 1, artifact manifests of
    #: image-spec release candidates): what they reference is checked all the same.
    manifests_legacy: int = 0
    references: int = 0
    tags: int = 0
    tag_index_entries: int = 0
    #: Index entries of revisions deleted since (a manifest delete leaves the other tags'
    #: history as Distribution's does): harmless, left for garbage collection.
    tag_index_stale: int = 0
    #: Tags whose current link has no index entry (a push interrupted between the two):
    #: they resolve, so it is no problem; a repair adds the entries.
    tag_history_missing: int = 0
    tag_history_added: int = 0
    referrers: int = 0
    #: Upload sessions in progress or abandoned: upload purging's business, not a problem.
    upload_sessions: int = 0


@dataclass(slots=True)
class CheckReport:
    repair: bool = False
    stats: CheckStats = field(default_factory=CheckStats)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Nothing was wrong."""
        return not self.problems

    @property
    def unresolved(self) -> list[Problem]:
        """The problems still there: all of them unless repaired."""
        return [problem for problem in self.problems if not problem.repaired]

    def sort(self) -> None:
        """Problems in path order, whatever order concurrent checks found them in."""
        self.problems.sort(key=lambda problem: (problem.path, problem.kind))

    def summary(self) -> list[str]:
        s = self.stats
        lines = [
            f"checked {_count(s.blobs, 'blob')} ({format_size(s.bytes_hashed)} hashed), "
            f"{_count(s.repositories, 'repository', 'repositories')}, "
            f"{_count(s.layer_links, 'layer link')}, {_count(s.revisions, 'manifest')} "
            f"({_count(s.references, 'reference')}), {_count(s.tags, 'tag')} "
            f"({_count(s.tag_index_entries, 'index entry', 'index entries')}), "
            f"{_count(s.referrers, 'referrer')} in {self.seconds:.1f}s",
        ]
        if not self.problems:
            lines.append("no problems found")
        else:
            kinds = Counter(problem.kind for problem in self.problems)
            found = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
            line = f"found {_count(len(self.problems), 'problem')}: {found}"
            if self.repair:
                line += f"; repaired {len(self.problems) - len(self.unresolved)}"
            lines.append(line)
        left = []
        if s.upload_sessions:
            left.append(_count(s.upload_sessions, "upload session"))
        if s.tag_index_stale:
            entries = _count(s.tag_index_stale, "tag index entry", "tag index entries")
            left.append(f"{entries} of deleted manifests")
        if s.manifests_legacy:
            left.append(_count(s.manifests_legacy, "manifest") + " in formats no longer pushed")
        if s.tag_history_missing:
            missing = _count(s.tag_history_missing, "tag") + " without its index entry"
            if s.tag_history_added:
                missing += f" ({s.tag_history_added} added)"
            left.append(missing)
        if left:
            lines.append(f"not problems: {', '.join(left)}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "repair": self.repair,
            "unresolved": len(self.unresolved),
            "seconds": round(self.seconds, 3),
            "stats": asdict(self.stats),
            "problems": [problem.to_json() for problem in self.problems],
        }


def _count(count: int, noun: str, plural: str = "") -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
