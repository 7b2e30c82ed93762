"""Distribution's sections and keys wharf does not implement: accepted when they ask for
nothing wharf does not do, refused with one line otherwise, lenient or not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wharf.config.load import ConfigError, load_config, load_config_with_warnings


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\n" + textwrap.dedent(body))
    return str(path)


def test_sections_asking_for_nothing_more_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        log:
          reportcaller: false
          hooks:
            - {type: mail, disabled: true, levels: [panic], options: {smtp: {addr: 'm:25'}}}
        reporting:
          bugsnag: {apikey: "", releasestage: production}
          newrelic: {licensekey: "", name: registry, verbose: false}
        middleware:
          registry: []
          storage:
            - {name: cloudfront, disabled: true, options: {baseurl: 'https://cdn/'}}
        validation:
          disabled: true
          manifests:
            urls: {allow: ['^https://'], deny: ['^http://']}
            indexes: {platforms: none}
        compatibility:
          schema1: {enabled: false}
        policy:
          repository: {classes: []}
        """,
    )
    config, warnings = load_config_with_warnings(path, {})
    assert warnings == []
    assert config.extra == {}


def test_validation_that_asks_for_what_wharf_does_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "validation: {manifests: {indexes: {platforms: all}}}\n")
    assert load_config_with_warnings(path, {})[1] == []


REFUSED = [
    (
        "reporting: {bugsnag: {apikey: k}}",
        "reporting.bugsnag.apikey: not supported by wharf: it reports no errors to bugsnag",
    ),
    (
        "reporting: {newrelic: {licensekey: k, name: r}}",
        "reporting.newrelic.licensekey: not supported by wharf",
    ),
    (
        "middleware: {storage: [{disabled: false, options: {baseurl: 'https://cdn/'}}]}",
        "middleware.storage.0.name: required: the storage middleware to apply",
    ),
    (
        "middleware: {storage: [{name: redirect, options: [baseurl]}]}",
        "middleware.storage.0.options: expected a mapping",
    ),
    (
        "middleware: {repository: [{name: ARepositoryMiddleware}]}",
        "middleware.repository.0.name: not supported by wharf: repository middleware",
    ),
    (
        "validation: {manifests: {urls: {allow: ['^https://']}}}",
        "validation.manifests.urls.allow: not supported by wharf: it accepts every",
    ),
    (
        "validation: {enabled: true, manifests: {urls: {deny: ['^http://']}}}",
        "validation.manifests.urls.deny: not supported by wharf",
    ),
    (
        "compatibility: {schema1: {enabled: true}}",
        "compatibility.schema1.enabled: not supported by wharf: schema 1 manifests",
    ),
    (
        "policy: {repository: {classes: [image]}}",
        "policy.repository.classes: not supported by wharf: repository classes",
    ),
    (
        "log: {hooks: [{type: mail, levels: [panic]}]}",
        "log.hooks.0.type: not supported by wharf: log hooks (mail) are not implemented",
    ),
    (
        "http: {tls: {letsencrypt: {cachefile: /c, email: a@b.c, hosts: [r.example]}}}",
        "http.tls.letsencrypt: not supported by wharf: it obtains no certificates itself",
    ),
    (
        "http: {tls: {minimumtls: tls1.3}}",
        "http.tls.certificate: required with http.tls (remove http.tls to serve plain HTTP)",
    ),
    (
        "http: {tls: {clientauth: require-any-client-cert}}",
        "http.tls.clientauth: require-any-client-cert is not supported by wharf",
    ),
    ("http: {tls: {ciphersuites: [TLS_NULL]}}", "http.tls.ciphersuites: unknown cipher suite"),
    ("http: {h2c: {enabled: true}}", "http.h2c: uvicorn serves HTTP/1.1 only"),
]


@pytest.mark.parametrize(("body", "message"), REFUSED)
@pytest.mark.parametrize("lenient", [False, True])
def test_what_wharf_does_not_do_is_refused(
    tmp_path: Path, body: str, message: str, lenient: bool
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, body + "\n"), {}, lenient=lenient)
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_what_granian_cannot_do_is_refused(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    tls = f"certificate: {tmp_path / 'c.pem'}, key: {tmp_path / 'k.pem'}"
    cas = f"clientcas: [{tmp_path / 'ca.pem'}]"
    cases = [
        (f"{{{tls}, ciphersuites: [TLS_AES_128_GCM_SHA256]}}", "http.tls.ciphersuites: granian"),
        (f"{{{tls}, minimumtls: tls1.1}}", "http.tls.minimumtls: granian accepts TLS 1.2"),
        (
            f"{{{tls}, {cas}, clientauth: verify-client-cert-if-given}}",
            "http.tls.clientauth: granian cannot verify-client-cert-if-given",
        ),
    ]
    for tls_section, message in cases:
        path = write(tmp_path, f"http: {{server: granian, tls: {tls_section}}}\n")
        with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
            load_config(path, {})


def test_http2_h2c_and_tls_options_are_read(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    path = write(
        tmp_path,
        """\
        http:
          server: granian
          http2: {disabled: true}
          h2c: {enabled: true}
        """,
    )
    http = load_config(path, {}).http
    assert (http.http2_disabled, http.h2c_enabled) == (True, True)
    path = write(
        tmp_path,
        f"""\
        http:
          tls:
            certificate: {tmp_path / "c.pem"}
            key: {tmp_path / "k.pem"}
            clientcas: [{tmp_path / "ca.pem"}]
            clientauth: verify-client-cert-if-given
            ciphersuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
        """,
    )
    tls = load_config(path, {}).http.tls
    assert tls is not None
    assert tls.client_auth == "verify-client-cert-if-given"
    assert tls.cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256")


def test_tag_concurrency_limit(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "storage: {tag: {concurrencylimit: 8}}\n"), {})
    assert config.storage.tag_concurrency_limit == 8
    with pytest.raises(ConfigError, match=r"^storage\.tag\.concurrencylimit: must be at least 0"):
        load_config(write(tmp_path, "storage: {tag: {concurrencylimit: -1}}\n"), {})
