"""Real clients against a secured wharf: podman login and skopeo ``--creds``, with htpasswd
and with the built-in token service (nothing else running)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.support import write_htpasswd
from tests.support.clients import ClientError, Podman, Skopeo, binary
from tests.support.images import build_image
from tests.support.server import WharfServer, free_port

pytestmark = pytest.mark.client

needs_podman = pytest.mark.skipif(binary("podman") is None, reason="podman is not installed")
needs_skopeo = pytest.mark.skipif(binary("skopeo") is None, reason="skopeo is not installed")

ACCESS: list[dict[str, Any]] = [
    {"repository": "**", "pull": ["*"]},
    {"repository": "team/*", "push": ["alice"], "delete": ["alice"]},
    {"repository": "public/*", "anonymous": ["pull"], "push": ["alice"]},
]


def _serve(
    config: dict[str, Any], *, port: int | None = None, workers: int = 1
) -> Iterator[WharfServer]:
    server = WharfServer(config=config, port=port, workers=workers)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def users(tmp_path: Path) -> Path:
    return write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})


@pytest.fixture
def htpasswd_server(users: Path) -> Iterator[WharfServer]:
    yield from _serve({"auth": {"htpasswd": {"realm": "wharf", "path": str(users)}}})


def token_config(users: Path, port: int) -> dict[str, Any]:
    return {
        "auth": {
            "token": {
                "realm": f"http://127.0.0.1:{port}/token",
                "service": f"127.0.0.1:{port}",
                "issuer": "wharf",
            },
            "tokenservice": {"users": str(users), "access": ACCESS},
        }
    }


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def token_server(request: pytest.FixtureRequest, users: Path) -> Iterator[WharfServer]:
    # With two workers, a token signed by one is checked by the other: both derive the key
    # from the shared http.secret.
    port = free_port()
    yield from _serve(token_config(users, port), port=port, workers=request.param)


@pytest.fixture
def podman_factory(tmp_path: Path) -> Iterator[Callable[[WharfServer, str], Podman]]:
    made: dict[str, Podman] = {}
    with contextlib.ExitStack() as stack:

        def make(server: WharfServer, name: str) -> Podman:
            if name not in made:
                made[name] = stack.enter_context(Podman(tmp_path / f"podman-{name}", server=server))
            return made[name]

        yield make


def _push_pull_with_podman(
    server: WharfServer, podman_factory: Callable[[WharfServer, str], Podman], tmp_path: Path
) -> None:
    image = build_image(tmp_path / "layout", tag="v1", layers=2, layer_size=50_000)
    target = f"{server.host}/team/app:v1"
    policy = ["--signature-policy"]
    alice = podman_factory(server, "alice")
    alice.run("pull", *policy, str(alice.policy), image.source)
    alice.run("tag", image.config.digest.removeprefix("sha256:"), target)

    refused = alice.run(
        "push", *policy, str(alice.policy), "--tls-verify=false", target, check=False
    )
    assert refused.returncode != 0  # not logged in yet
    bad = alice.run(
        "login", "--tls-verify=false", "-u", "alice", "-p", "wrong", server.host, check=False
    )
    assert bad.returncode != 0
    alice.run("login", "--tls-verify=false", "-u", "alice", "-p", "wonderland", server.host)
    alice.run("push", *policy, str(alice.policy), "--tls-verify=false", target)

    bob = podman_factory(server, "bob")
    bob.run("login", "--tls-verify=false", "-u", "bob", "-p", "builder", server.host)
    bob.run("pull", *policy, str(bob.policy), "--tls-verify=false", target)
    pulled = bob.image_inspect(target)
    assert pulled["Id"] == image.config.digest.removeprefix("sha256:")


@needs_podman
def test_podman_with_htpasswd(
    htpasswd_server: WharfServer,
    podman_factory: Callable[[WharfServer, str], Podman],
    tmp_path: Path,
) -> None:
    _push_pull_with_podman(htpasswd_server, podman_factory, tmp_path)


@needs_podman
def test_podman_with_the_token_service(
    token_server: WharfServer,
    podman_factory: Callable[[WharfServer, str], Podman],
    tmp_path: Path,
) -> None:
    _push_pull_with_podman(token_server, podman_factory, tmp_path)
    # Bob may pull but not push: the token service grants him less than he asks for.
    bob = podman_factory(token_server, "bob")
    target = f"{token_server.host}/team/app:v1"
    bob.run("tag", target, f"{token_server.host}/team/bobs:v1")
    refused = bob.run(
        "push",
        "--signature-policy",
        str(bob.policy),
        "--tls-verify=false",
        f"{token_server.host}/team/bobs:v1",
        check=False,
    )
    assert refused.returncode != 0
    assert "unauthorized" in refused.stderr.lower() or "denied" in refused.stderr.lower()


def _digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _copy_with_skopeo(server: WharfServer, tmp_path: Path, *, rules: bool) -> None:
    image = build_image(tmp_path / "layout", tag="v1", layers=2, layer_size=50_000)
    skopeo = Skopeo(tmp_path / "skopeo", server=server)
    target = f"docker://{server.host}/team/tool:v1"
    with pytest.raises(ClientError, match=r"(?i)unauthorized|authentication required|denied"):
        skopeo.copy(image.source, target)
    with pytest.raises(
        ClientError, match=r"(?i)unauthorized|authentication required|denied|invalid"
    ):
        skopeo.copy(image.source, target, "--dest-creds", "alice:wrong")
    skopeo.copy(image.source, target, "--dest-creds", "alice:wonderland")
    assert _digest(skopeo.inspect_raw(target, "--creds", "bob:builder")) == image.digest
    assert skopeo.list_tags(target.rsplit(":", 1)[0], "--creds", "bob:builder") == ["v1"]
    copied = tmp_path / "copied"
    skopeo.copy(target, f"oci:{copied}:v1", "--src-creds", "bob:builder")
    other = f"docker://{server.host}/team/other:v1"
    if rules:  # bob may pull but not push
        with pytest.raises(ClientError, match=r"(?i)unauthorized|denied"):
            skopeo.copy(image.source, other, "--dest-creds", "bob:builder")
    else:  # htpasswd alone lets every user do everything
        skopeo.copy(image.source, other, "--dest-creds", "bob:builder")


@needs_skopeo
def test_skopeo_with_htpasswd(htpasswd_server: WharfServer, tmp_path: Path) -> None:
    _copy_with_skopeo(htpasswd_server, tmp_path, rules=False)


@needs_skopeo
def test_skopeo_with_the_token_service(token_server: WharfServer, tmp_path: Path) -> None:
    _copy_with_skopeo(token_server, tmp_path, rules=True)
    # Anonymous pulls where the rules allow them.
    image = build_image(tmp_path / "public", tag="v1", layers=1, layer_size=1000, seed=7)
    skopeo = Skopeo(tmp_path / "skopeo-public", server=token_server)
    public = f"docker://{token_server.host}/public/app:v1"
    skopeo.copy(image.source, public, "--dest-creds", "alice:wonderland")
    assert _digest(skopeo.inspect_raw(public)) == image.digest
    with pytest.raises(ClientError):
        skopeo.inspect_raw(f"docker://{token_server.host}/team/tool:v1")


def test_token_server_answers_the_docker_token_flow(token_server: WharfServer) -> None:
    challenge = httpx.get(f"{token_server.url}/v2/")
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == (
        f'Bearer realm="{token_server.url}/token",service="{token_server.host}"'
    )
    token = httpx.get(
        f"{token_server.url}/token",
        params={"service": token_server.host, "scope": "repository:team/app:pull"},
        auth=("bob", "builder"),
    )
    assert token.status_code == 200
    response = httpx.get(
        f"{token_server.url}/v2/team/app/tags/list",
        headers={"Authorization": f"Bearer {token.json()['token']}"},
    )
    assert response.status_code == 404  # authorized; the repository does not exist
