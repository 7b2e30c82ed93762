"""Build the access controller (and token service) the configuration's ``auth`` section asks for.

Supported sections, one backend at a time as in Distribution:

``htpasswd``                Basic authentication (``realm``, ``path``; wharf adds ``access``)
``token``                   Bearer tokens from an external token service
``token`` + ``tokenservice``  Bearer tokens from wharf's own token service

Every problem is a :class:`~wharf.config.load.ConfigError` (a ValueError) of one line naming
the option, raised when the app is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wharf.auth.base import AccessController
from wharf.auth.htpasswd import HtpasswdController, HtpasswdFile
from wharf.auth.options import Options
from wharf.auth.rules import AccessRules
from wharf.auth.token import TokenController
from wharf.auth.token_service import TokenService
from wharf.config.load import ConfigError

__all__ = ["AuthSetup", "create_access_controller", "create_auth", "validate_auth"]

_BACKENDS = ("htpasswd", "token")


@dataclass(frozen=True, slots=True)
class AuthSetup:
    controller: AccessController | None = None
    token_service: TokenService | None = None


def create_auth(auth: Mapping[str, Any] | None, *, secret: str = "") -> AuthSetup:
    """The controller for ``auth`` (None: every request is allowed), and the token service
    when one is configured. ``secret`` is the shared ``http.secret`` the service may derive
    its signing key from."""
    if not auth:
        return AuthSetup()
    names = {str(name).lower(): value for name, value in auth.items()}
    service_options = names.pop("tokenservice", None)
    if len(names) != 1 or next(iter(names)) not in _BACKENDS:
        found = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"auth: configure exactly one of {', '.join(_BACKENDS)} (found: {found})")
    (backend,) = names
    if service_options is not None and backend != "token":
        raise ConfigError("auth.tokenservice: needs auth.token (realm, service, issuer)")
    options = Options(f"auth.{backend}", names[backend])
    if backend == "htpasswd":
        return AuthSetup(_htpasswd(options))
    token_service = None
    extra_keys = None
    if service_options is not None:
        token_service = TokenService.from_options(
            Options("auth.tokenservice", service_options),
            service=options.string("service"),
            issuer=options.string("issuer"),
            secret=secret,
        )
        extra_keys = token_service.trusted_keys()
    controller = TokenController.from_options(options, extra_keys)
    if token_service is not None:
        algorithm = token_service.signing_key.algorithm
        if algorithm not in controller.verifier.algorithms:
            raise ConfigError(
                f"auth.token.signingalgorithms: the token service signs with {algorithm}, "
                "which is not in the list"
            )
    return AuthSetup(controller, token_service)


def validate_auth(auth: Mapping[str, Any] | None) -> None:
    """Raise the ConfigError the workers would raise for ``auth``, so that a launcher can
    report it in one line before starting them (the secret is the launcher's to share)."""
    create_auth(auth, secret="validation only")


def create_access_controller(auth: Mapping[str, Any] | None) -> AccessController | None:
    """None when no ``auth`` section is configured: every request is allowed."""
    return create_auth(auth).controller


def _htpasswd(options: Options) -> HtpasswdController:
    realm = options.string("realm")
    path = options.file("path")
    rules = None
    if options.has("access"):
        rules = AccessRules.from_config(f"{options.path}.access", options.get("access"))
    options.finish()
    try:
        users = HtpasswdFile(path)
    except ConfigError as exc:
        raise options.error("path", str(exc)) from None
    return HtpasswdController(realm, users, rules)
