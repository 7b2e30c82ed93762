"""Scale: listings and a manifest delete at many repositories and tags, wharf beside Debian's
docker-registry 2.8 on the same tree.

``python -m bench.scale`` fills a tree directly in Distribution's layout (``fill_files``: the
files a push leaves, at ``wharf.storage.paths``), many repositories of one tag each and one
repository of many tags, on the filesystem and on OpenStack Swift's s3api, then starts both
registries on that one tree (wharf builds its catalog index from it once, which is timed) and
measures, round after round and each registry in turn:

- right after a push of a new repository, the first ``_catalog?n=PAGE`` page and a deep page
  (``last`` at 90% of the names);
- ``tags/list?n=PAGE`` of the large repository, first page and last page;
- a manifest DELETE in the large repository (a manifest pushed with one tag just before, so
  each registry looks up the tags of a digest among all the others).

Every answer is checked (page sizes, the names and tags expected, the deleted tag gone), so a
small run is a correctness test of both registries (tests/bench/test_scale.py). The report is a
section of bench/RESULTS.md (``--output`` elsewhere), between two marker lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.reference_registry import ReferenceRegistry
from tests.support.server import WharfServer

from bench import machine
from bench.client import BenchError, Client, sha256_digest
from bench.layout import SmallImage, fill, small_image
from wharf.reference import Digest, RepositoryName, Tag
from wharf.storage import paths

__all__ = ["ScaleSettings", "fill_files", "main", "run"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "RESULTS.md"
START = "<!-- bench.scale: start -->"
END = "<!-- bench.scale: end -->"
PREFIX = "scale/r"
LARGE = "scale/tags"
WHARF = "wharf"
REFERENCE = "docker-registry"
#: (key, label): the measurements, in the order of the table.
METRICS = (
    ("catalog_first", "first `_catalog?n={page}` page right after a push"),
    ("catalog_deep", "deep `_catalog?n={page}&last=` page (90% in) right after a push"),
    ("tags_first", "`tags/list?n={page}` of {tags:,} tags, first page"),
    ("tags_last", "`tags/list?n={page}` of {tags:,} tags, last page"),
    ("delete", "manifest DELETE in the repository of {tags:,} tags"),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ScaleSettings:
    repositories: int = 20_000
    tags: int = 100_000
    s3_repositories: int = 1_000
    s3_tags: int = 5_000
    page: int = 1000
    rounds: int = 3
    stores: tuple[str, ...] = ("filesystem", "s3")
    swift_workers: int = 0
    #: Offline garbage collection on each store, each registry on a tree of its own.
    gc: bool = True


def repository_names(count: int) -> list[str]:
    return [f"{PREFIX}{number:06d}" for number in range(count)]


def tag_names(count: int) -> list[str]:
    return [f"t{number:07d}" for number in range(count)]


def fill_files(image: SmallImage, repositories: int, tags: int) -> Iterator[tuple[str, bytes]]:
    """Every file of the tree, as Distribution's pushes leave them (bench.layout.fill)."""
    manifest = Digest.parse(image.digest)
    link = paths.link_content(manifest)
    for digest, data in [(image.digest, image.manifest), *image.blobs.items()]:
        yield paths.blob_data(Digest.parse(digest)), data

    def repository(name: RepositoryName, tag_list: list[str]) -> Iterator[tuple[str, bytes]]:
        for digest in image.blobs:
            blob = Digest.parse(digest)
            yield paths.layer_link(name, blob), paths.link_content(blob)
        yield paths.manifest_revision_link(name, manifest), link
        for text in tag_list:
            tag = Tag(text)
            yield paths.tag_current_link(name, tag), link
            yield paths.tag_index_link(name, tag, manifest), link

    yield from repository(RepositoryName(LARGE), tag_names(tags))
    for name in repository_names(repositories):
        yield from repository(RepositoryName(name), ["latest"])


# -- stores ---------------------------------------------------------------------------------


class _Store:
    kind = ""

    def fill(self, image: SmallImage, repositories: int, tags: int) -> int:
        raise NotImplementedError

    def driver(self) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, path: str) -> bytes | None:
        raise NotImplementedError


@dataclass
class _Filesystem(_Store):
    root: Path
    kind: str = "filesystem"

    def fill(self, image: SmallImage, repositories: int, tags: int) -> int:
        written = fill(self.root, image, [LARGE], tag_names(tags))
        return written + fill(self.root, image, repository_names(repositories), ["latest"])

    def driver(self) -> dict[str, Any]:
        return {"filesystem": {"rootdirectory": str(self.root)}}

    def read(self, path: str) -> bytes | None:
        with contextlib.suppress(FileNotFoundError):
            return (self.root / path.lstrip("/")).read_bytes()
        return None


@dataclass
class _S3(_Store):
    server: Any  # tests.support.s3servers.S3Server
    bucket: str
    kind: str = "s3"

    def fill(self, image: SmallImage, repositories: int, tags: int) -> int:
        client = self.server.client()

        def put(item: tuple[str, bytes]) -> None:
            client.put_object(Bucket=self.bucket, Key=item[0].lstrip("/"), Body=item[1])

        count = 0
        with ThreadPoolExecutor(32) as pool:
            for _ in pool.map(put, fill_files(image, repositories, tags), chunksize=64):
                count += 1
        return count

    def driver(self) -> dict[str, Any]:
        return {"s3": self.server.parameters(self.bucket), "redirect": {"disable": True}}

    def read(self, path: str) -> bytes | None:
        client = self.server.client()
        with contextlib.suppress(client.exceptions.NoSuchKey):
            body: bytes = client.get_object(Bucket=self.bucket, Key=path.lstrip("/"))["Body"].read()
            return body
        return None


# -- measuring ------------------------------------------------------------------------------


@dataclass
class StoreResult:
    kind: str
    repositories: int
    tags: int
    fill_seconds: float = 0.0
    files: int = 0
    index_seconds: float = 0.0
    #: Offline garbage collection of each registry, seconds.
    gc: dict[str, float] = field(default_factory=dict)
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, key: str, registry: str, seconds: float) -> None:
        self.samples.setdefault(key, {}).setdefault(registry, []).append(seconds)

    def median(self, key: str, registry: str) -> float | None:
        values = self.samples.get(key, {}).get(registry)
        return statistics.median(values) if values else None


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = call()
    return time.perf_counter() - started, answer


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


def _tags_page(
    registry: str, answer: list[str], expected: list[str], every: list[str], which: str
) -> None:
    """docker-registry 2.8 does not paginate tag lists: every page is all of them, unsorted."""
    if registry == REFERENCE and len(answer) == len(every):
        _expect(sorted(answer) == every, f"{registry}: {which} tags page")
    else:
        _expect(answer == expected, f"{registry}: {which} tags page: {answer[:3]}")


def _push_repository(client: Client, image: SmallImage, repository: str) -> None:
    for digest, data in image.blobs.items():
        client.push_monolithic(repository, memoryview(data), digest)
    client.put_manifest(repository, "latest", image.manifest, image.media_type)


def _distinct_manifest(client: Client, image: SmallImage, seed: str) -> tuple[bytes, str]:
    """A manifest of the image's layers with a config of its own, pushed into the large
    repository's blobs: deleting it touches no tag of the fill."""
    document = json.loads(image.manifest)
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    config_digest = sha256_digest(config)
    client.push_monolithic(LARGE, memoryview(config), config_digest)
    for layer in document["layers"]:
        client.push_monolithic(LARGE, memoryview(image.blobs[layer["digest"]]), layer["digest"])
    document["config"] = {**document["config"], "digest": config_digest, "size": len(config)}
    body = json.dumps(document).encode()
    return body, sha256_digest(body)


def _measure(
    client: Client,
    registry: str,
    image: SmallImage,
    settings: ScaleSettings,
    result: StoreResult,
    round_number: int,
    names: list[str],
    tags: list[str],
) -> None:
    page = settings.page
    pushed = f"scale/new-{registry.replace('-', '')}-{round_number}"
    _push_repository(client, image, pushed)
    expected = sorted([*names, pushed])

    seconds, answer = _timed(lambda: client.get_json(f"/v2/_catalog?n={page}"))
    _expect(answer["repositories"] == expected[:page], f"{registry}: first catalog page")
    result.add("catalog_first", registry, seconds)

    deep = expected[int(len(expected) * 0.9)]
    seconds, answer = _timed(lambda: client.get_json(f"/v2/_catalog?n={page}&last={deep}"))
    start = expected.index(deep) + 1
    _expect(answer["repositories"] == expected[start : start + page], f"{registry}: deep page")
    result.add("catalog_deep", registry, seconds)

    seconds, answer = _timed(lambda: client.get_json(f"/v2/{LARGE}/tags/list?n={page}"))
    _tags_page(registry, answer["tags"], tags[:page], tags, "first")
    result.add("tags_first", registry, seconds)

    last = tags[-page - 1] if len(tags) > page else tags[0]
    seconds, answer = _timed(lambda: client.get_json(f"/v2/{LARGE}/tags/list?n={page}&last={last}"))
    _tags_page(registry, answer["tags"], tags[tags.index(last) + 1 :], tags, "last")
    result.add("tags_last", registry, seconds)

    tag = f"zdel-{registry.replace('-', '')}-{round_number}"
    body, digest = _distinct_manifest(client, image, tag)
    client.put_manifest(LARGE, tag, body, image.media_type)
    seconds, _ = _timed(
        lambda: client.request("DELETE", f"/v2/{LARGE}/manifests/{digest}", expect=(202,))
    )
    client.request("GET", f"/v2/{LARGE}/manifests/{tag}", expect=(404,))
    result.add("delete", registry, seconds)


def _wait_for_index(store: _Store, wharf: WharfServer, timeout: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        content = store.read(paths.catalog_root())
        if content is not None and json.loads(content).get("built"):
            return time.perf_counter() - started
        time.sleep(0.05)
    raise BenchError(f"wharf did not build its catalog index:\n{wharf.log()[-3000:]}")


def measure_store(
    store: _Store, image: SmallImage, settings: ScaleSettings, repositories: int, tags: int
) -> StoreResult:
    result = StoreResult(store.kind, repositories, tags)
    log(f"{store.kind}: filling {repositories:,} repositories and {tags:,} tags")
    result.fill_seconds, result.files = _timed(lambda: store.fill(image, repositories, tags))
    log(f"{store.kind}: {result.files:,} files in {result.fill_seconds:.0f} s")
    names = sorted([*repository_names(repositories), LARGE])
    tag_list = tag_names(tags)
    driver = store.driver()
    wharf = WharfServer(
        storage={**driver, "maintenance": {"uploadpurging": {"enabled": False}}},
        config={"log": {"level": "info", "accesslog": {"disabled": True}}},
    )
    reference = ReferenceRegistry(storage=driver)
    with wharf, reference:
        result.index_seconds = _wait_for_index(store, wharf, 3600)
        log(f"{store.kind}: wharf built its catalog index in {result.index_seconds:.1f} s")
        servers = {WHARF: wharf.url, REFERENCE: reference.url}
        listed = {WHARF: names, REFERENCE: names}
        for round_number in range(1, settings.rounds + 1):
            order = [WHARF, REFERENCE] if round_number % 2 else [REFERENCE, WHARF]
            for registry in order:
                with Client(servers[registry], timeout=3600) as client:
                    _measure(
                        client,
                        registry,
                        image,
                        settings,
                        result,
                        round_number,
                        listed[registry],
                        tag_list,
                    )
                # What each registry lists from now on: docker-registry walks the tree, so it
                # lists both registries' pushes; wharf lists its own, and a repository another
                # writer made once a reconcile (the upload purge's walk) found it.
                pushed = f"scale/new-{registry.replace('-', '')}-{round_number}"
                listed[REFERENCE] = sorted([*listed[REFERENCE], pushed])
                if registry == WHARF:
                    listed[WHARF] = sorted([*listed[WHARF], pushed])
                shown = ", ".join(
                    f"{key} {values[registry][-1] * 1000:,.1f} ms"
                    for key, values in result.samples.items()
                )
                log(f"{store.kind} round {round_number} {registry}: {shown}")
    return result


def _gc_config(storage: dict[str, Any], directory: Path) -> Path:
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.yml"
    document = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {**storage, "delete": {"enabled": True}},
        "http": {"addr": "127.0.0.1:0", "secret": "scale-bench"},
    }
    config.write_text(yaml.safe_dump(document))
    return config


class _GcTree:
    """A tree of one registry's own for its collection: filled, then read back."""

    def fill(self, image: SmallImage, repositories: int) -> None:
        raise NotImplementedError

    def put(self, path: str, data: bytes) -> None:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def storage(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class _FilesystemGcTree(_GcTree):
    root: Path

    def fill(self, image: SmallImage, repositories: int) -> None:
        fill(self.root, image, repository_names(repositories), ["latest"])

    def put(self, path: str, data: bytes) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def exists(self, path: str) -> bool:
        return (self.root / path.lstrip("/")).exists()

    def storage(self) -> dict[str, Any]:
        return {"filesystem": {"rootdirectory": str(self.root)}}


@dataclass
class _S3GcTree(_GcTree):
    store: _S3

    def fill(self, image: SmallImage, repositories: int) -> None:
        self.store.fill(image, repositories, 0)

    def put(self, path: str, data: bytes) -> None:
        self.store.server.client().put_object(
            Bucket=self.store.bucket, Key=path.lstrip("/"), Body=data
        )

    def exists(self, path: str) -> bool:
        return self.store.read(path) is not None

    def storage(self) -> dict[str, Any]:
        return self.store.driver()


def measure_gc(
    image: SmallImage, repositories: int, workdir: Path, trees: dict[str, _GcTree]
) -> dict[str, float]:
    """Offline ``garbage-collect`` of each registry on a tree of its own (``trees``, by
    registry): ``repositories`` of one image, and 1% as many blobs that nothing
    references."""
    from tests.support.reference_registry import docker_registry_binary

    seconds: dict[str, float] = {}
    for registry in (WHARF, REFERENCE):
        tree = trees[registry]
        tree.fill(image, repositories)
        orphans = []
        for number in range(max(1, repositories // 100)):
            data = f"unreferenced {number}".encode() * 32
            orphan = paths.blob_data(Digest.parse(sha256_digest(data)))
            tree.put(orphan, data)
            orphans.append(orphan)
        kind = next(iter(tree.storage()))
        config = _gc_config(tree.storage(), workdir / f"gc-{kind}-{registry}-config")
        if registry == WHARF:
            command = [sys.executable, "-m", "wharf", "garbage-collect", str(config)]
        else:
            command = [str(docker_registry_binary()), "garbage-collect", str(config)]
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        seconds[registry] = time.perf_counter() - started
        if done.returncode != 0:
            raise BenchError(f"{registry} garbage-collect: {done.stderr[-2000:]}")
        _expect(not any(tree.exists(o) for o in orphans), f"{registry}: unreferenced blobs left")
        for digest in [image.digest, *image.blobs]:
            kept = paths.blob_data(Digest.parse(digest))
            _expect(tree.exists(kept), f"{registry}: collected a referenced blob")
        log(
            f"garbage-collect {registry} on {kind}: {seconds[registry]:.1f} s, "
            f"{len(orphans)} removed"
        )
    return seconds


# -- report ---------------------------------------------------------------------------------


def _milliseconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:,.1f}" if value < 10 else f"{value * 1000:,.0f}"


def _verdict(kind: str, key: str, ours: float | None, theirs: float | None) -> str:
    """Listings: under 100 ms; on S3 also 100x faster than docker-registry, as deletes."""
    if ours is None:
        return ""
    missed = []
    if key != "delete" and ours >= 0.1:
        missed.append("not under 100 ms")
    if kind == "s3" and (theirs is None or ours * 100 > theirs):
        missed.append("not 100x at this size")
    return "holds" if not missed else "**misses**: " + ", ".join(missed)


def _gc_rows(results: list[StoreResult]) -> list[str]:
    rows = [r for r in results if r.gc]
    if not rows:
        return []
    lines = [
        "Offline `garbage-collect` (each registry on a tree of its own: the repositories "
        "above, one image each, and 1% as many blobs nothing references; docker-registry's "
        "`garbage-collect`, wharf's `python -m wharf garbage-collect`), seconds:",
        "",
        "| Storage | wharf | docker-registry | wharf / docker-registry | Target |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        ours, theirs = r.gc.get(WHARF), r.gc.get(REFERENCE)
        ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
        # The target is on S3, where a collection's cost is its requests.
        target = ""
        if r.kind == "s3" and ours and theirs:
            target = "<= 0.1x: " + ("holds" if ours / theirs <= 0.1 else "**misses**")
        lines.append(
            f"| {r.kind}, {r.repositories:,} repositories | {ours or 0:.1f} | "
            f"{theirs or 0:.1f} | {ratio} | {target} |"
        )
    return [*lines, ""]


def render(settings: ScaleSettings, results: list[StoreResult], seconds: float) -> str:
    lines = [
        START,
        "## Scale: listings and deletes on one large tree (`python -m bench.scale`)",
        "",
        f"{settings.rounds} round{'s' * (settings.rounds > 1)}, medians, each registry in turn "
        "(wharf first in odd rounds), both serving the same tree written directly in "
        f"Distribution's layout; page size n={settings.page}; run took {seconds / 60:.1f} min. "
        "Times in ms; the ratio is wharf / docker-registry (below 1: wharf is faster). "
        "Targets (issue 23, set for 100,000 repositories and 1,000,000 tags): listings under "
        "100 ms right after a push, and on S3 listings and deletes at least 100x faster than "
        "docker-registry (<= 0.01x); smaller trees than that give docker-registry less to "
        "walk, so a ratio measured on one is a bound of the ratio at full size.",
        "",
        "| Storage | Measurement | wharf | docker-registry | wharf / docker-registry | |",
        "|---|---|---:|---:|---:|---|",
    ]
    for result in results:
        for key, label in METRICS:
            ours, theirs = result.median(key, WHARF), result.median(key, REFERENCE)
            ratio = f"{ours / theirs:.4f}x" if ours and theirs else "-"
            verdict = _verdict(result.kind, key, ours, theirs)
            text = label.format(page=settings.page, tags=result.tags)
            scope = f"{result.kind}, {result.repositories:,} repositories"
            lines.append(
                f"| {scope} | {text} | {_milliseconds(ours)} | {_milliseconds(theirs)} | "
                f"{ratio} | {verdict} |"
            )
    lines += [
        "",
        "| Storage | Fill (files, seconds) | wharf's catalog index build, once (s) |",
        "|---|---:|---:|",
        *(
            f"| {r.kind} | {r.files:,} in {r.fill_seconds:.0f} | {r.index_seconds:.1f} |"
            for r in results
        ),
        "",
        *_gc_rows(results),
        "| Machine | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in machine.describe()),
        "",
        "Every round's figures (ms, wharf / docker-registry):",
        "",
    ]
    for result in results:
        for key, _ in METRICS:
            values = result.samples.get(key, {})
            our_rounds = ", ".join(_milliseconds(v) for v in values.get(WHARF, []))
            their_rounds = ", ".join(_milliseconds(v) for v in values.get(REFERENCE, []))
            lines.append(f"- {result.kind} {key}: {our_rounds} / {their_rounds}")
    lines += ["", END]
    return "\n".join(lines)


def write_section(output: Path, section: str) -> None:
    text = output.read_text() if output.exists() else ""
    if START in text and END in text:
        before, _, rest = text.partition(START)
        _, _, after = rest.partition(END)
        text = before + section + after
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    output.write_text(text)


def run(settings: ScaleSettings, workdir: Path) -> tuple[list[StoreResult], float]:
    started = time.perf_counter()
    image = small_image(workdir / "small-image")
    results = []
    for kind in settings.stores:
        if kind == "filesystem":
            root = workdir / "filesystem-root"
            fs_result = measure_store(
                _Filesystem(root), image, settings, settings.repositories, settings.tags
            )
            if settings.gc:
                # At the full size this tree and the collection's two would not fit in the
                # inodes of a 250 GB disk together.
                shutil.rmtree(root)
                trees: dict[str, _GcTree] = {
                    registry: _FilesystemGcTree(workdir / f"gc-{registry}")
                    for registry in (WHARF, REFERENCE)
                }
                fs_result.gc = measure_gc(image, settings.repositories, workdir, trees)
            results.append(fs_result)
        elif kind == "s3":
            from tests.support.s3servers import start_swift

            swift_dir = workdir / "swift"
            swift_dir.mkdir()
            # Swift's own listing size (1,000 keys), not the tests' small one.
            with start_swift(swift_dir, settings.swift_workers, listing=1000) as server:
                store = _S3(server, server.create_bucket())
                s3_result = measure_store(
                    store, image, settings, settings.s3_repositories, settings.s3_tags
                )
                if settings.gc:
                    s3_trees: dict[str, _GcTree] = {
                        registry: _S3GcTree(_S3(server, server.create_bucket()))
                        for registry in (WHARF, REFERENCE)
                    }
                    s3_result.gc = measure_gc(image, settings.s3_repositories, workdir, s3_trees)
                results.append(s3_result)
        else:
            raise SystemExit(f"unknown store {kind!r}")
    return results, time.perf_counter() - started


def _render_saved(files: list[Path], output: str | None) -> int:
    """The report of earlier runs' samples (``--json``), one store after another."""
    results: list[StoreResult] = []
    seconds = 0.0
    settings = ScaleSettings()
    for file in files:
        document = json.loads(file.read_text())
        saved = dict(document["settings"])
        saved["stores"] = tuple(saved["stores"])
        settings = ScaleSettings(**saved)
        seconds += document["seconds"]
        results += [StoreResult(**result) for result in document["results"]]
    section = render(settings, results, seconds)
    print(section)
    write_section(Path(output) if output else DEFAULT_OUTPUT, section)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    add = parser.add_argument
    add("--repositories", type=int, default=20_000, help="on the filesystem (20,000)")
    add("--tags", type=int, default=100_000, help="in the large repository, filesystem")
    add("--s3-repositories", type=int, default=1_000, help="on Swift's s3api (1,000)")
    add("--s3-tags", type=int, default=5_000, help="in the large repository on S3")
    add("--full", action="store_true", help="100,000 repositories and 1,000,000 tags on both")
    add("--page", type=int, default=1000, help="n of every page (1000)")
    add("--rounds", type=int, default=3)
    add("--store", action="append", choices=["filesystem", "s3"], help="default: both")
    add("--swift-workers", type=int, default=0, help="workers per Swift daemon (0)")
    add("--output", help="file whose scale section to write (default bench/RESULTS.md)")
    add("--workdir", help="where the trees go (default: a temporary directory)")
    add("--json", help="write every sample here as JSON")
    add("--no-gc", action="store_true", help="skip the garbage collections")
    add("--from-json", nargs="+", help="only render the report of these --json files")
    args = parser.parse_args(argv)
    if args.from_json:
        return _render_saved([Path(name) for name in args.from_json], args.output)
    full = args.full
    settings = ScaleSettings(
        repositories=100_000 if full else args.repositories,
        tags=1_000_000 if full else args.tags,
        s3_repositories=100_000 if full else args.s3_repositories,
        s3_tags=1_000_000 if full else args.s3_tags,
        page=args.page,
        rounds=args.rounds,
        stores=tuple(args.store or ("filesystem", "s3")),
        swift_workers=args.swift_workers,
        gc=not args.no_gc,
    )
    import tempfile

    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = Path(args.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wharf-scale-")))
        results, seconds = run(settings, workdir)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "settings": asdict(settings),
                    "seconds": seconds,
                    "results": [asdict(result) for result in results],
                },
                indent=1,
            )
        )
    section = render(settings, results, seconds)
    print(section)
    output = Path(args.output) if args.output else DEFAULT_OUTPUT
    write_section(output, section)
    log(f"wrote the scale section of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
