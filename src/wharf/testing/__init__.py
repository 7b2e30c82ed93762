"""Registries for tests: wharf in this process or as a real ``wharf serve`` process, each on a
free loopback port. The pytest fixtures built on them are in :mod:`wharf.testing.plugin`,
which pytest loads by itself wherever wharf is installed::

    def test_push(registry):
        registry.client.push_blob("team/app", b"bytes")
        assert registry.url.startswith("http://127.0.0.1:")

Outside pytest::

    from wharf.testing import serve_in_process

    with serve_in_process(auth=("user", "secret")) as registry:
        registry.client.ping()
"""

from wharf.testing._servers import RunningRegistry, serve_in_process, serve_process

__all__ = ["RunningRegistry", "serve_in_process", "serve_process"]
