"""Manifest revisions: each link, the manifest it names, and what that manifest references.

A manifest is read as the registry reads a push (:mod:`~wharf.registry.manifest_parse`);
one that parser refuses but the collector's lenient reader understands (Docker schema 1, an
image-spec release candidate's artifact manifest: what Distribution stored before) is counted
as *legacy* and checked all the same. Only a document neither understands is
``manifest-invalid``; it is left alone, since its bytes are what was pushed.

Every blob and child manifest a manifest references must be in the store, or the image cannot
be pulled whole: ``reference-missing``. Distribution lets that happen only through its own
collector's ``--delete-untagged`` (children of a kept index) or a store edited by hand, and
wharf's collector never does it, so it is reported; never repaired, because only the content
pushed again repairs it. Except what the registry lets be absent: the references
``validation`` does not require of a push (:mod:`~wharf.registry.completeness`: an index's
children of other platforms, an image's layers), and anything in a repository that mirrors an
upstream, which holds what clients pulled through it and no more. Whether a reference is also
linked into the repository is not checked: the API deletes a layer or a child manifest from a
repository on request, whoever still references it, as Distribution's does.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from wharf.errors import RegistryError
from wharf.reference import Digest, RepositoryName
from wharf.registry.check.checker import Checker, Finding, Look
from wharf.registry.check.links import (
    LinkFile,
    LinkKinds,
    blob_problem,
    link_files,
    link_look,
    read_link,
)
from wharf.registry.check.report import Kind
from wharf.registry.completeness import required_references
from wharf.registry.gc.references import read_refs
from wharf.registry.manifest_parse import ParsedManifest, parse_manifest
from wharf.registry.tasks import for_each
from wharf.storage import paths
from wharf.storage.driver import PathNotFound

__all__ = ["ManifestInfo", "ManifestReader", "RepositoryState", "check_revisions"]

#: Manifests read at once in one repository, and parsed manifests remembered across them.
_AT_ONCE = 16
_REMEMBERED = 4096


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    #: Blobs and child manifests that must be in the store.
    references: tuple[Digest, ...] = ()
    subject: Digest | None = None
    #: The push parser's result, when it accepts the manifest (a referrer entry is made of it).
    parsed: ParsedManifest | None = None
    legacy: bool = False
    #: Why it is no manifest at all.
    invalid: str | None = None


@dataclass(slots=True)
class RepositoryState:
    """What the steps of one repository's check learn for the next ones."""

    name: RepositoryName
    #: Revisions whose link is sound.
    revisions: set[Digest] = field(default_factory=set)
    #: Revisions whose manifest has a subject, with what it says.
    with_subject: dict[Digest, ManifestInfo] = field(default_factory=dict)

    async def has_revision(self, checker: Checker, digest: Digest) -> bool:
        """Whether ``digest`` has a sound revision link here (read again when not known:
        it may have been pushed since)."""
        if digest in self.revisions:
            return True
        try:
            _, target = await read_link(
                checker.driver, paths.manifest_revision_link(self.name, digest)
            )
        except PathNotFound:
            return False
        return target == digest


class ManifestReader:
    """Reads and parses manifests, remembering the last few thousand: many repositories
    link the same ones."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self._remembered: OrderedDict[Digest, ManifestInfo] = OrderedDict()

    async def read(self, digest: Digest) -> ManifestInfo | None:
        """What the manifest says; None when its blob is not there."""
        known = self._remembered.get(digest)
        if known is not None:
            self._remembered.move_to_end(digest)
            return known
        try:
            body = await self.checker.driver.get_content(paths.blob_data(digest))
        except PathNotFound:
            return None
        info = _understand(body, digest)
        self._remembered[digest] = info
        if len(self._remembered) > _REMEMBERED:
            self._remembered.popitem(last=False)
        return info


def _understand(body: bytes, digest: Digest) -> ManifestInfo:
    try:
        parsed = parse_manifest(body, None, digest.algorithm, max_size=None)
    except RegistryError as error:
        refs = read_refs(body)
        if refs is None:
            return ManifestInfo(invalid=f"not a manifest: {error}")
        references = tuple(sorted(refs.everything, key=str))
        return ManifestInfo(references, refs.subject, legacy=True)
    references = tuple(d.digest for d in parsed.references())
    subject = parsed.subject.digest if parsed.subject is not None else None
    return ManifestInfo(references, subject, parsed)


async def check_revisions(checker: Checker, reader: ManifestReader, state: RepositoryState) -> None:
    name = state.name
    suspects = checker.suspects(name.value)
    kinds = LinkKinds(Kind.REVISION_LINK_INVALID, Kind.REVISION_LINK_DANGLING)
    target = blob_problem(checker)
    doubtful: list[Digest] = []

    async def link(found: LinkFile) -> None:
        checker.stats.revisions += 1
        if await suspects.look(link_look(checker, found, kinds, target)):
            assert found.digest is not None  # a link without one is never sound
            state.revisions.add(found.digest)
        elif found.digest is not None:
            doubtful.append(found.digest)

    await for_each(link_files(checker.driver, paths.manifest_revisions_dir(name)), link, _AT_ONCE)
    await suspects.settle()
    # A link found wrong may have been a push under way, or repaired: sound now?
    for digest in doubtful:
        if await state.has_revision(checker, digest):
            state.revisions.add(digest)

    async def manifest(digest: Digest) -> None:
        info = await reader.read(digest)
        if info is None:
            return  # its link is dangling: reported above
        checker.stats.references += len(info.references)
        checker.stats.manifests_legacy += info.legacy
        if info.subject is not None:
            state.with_subject[digest] = info
        await suspects.look(_manifest_look(checker, reader, state, digest))

    await for_each(sorted(state.revisions, key=str), manifest, _AT_ONCE)
    await suspects.settle()


def _required(checker: Checker, name: RepositoryName, info: ManifestInfo) -> tuple[Digest, ...]:
    """The references of a manifest that must be in the store, as the registry requires them
    of a push to ``name``: a legacy manifest's every one."""
    if checker.mirrored(name):
        return ()
    if info.parsed is None:
        return info.references
    blobs, children = required_references(info.parsed, checker.validation)
    return tuple(d.digest for d in blobs + children)


def _manifest_look(
    checker: Checker, reader: ManifestReader, state: RepositoryState, digest: Digest
) -> Look:
    path = paths.manifest_revision_link(state.name, digest)
    target = blob_problem(checker)

    async def look() -> list[Finding]:
        info = await reader.read(digest)
        if info is None or not await state.has_revision(checker, digest):
            return []  # deleted meanwhile
        if info.invalid is not None:
            why = "its bytes are what was pushed: left for an operator"
            return [Finding(Kind.MANIFEST_INVALID, path, f"{digest}: {info.invalid}", why_not=why)]
        findings = []
        for reference in _required(checker, state.name, info):
            problem = await target(reference)
            if problem is not None:
                findings.append(
                    Finding(
                        Kind.REFERENCE_MISSING,
                        path,
                        f"{digest} references {reference}: {problem}",
                        why_not="push the missing content again",
                    )
                )
        return findings

    return look
