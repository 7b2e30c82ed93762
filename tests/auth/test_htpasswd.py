"""``auth.htpasswd``: the password file, its reloads and cache, and the controller."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from tests.auth.support import basic, write_htpasswd
from wharf.auth import Access
from wharf.auth import htpasswd as module
from wharf.auth.htpasswd import HtpasswdController, HtpasswdFile
from wharf.auth.rules import AccessRules
from wharf.errors import Denied, Unauthorized

PULL = Access("repository", "team/app", "pull")
PUSH = Access("repository", "team/app", "push")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The hashes bcrypt is asked to check against, in order."""
    seen: list[bytes] = []
    real = module._check

    def check(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(module, "_check", check)
    return seen


async def test_verify(path: Path) -> None:
    users = HtpasswdFile(str(path))
    assert await users.verify("alice", "wonderland")
    assert await users.verify("bob", "builder")
    assert not await users.verify("alice", "builder")
    assert not await users.verify("carol", "wonderland")
    assert not await users.verify("alice", "")
    assert "alice" in users
    assert "carol" not in users


async def test_unknown_user_costs_a_bcrypt_check(path: Path, checks: list[bytes]) -> None:
    users = HtpasswdFile(str(path))
    assert not await users.verify("nobody", "whatever")
    (dummy,) = checks
    assert dummy.startswith(b"$2b$04$")  # the file's cost, so as slow as a real user
    assert not await users.verify("nobody-else", "x")
    assert checks[1] == dummy


async def test_dummy_hash_uses_the_most_common_cost(tmp_path: Path, checks: list[bytes]) -> None:
    lines = [
        f"u{i}:{bcrypt.hashpw(b'p', bcrypt.gensalt(cost)).decode()}"
        for i, cost in enumerate([5, 5, 4])
    ]
    (tmp_path / "htpasswd").write_text("\n".join(lines))
    users = HtpasswdFile(str(tmp_path / "htpasswd"))
    assert not await users.verify("nobody", "p")
    assert checks[0].startswith(b"$2b$05$")


async def test_verification_runs_off_the_event_loop(tmp_path: Path) -> None:
    path = write_htpasswd(tmp_path / "htpasswd", {"slow": "password"}, cost=12)
    users = HtpasswdFile(str(path))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        assert await users.verify("slow", "password")
    finally:
        task.cancel()
    assert ticks >= 5  # the loop kept serving while bcrypt ran


async def test_successful_checks_are_cached(path: Path, checks: list[bytes]) -> None:
    users = HtpasswdFile(str(path))
    for _ in range(5):
        assert await users.verify("alice", "wonderland")
    assert len(checks) == 1
    for _ in range(3):
        assert not await users.verify("alice", "wrong")
    assert len(checks) == 4  # a failure is never cached: every guess pays for bcrypt


async def test_cache_key_separates_user_and_password(path: Path) -> None:
    users = HtpasswdFile(str(path))
    assert await users.verify("alice", "wonderland")
    # "alice" + "wonderland" must not be confused with "alicew" + "onderland".
    assert not await users.verify("alicew", "onderland")


async def test_cache_expires(path: Path, checks: list[bytes]) -> None:
    users = HtpasswdFile(str(path), cache_seconds=0)
    assert await users.verify("alice", "wonderland")
    assert await users.verify("alice", "wonderland")
    assert len(checks) == 2


async def test_file_is_reread_when_it_changes(path: Path) -> None:
    users = HtpasswdFile(str(path), check_interval=0)
    assert await users.verify("alice", "wonderland")  # now cached
    write_htpasswd(path, {"alice": "new-password", "carol": "singer"})
    os.utime(path, ns=(1, 1))  # a different stamp even within one clock tick
    assert not await users.verify("alice", "wonderland")  # the cache went with the old file
    assert await users.verify("alice", "new-password")
    assert await users.verify("carol", "singer")
    assert not await users.verify("bob", "builder")


async def test_changes_are_seen_after_the_check_interval(path: Path) -> None:
    users = HtpasswdFile(str(path), check_interval=3600)
    write_htpasswd(path, {"carol": "singer"})
    os.utime(path, ns=(1, 1))
    assert not await users.verify("carol", "singer")  # not looked at yet
    users.check_interval = 0
    assert await users.verify("carol", "singer")


async def test_missing_file_lets_nobody_in(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    users = HtpasswdFile(str(path), check_interval=0)
    content = _remove(path)
    with caplog.at_level(logging.ERROR, "wharf.auth"):
        assert not await users.verify("alice", "wonderland")
    assert "missing" in caplog.text
    _restore(path, content)
    assert await users.verify("alice", "wonderland")


def _remove(path: Path) -> bytes:
    content = path.read_bytes()
    path.unlink()
    return content


def _restore(path: Path, content: bytes) -> None:
    path.write_bytes(content)


async def test_only_bcrypt_entries_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    path = tmp_path / "htpasswd"
    path.write_text(
        "# a comment\n\n"
        f"good:{good}\n"
        "md5:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n"
        "sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
        "plain:pw\n"
        f"yprefix:$2y${good[4:]}\n"
    )
    with caplog.at_level(logging.WARNING, "wharf.auth"):
        users = HtpasswdFile(str(path))
    assert caplog.text.count("not a bcrypt entry") == 3
    assert await users.verify("good", "pw")
    assert await users.verify("yprefix", "pw")  # htpasswd -B writes $2y$
    for user in ("md5", "sha", "plain"):
        assert not await users.verify(user, "pw")


async def test_passwords_longer_than_bcrypt_reads(tmp_path: Path) -> None:
    long = "x" * 72
    path = tmp_path / "htpasswd"
    path.write_text(f"u:{bcrypt.hashpw(long.encode(), bcrypt.gensalt(4)).decode()}\n")
    users = HtpasswdFile(str(path))
    # bcrypt reads 72 bytes, as Apache's and Go's implementations do.
    assert await users.verify("u", long + "ignored")
    assert not await users.verify("u", "x" * 71)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        HtpasswdFile(str(tmp_path / "missing"))


# --- the controller ------------------------------------------------------------------------


async def refuse(controller: HtpasswdController, headers: dict[str, str], *wanted: Access) -> Any:
    with pytest.raises((Unauthorized, Denied)) as caught:
        await controller.authorize({k.lower(): v for k, v in headers.items()}, wanted)
    return caught.value


async def test_controller_challenges_with_basic(path: Path) -> None:
    controller = HtpasswdController('wharf "test"', HtpasswdFile(str(path)))
    for headers in (
        {},
        basic("alice", "wrong"),
        basic("nobody", "x"),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + "YWxpY2U="},  # no colon
        {"Authorization": "Bearer abc"},
    ):
        error = await refuse(controller, headers, PULL)
        assert isinstance(error, Unauthorized)
        assert error.headers == {"WWW-Authenticate": 'Basic realm="wharf \\"test\\""'}
        assert error.detail == [
            {"Type": "repository", "Class": "", "Name": "team/app", "Action": "pull"}
        ]


async def test_controller_lets_every_user_do_everything(path: Path) -> None:
    controller = HtpasswdController("wharf", HtpasswdFile(str(path)))
    headers = {k.lower(): v for k, v in basic("bob", "builder").items()}
    identity = await controller.authorize(headers, [PULL, PUSH])
    assert identity.name == "bob"
    assert identity.granted == {PULL, PUSH}
    assert (await controller.authorize(headers, ())).name == "bob"


async def test_controller_with_access_rules(path: Path) -> None:
    rules = AccessRules.from_config(
        "access",
        [
            {"repository": "team/*", "pull": ["*"], "push": ["alice"]},
            {"repository": "public/**", "anonymous": ["pull"]},
        ],
    )
    controller = HtpasswdController("wharf", HtpasswdFile(str(path)), rules)
    alice = {k.lower(): v for k, v in basic("alice", "wonderland").items()}
    bob = {k.lower(): v for k, v in basic("bob", "builder").items()}
    await controller.authorize(alice, [PULL, PUSH])
    await controller.authorize(bob, [PULL])
    error = await refuse(controller, basic("bob", "builder"), PULL, PUSH)
    assert isinstance(error, Denied)
    assert error.http_status == 403
    public = Access("repository", "public/x/y", "pull")
    assert (await controller.authorize({}, [public])).name == ""
    error = await refuse(controller, {}, Access("repository", "public/x", "push"))
    assert isinstance(error, Unauthorized)
    error = await refuse(controller, {})  # /v2/ still asks for credentials
    assert isinstance(error, Unauthorized)
