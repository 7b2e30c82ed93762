"""Harness for the conformance suite: settings from the Go suite's environment variables, an
HTTP client that speaks to a registry the way the Go suite's client does, and the checks that
the tests share."""

from __future__ import annotations

import base64
import enum
import json
import os
import re
import sys
import uuid
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from tests.conformance.content import ERROR_CODES, MANIFEST_MEDIA_TYPE, Content

__all__ = [
    "OciClient",
    "Settings",
    "Suite",
    "Workflow",
    "error_codes",
    "expect_2xx",
    "expect_status",
    "relative_location",
    "run_only_if",
    "run_only_if_not",
    "tag_list",
]

USER_AGENT = "distribution-spec-conformance-tests"

DEFAULT_NAMESPACE = "oci-conformance/testrepo"


class Workflow(enum.Enum):
    """The four workflows, each switched on by its own environment variable."""

    PULL = "OCI_TEST_PULL"
    PUSH = "OCI_TEST_PUSH"
    CONTENT_DISCOVERY = "OCI_TEST_CONTENT_DISCOVERY"
    CONTENT_MANAGEMENT = "OCI_TEST_CONTENT_MANAGEMENT"


def parse_bool(value: str | None) -> bool | None:
    """Go's ``strconv.ParseBool``; None when unset or not a boolean."""
    if value is None:
        return None
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


@dataclass(frozen=True)
class Settings:
    """The Go suite's configuration, read from the same environment variables."""

    root_url: str | None
    namespace: str
    crossmount_namespace: str
    username: str
    password: str
    auth_scope: str
    debug: bool
    workflows: frozenset[Workflow]
    blob_digest: str
    manifest_digest: str
    tag_name: str
    tag_list: str
    delete_manifest_before_blobs: bool
    run_automatic_crossmount_test: bool
    automatic_crossmount_enabled: bool
    #: Not in the Go suite: also run the strict layer (``tests/conformance/strict.py``).
    strict: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        # Unlike the Go suite (where nothing runs unless asked for), every workflow runs when
        # none of the four variables is set, so that a plain ``pytest`` checks everything.
        if any(workflow.value in env for workflow in Workflow):
            workflows = frozenset(w for w in Workflow if parse_bool(env.get(w.value)))
        else:
            workflows = frozenset(Workflow)
        delete_first = parse_bool(env.get("OCI_DELETE_MANIFEST_BEFORE_BLOBS"))
        automatic = env.get("OCI_AUTOMATIC_CROSSMOUNT")
        return cls(
            root_url=env.get("OCI_ROOT_URL") or None,
            namespace=env.get("OCI_NAMESPACE") or DEFAULT_NAMESPACE,
            crossmount_namespace=env.get("OCI_CROSSMOUNT_NAMESPACE")
            or f"conformance-{uuid.uuid4()}",
            username=env.get("OCI_USERNAME", ""),
            password=env.get("OCI_PASSWORD", ""),
            auth_scope=env.get("OCI_AUTH_SCOPE", ""),
            debug=bool(parse_bool(env.get("OCI_DEBUG"))),
            workflows=workflows,
            blob_digest=env.get("OCI_BLOB_DIGEST", ""),
            manifest_digest=env.get("OCI_MANIFEST_DIGEST", ""),
            tag_name=env.get("OCI_TAG_NAME", ""),
            tag_list=env.get("OCI_TAG_LIST", ""),
            delete_manifest_before_blobs=True if delete_first is None else delete_first,
            run_automatic_crossmount_test=automatic is not None,
            automatic_crossmount_enabled=bool(parse_bool(automatic)),
            strict=bool(parse_bool(env.get("OCI_STRICT"))),
        )

    @property
    def run_pull_setup(self) -> bool:
        return not (self.tag_name and self.manifest_digest and self.blob_digest)

    @property
    def run_push_setup(self) -> bool:
        return True

    @property
    def run_content_discovery_setup(self) -> bool:
        return not self.tag_list

    @property
    def run_content_management_setup(self) -> bool:
        return True


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryAuth(httpx.Auth):
    """Basic or bearer-token auth, answering the registry's ``WWW-Authenticate`` challenge."""

    requires_request_body = True
    requires_response_body = True

    def __init__(self, username: str, password: str, scope: str = "") -> None:
        self._basic = ""
        if username or password:
            self._basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._scope = scope

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != httpx.codes.UNAUTHORIZED:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and self._basic:
            request.headers["Authorization"] = self._basic
            yield request
        elif scheme == "bearer":
            params = dict(_CHALLENGE_PARAM.findall(challenge))
            query = {key: params[key] for key in ("service", "scope") if key in params}
            if self._scope:
                query["scope"] = self._scope
            token_request = httpx.Request("GET", params.get("realm", ""), params=query)
            if self._basic:
                token_request.headers["Authorization"] = self._basic
            token_response = yield token_request
            body = token_response.json() if token_response.is_success else {}
            token = body.get("token") or body.get("access_token")
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
                yield request


def _log_request(request: httpx.Request) -> None:
    print(f"--> {request.method} {request.url}", file=sys.stderr)
    for key, value in request.headers.items():
        print(f"    {key}: {value}", file=sys.stderr)


def _log_response(response: httpx.Response) -> None:
    response.read()
    print(f"<-- {response.status_code} {response.request.url}", file=sys.stderr)
    for key, value in response.headers.items():
        print(f"    {key}: {value}", file=sys.stderr)
    if response.content:
        print(f"    {response.content[:2000]!r}", file=sys.stderr)


class OciClient:
    """Requests against path templates with ``<name>``, ``<digest>`` and ``<reference>``."""

    def __init__(self, settings: Settings, base_url: str) -> None:
        self.name = settings.namespace
        hooks: dict[str, list[Any]] = {}
        if settings.debug:
            hooks = {"request": [_log_request], "response": [_log_response]}
        self.http = httpx.Client(
            base_url=base_url,
            auth=RegistryAuth(settings.username, settings.password, settings.auth_scope),
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
            timeout=120.0,
            event_hooks=hooks,
            verify=False,
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        digest: str | None = None,
        reference: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        path = path.replace("<name>", name or self.name)
        if digest is not None:
            path = path.replace("<digest>", digest)
        if reference is not None:
            path = path.replace("<reference>", reference)
        if params:
            # Keep the query a Location may carry (httpx would replace it with ``params``).
            path += ("&" if "?" in path else "?") + urlencode(params)
        return self.http.request(method, path, headers=headers, content=content)

    def push_blob(self, blob_content: bytes, digest: str) -> httpx.Response:
        """POST to open an upload, then PUT the whole blob (as every setup step does)."""
        response = self.request("POST", "/v2/<name>/blobs/uploads/")
        return self.request(
            "PUT",
            relative_location(response),
            params={"digest": digest},
            headers={"Content-Type": "application/octet-stream"},
            content=blob_content,
        )

    def put_manifest(self, reference: str, manifest: bytes, media_type: str = "") -> httpx.Response:
        return self.request(
            "PUT",
            "/v2/<name>/manifests/<reference>",
            reference=reference,
            headers={"Content-Type": media_type or MANIFEST_MEDIA_TYPE},
            content=manifest,
        )


@dataclass
class Suite:
    """What every conformance test needs: settings, a client and the content to push."""

    settings: Settings
    client: OciClient
    content: Content

    @property
    def strict(self) -> bool:
        """Whether to hold the registry to the spec where the Go suite is lenient."""
        return self.settings.strict

    def skip_unless_enabled(self, workflow: Workflow) -> None:
        if workflow not in self.settings.workflows:
            pytest.skip(
                "you have skipped this test; if this is an error, check your environment "
                "variable settings: "
                + ", ".join(f"{w.value}={os.environ.get(w.value, '')}" for w in Workflow)
            )


def relative_location(response: httpx.Response) -> str:
    """The Location header as path and query on our own host, as the Go suite's client uses it."""
    location: str = response.headers.get("Location", "")
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def run_only_if(condition: bool) -> None:
    if not condition:
        pytest.skip("you have skipped this test.")


def run_only_if_not(condition: bool) -> None:
    run_only_if(not condition)


def describe(response: httpx.Response) -> str:
    body = response.content[:500].decode(errors="replace")
    return f"{response.request.method} {response.request.url} -> {response.status_code} {body!r}"


def expect_status(response: httpx.Response, *allowed: int) -> None:
    assert response.status_code in allowed, (
        f"expected status in {sorted(allowed)}, got {describe(response)}"
    )


def expect_2xx(response: httpx.Response, *also: int) -> None:
    """A 2xx status, or one of ``also``."""
    assert response.is_success or response.status_code in also, (
        f"expected 2xx{' or ' + str(sorted(also)) if also else ''}, got {describe(response)}"
    )


def error_codes(response: httpx.Response) -> list[str]:
    """The ``code`` of every entry in an OCI error body; fails the test if there is none."""
    try:
        body = response.json()
    except json.JSONDecodeError as exc:
        raise AssertionError(f"error body is not JSON: {describe(response)}") from exc
    errors = body.get("errors") if isinstance(body, dict) else None
    assert isinstance(errors, list), f"no errors list in body: {describe(response)}"
    assert errors, f"empty errors list: {describe(response)}"
    return [str(entry.get("code")) for entry in errors if isinstance(entry, dict)]


def is_known_error_code(code: str) -> bool:
    return code in ERROR_CODES


def tag_list(response: httpx.Response) -> list[str]:
    """The ``tags`` of a tag list body, or [] when the body is not one (as the Go suite does)."""
    try:
        body = response.json()
    except json.JSONDecodeError:
        return []
    tags = body.get("tags") if isinstance(body, dict) else None
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def nth(items: Iterable[str], index: int) -> str:
    """``items[index]``, failing the test (as Go's index panic does) when out of range."""
    values = list(items)
    assert 0 <= index < len(values), f"index {index} out of range for {values}"
    return values[index]
