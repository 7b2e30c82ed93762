"""The launcher's side of the debug listener: bind ``http.debug.addr``, start the debug
server process with the socket, stop it when the server stops.

The socket is bound here, so that an address in use is reported at start like the main
listener's, and closed here before the HTTP server forks its workers, so that they do not
hold it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator

from wharf.config.operations import DebugConfig
from wharf.worker_environment import DEBUG_FD_ENV

__all__ = ["bind_debug", "debug_process", "metrics_directory"]

#: The listening socket's descriptor, as the debug server process inherits it.

_STOP_SECONDS = 5.0


def bind_debug(debug: DebugConfig) -> socket.socket:
    """The listening socket; OSError when the address cannot be had."""
    host, _, port = debug.addr.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, int(port), family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    return socket.create_server(infos[0][4][:2], family=infos[0][0], backlog=64)


@contextlib.contextmanager
def metrics_directory() -> Iterator[str]:
    """Where the workers write their metric snapshots (in memory when /dev/shm exists)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="wharf-metrics-", dir=base) as directory:
        yield directory


@contextlib.contextmanager
def debug_process(
    sock: socket.socket, environ: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run the debug server on ``sock`` (closed here once handed over) until the block ends."""
    fd = sock.fileno()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "wharf.observability.debug_server"],
            env={**environ, DEBUG_FD_ENV: str(fd)},
            pass_fds=(fd,),
        )
    finally:
        sock.close()
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
