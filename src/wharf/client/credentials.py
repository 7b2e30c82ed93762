"""Where a client's credentials for a registry come from.

- :class:`Login`: a username and a password (or an identity token: an OAuth2 refresh token, as
  ``docker login`` keeps for registries that issue one);
- :class:`CredentialHelper`: a docker credential helper program (``docker-credential-<name>
  get``, the registry's host on its standard input, ``{"Username", "Secret"}`` on its output;
  a username of ``<token>`` means the secret is an identity token), asked again after
  ``lifetime``;
- :class:`DockerConfig`: what ``docker login`` and ``podman login`` wrote: ``auths`` entries
  (``auth`` or ``username``/``password``, ``identitytoken``), ``credHelpers`` and
  ``credsStore``, read from ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CredentialHelper", "Credentials", "DockerConfig", "Login"]

_HELPER_TIMEOUT = 30.0
#: What credential helpers answer as the username of an identity token.
_TOKEN_USER = "<token>"


@dataclass(frozen=True, slots=True)
class Login:
    username: str = ""
    password: str = ""
    #: An OAuth2 refresh token for the registry's token service, instead of the password.
    identity_token: str = ""

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, password={'***' if self.password else ''!r})"


class Credentials(ABC):
    """A source of credentials for registry hosts."""

    @abstractmethod
    async def login(self, host: str) -> Login | None:
        """The credentials for ``host`` (``host[:port]``), or None for anonymous access."""


class _Static(Credentials):
    def __init__(self, login: Login) -> None:
        self._login = login

    async def login(self, host: str) -> Login | None:
        return self._login


def static(username: str, password: str) -> Credentials:
    return _Static(Login(username, password))


class CredentialHelper(Credentials):
    def __init__(self, command: str, lifetime: float | None = None) -> None:
        self.command = command
        self.lifetime = lifetime
        self._held: dict[str, tuple[Login, float]] = {}

    async def login(self, host: str) -> Login | None:
        held = self._held.get(host)
        if held is not None and held[1] > time.monotonic():
            return held[0]
        process = await asyncio.create_subprocess_exec(
            self.command,
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(host.encode()), _HELPER_TIMEOUT)
        except TimeoutError:
            process.kill()
            raise RuntimeError(f"credential helper {self.command} did not answer") from None
        if process.returncode != 0:
            return None  # the helper has nothing for this host
        answer = json.loads(output)
        username, secret = str(answer.get("Username", "")), str(answer.get("Secret", ""))
        login = Login(identity_token=secret) if username == _TOKEN_USER else Login(username, secret)
        lifetime = self.lifetime if self.lifetime is not None else float("inf")
        self._held[host] = (login, time.monotonic() + lifetime)
        return login


def _config_path() -> Path:
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker/config.json"


class DockerConfig(Credentials):
    """What ``docker login`` stored (read at each call: a later login is seen)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or _config_path()

    async def login(self, host: str) -> Login | None:
        try:
            document = json.loads(await asyncio.to_thread(self.path.read_text))
        except (OSError, ValueError):
            return None
        if not isinstance(document, dict):
            return None
        helpers = document.get("credHelpers") or {}
        helper = helpers.get(host) if isinstance(helpers, dict) else None
        entry = _entry(document.get("auths"), host)
        if entry is not None:
            found = _from_entry(entry)
            if found is not None:
                return found
        helper = helper or document.get("credsStore")
        if isinstance(helper, str) and helper:
            return await CredentialHelper(f"docker-credential-{helper}").login(host)
        return None


def _entry(auths: object, host: str) -> dict[str, object] | None:
    if not isinstance(auths, dict):
        return None
    for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/"):
        entry = auths.get(key)
        if isinstance(entry, dict):
            return entry
    if host in ("registry-1.docker.io", "docker.io"):
        entry = auths.get("https://index.docker.io/v1/")
        if isinstance(entry, dict):
            return entry
    return None


def _from_entry(entry: dict[str, object]) -> Login | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Login(identity_token=token)
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return None
        return Login(username, password)
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return Login(user, secret)
    return None


__all__ += ["static"]
