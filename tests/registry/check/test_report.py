"""The report: its lines, its JSON, its summary, and the package's public names."""

from __future__ import annotations

import json

import wharf.registry.check as check
from wharf.registry.check import CheckReport, CheckStats, Kind, Problem


def test_a_problem_is_one_line_with_its_repair() -> None:
    problem = Problem(Kind.TAG_DANGLING, "/r/app/_manifests/tags/v1/current/link", "points")
    assert problem.line() == "tag-dangling /r/app/_manifests/tags/v1/current/link: points"
    problem.action, problem.repaired = "tag removed", True
    assert problem.line().endswith(": points [repaired: tag removed]")
    problem.action, problem.repaired = "the tag changed meanwhile", False
    assert problem.line().endswith(" [not repaired: the tag changed meanwhile]")


def test_the_json_form_is_stable() -> None:
    report = CheckReport(
        repair=True,
        stats=CheckStats(blobs=3, bytes_hashed=2048, upload_sessions=1),
        problems=[
            Problem(Kind.REFERENCE_MISSING, "/b", "why", "app", False, "push it again"),
            Problem(Kind.BLOB_CORRUPT, "/a", "hash", None, True, "removed"),
        ],
    )
    report.sort()

    document = json.loads(json.dumps(report.to_json()))

    assert document["clean"] is False
    assert document["repair"] is True
    assert document["unresolved"] == 1
    assert document["stats"]["blobs"] == 3
    assert document["problems"] == [
        {
            "kind": "blob-corrupt",
            "path": "/a",
            "detail": "hash",
            "repository": None,
            "repaired": True,
            "action": "removed",
        },
        {
            "kind": "reference-missing",
            "path": "/b",
            "detail": "why",
            "repository": "app",
            "repaired": False,
            "action": "push it again",
        },
    ]
    summary = report.summary()
    assert summary[0].startswith("checked 3 blobs (2.0 KiB hashed), 0 repositories, ")
    assert summary[1] == "found 2 problems: 1 blob-corrupt, 1 reference-missing; repaired 1"
    assert summary[2] == "not problems: 1 upload session"


def test_kinds_are_the_documented_names() -> None:
    assert all(kind.value == kind.name.lower().replace("_", "-") for kind in Kind)


def test_the_package_exports_its_api() -> None:
    assert set(check.__all__) == {
        "DEFAULT_CONCURRENCY",
        "RECHECK_DELAY",
        "CheckReport",
        "CheckStats",
        "Kind",
        "Problem",
        "check_storage",
    }
    for name in check.__all__:
        assert getattr(check, name) is not None
