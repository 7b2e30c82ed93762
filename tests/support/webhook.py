"""A notification endpoint for tests: a tiny HTTP server on a free loopback port that records
every envelope it is sent and answers from a script of statuses (then 200)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Delivery", "WebhookReceiver"]


@dataclass(frozen=True)
class Delivery:
    status: int
    headers: dict[str, str]
    events: list[dict[str, Any]]


class WebhookReceiver:
    def __init__(self, *statuses: int) -> None:
        self.script = list(statuses)
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.deliveries.append(
                        Delivery(status, dict(self.headers), json.loads(body)["events"])
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    def events(self) -> list[dict[str, Any]]:
        """Every event accepted (answered 2xx), in the order received."""
        with self._lock:
            return [
                event
                for delivery in self.deliveries
                if 200 <= delivery.status < 300
                for event in delivery.events
            ]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if len(events) >= count:
                return events
            time.sleep(0.02)
        raise AssertionError(f"{len(self.events())} events received, expected {count}")

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
