"""Distribution's sections that wharf reads only to refuse what it does not do.

A key here is accepted when it asks for nothing more than wharf does anyway (a disabled
log hook, a Bugsnag section without an API key), and refused otherwise, with
one line saying why. None of it is ever ignored: a registry that quietly skipped a configured
middleware or error reporter would run differently from what its operator reads in the file.
(``validation`` is read by ``wharf.config.validation``, which refuses its URL lists alike, and
``middleware`` by ``wharf.config.middleware``, which refuses registry and repository
middleware.)

Each check takes the top level of the configuration and reads its own section, as the
parsers of ``wharf.config.load.SECTION_PARSERS`` do.
"""

from __future__ import annotations

from wharf.config.operations import SectionReader, elements, strings

__all__ = [
    "check_compatibility",
    "check_log_hooks",
    "check_policy",
    "check_reporting",
]


def check_reporting(top: SectionReader) -> None:
    """Distribution reports to Bugsnag or New Relic only with a key; so may a file here."""
    section = top.section("reporting")
    for name, secret, others in (
        ("bugsnag", "apikey", ("releasestage", "endpoint")),
        ("newrelic", "licensekey", ("name",)),
    ):
        service = section.section(name)
        key = service.string(secret, "")
        for other in others:
            service.string(other, "")
        if name == "newrelic":
            service.boolean("verbose", False)
        service.finish()
        if key:
            raise service.error(
                secret,
                f"not supported by wharf: it reports no errors to {name}; its errors go to "
                "its log and to /metrics",
            )
    section.finish()


def check_compatibility(top: SectionReader) -> None:
    section = top.section("compatibility")
    schema1 = section.section("schema1")
    enabled = schema1.boolean("enabled", False)
    if schema1.has("signingkeyfile"):
        schema1.unsupported("signingkeyfile", "it signs schema 1 manifests, never served")
    schema1.finish()
    section.finish()
    if enabled:
        raise schema1.error(
            "enabled",
            "not supported by wharf: schema 1 manifests (deprecated since 2015) are neither "
            "accepted nor served",
        )


def check_policy(top: SectionReader) -> None:
    section = top.section("policy")
    repository = section.section("repository")
    classes = strings(repository, "classes")
    repository.finish()
    section.finish()
    if classes:
        raise repository.error(
            "classes", "not supported by wharf: repository classes are not implemented"
        )


def check_log_hooks(log: SectionReader) -> None:
    """``log.hooks``: Distribution's mail hooks; a disabled one is accepted."""
    for item in elements(log, "hooks"):
        disabled = item.boolean("disabled", False)
        kind = item.string("type", "")
        item.get("levels")
        item.get("options")
        item.finish()
        if not disabled:
            raise item.error(
                "type",
                f"not supported by wharf: log hooks ({kind or 'mail'}) are not implemented; "
                "have a log collector alert instead",
            )
