"""``http.tls``: the certificate and key, client certificates, the lowest protocol version and
the cipher suites, with Distribution's names and values.

What the files hold is checked before any worker starts (``wharf.preflight``); here only their
presence. ``letsencrypt`` is refused: wharf obtains no certificates itself, and serving plain
HTTP instead, as a section it ignored would, is never what was meant. For the same reason a
``tls`` section without a certificate and key is an error rather than plain HTTP.

Cipher suites are Go's names, as Distribution takes them; each TLS 1.2 suite has an OpenSSL
name (which ``ssl.SSLContext.set_ciphers`` takes). Go does not let TLS 1.3 suites be chosen
(all three are always on) and neither does Python's ``ssl``: naming them is accepted and
changes nothing, as in Distribution.
"""

from __future__ import annotations

import os
from typing import Any

from wharf.config.model import TLSConfig
from wharf.config.operations import SectionReader

__all__ = ["CIPHER_SUITES", "CLIENT_AUTH_MODES", "TLS_VERSIONS", "openssl_ciphers", "parse_tls"]

TLS_VERSIONS = ("tls1.0", "tls1.1", "tls1.2", "tls1.3")
#: Distribution 3's ``clientauth`` values; the first two ask for a certificate without
#: verifying it, which Python's ``ssl`` cannot do (wharf refuses them).
CLIENT_AUTH_MODES = (
    "request-client-cert",
    "require-any-client-cert",
    "verify-client-cert-if-given",
    "require-and-verify-client-cert",
)
#: Go's cipher suite names -> OpenSSL's; "" for the TLS 1.3 suites, which are always on.
CIPHER_SUITES = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
}


def _files(section: SectionReader, name: str) -> tuple[str, ...]:
    value: Any = section.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise section.error(name, f"expected a list of file names, got {value!r:.60}")
    return tuple(value)


def parse_tls(section: SectionReader) -> TLSConfig | None:
    """None without a ``tls`` section (plain HTTP)."""
    letsencrypt = section.get("letsencrypt")
    if letsencrypt:
        raise section.error(
            "letsencrypt",
            "not supported by wharf: it obtains no certificates itself; give certificate and "
            "key (from certbot, for example), or end TLS in a proxy in front of it",
        )
    certificate = section.string("certificate", "")
    key = section.string("key", "")
    client_cas = _files(section, "clientcas")
    minimum = section.choice("minimumtls", "tls1.2", TLS_VERSIONS)
    client_auth = section.choice("clientauth", CLIENT_AUTH_MODES[-1], CLIENT_AUTH_MODES)
    if client_auth in CLIENT_AUTH_MODES[:2]:
        raise section.error(
            "clientauth",
            f"{client_auth} is not supported by wharf: it verifies every client certificate "
            "it accepts (verify-client-cert-if-given or require-and-verify-client-cert)",
        )
    suites = _files(section, "ciphersuites")
    for suite in suites:
        if suite not in CIPHER_SUITES:
            raise section.error("ciphersuites", f"unknown cipher suite {suite!r}")
    section.finish()
    if not certificate and not key:
        if section.data:
            raise section.error(
                "certificate", "required with http.tls (remove http.tls to serve plain HTTP)"
            )
        return None
    for name, value in (("certificate", certificate), ("key", key)):
        if not value:
            raise section.error(name, "required when http.tls is used")
        if not os.path.isfile(value):
            raise section.error(name, f"no such file: {value}")
    for ca in client_cas:
        if not os.path.isfile(ca):
            raise section.error("clientcas", f"no such file: {ca}")
    return TLSConfig(
        certificate=certificate,
        key=key,
        client_cas=client_cas,
        minimum_tls=minimum,
        client_auth=client_auth,
        cipher_suites=suites,
    )


def openssl_ciphers(tls: TLSConfig) -> str:
    """The TLS 1.2 cipher list for OpenSSL; "" when none is configured."""
    return ":".join(CIPHER_SUITES[suite] for suite in tls.cipher_suites if CIPHER_SUITES[suite])
