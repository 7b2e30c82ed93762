"""The container image's health check: the registry answers on its port (any status below 500;
a registry with auth answers 401, and that is healthy).

The port follows ``REGISTRY_HTTP_ADDR`` when set, else 5000. ``WHARF_HEALTHCHECK_URL``
replaces the URL: ``https://127.0.0.1:5000/v2/`` under TLS (the certificate is not checked
here), or the debug listener's ``/debug/health``, which also checks the storage.
"""

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("REGISTRY_HTTP_ADDR", ":5000").rpartition(":")[2] or "5000"
    url = os.environ.get("WHARF_HEALTHCHECK_URL") or f"http://127.0.0.1:{port}/v2/"
    try:
        with urllib.request.urlopen(url, timeout=4, context=ssl._create_unverified_context()):
            return 0
    except urllib.error.HTTPError as error:
        return 0 if error.code < 500 else 1
    except OSError as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
