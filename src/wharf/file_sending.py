"""Sending a stored file to a client from threads, by the method that costs this host least.

A worker is one process on one core: streaming a blob through the event loop copies every
byte through the interpreter's thread, so a worker that accepted more connections than its
neighbour (the kernel does not balance accepts between processes) is the limit of a
many-stream pull while the other core idles. The copy itself is system calls that release
the GIL, so here they run in a few threads of the worker: a worker's sends use every core,
whichever worker accepted them (measured on the Intel host of ``bench/FINDINGS.md`` §2: 4
streams from one process 0.55 GB/s through the loop, 1.3-1.6 GB/s from threads).

Two methods, and the host and the client decide: ``sendfile`` (the kernel hands page-cache
pages to the socket) and ``pread`` (1 MiB ``preadv`` into a reused buffer, then ``write``).
Which one delivers faster depends on the CPU, the kernel, the network path and the client:
on loopback a receiver of ``sendfile``'s pages copies them more slowly, so that it served the
benchmark's client at 1.2-1.6 GB/s against ``pread``'s 0.55-0.73, and skopeo's five layer
copies in 1.6-1.8 s against ``pread``'s 1.3-1.55 (``bench/FINDINGS.md`` §2). Sender CPU
alone would pick ``sendfile`` for both. So each worker measures, for each kind of client (the
product in its User-Agent), how long each method takes per byte until the client has it, on
its own first sends, then uses the faster one and tries the other again now and then.

A thread keeps sending while the socket takes bytes, waits a moment when it is full, and
then hands the wait to the event loop (a writer callback on a duplicate of the socket's
descriptor, which the transport does not own): a slow client holds no thread. The sends use
their own duplicate of the socket, so that a transport closed meanwhile cannot give the
descriptor's number to another file under a running thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import select
import statistics
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

__all__ = [
    "MIN_THREADED_SEND",
    "ZERO_COPY",
    "ClientGone",
    "Method",
    "MethodChooser",
    "SendStalled",
    "chooser",
    "client_kind",
    "send_file",
]

log = logging.getLogger(__name__)

#: The ASGI extension by which an app hands the server a file to send (the message carries
#: an OS file descriptor, an offset and a count); wharf's uvicorn protocol offers it.
ZERO_COPY = "http.response.zerocopysend"
#: Smaller bodies are streamed by the loop: the hop to a thread costs more than it saves.
MIN_THREADED_SEND = 512 << 10
#: Bytes a thread sends before it returns to the loop, so that a cancelled send ends soon.
_STEP = 32 << 20
#: How far ahead of a read that found the disk the kernel is asked to fetch.
_READ_AHEAD = 8 << 20
_BUFFER = 1 << 20
#: Milliseconds a thread waits for a full socket before handing the wait to the loop.
_WAIT_IN_THREAD_MS = 20
#: Seconds a client may take no bytes at all before its connection is given up.
STALL_LIMIT = 120.0
_THREADS = 8
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


class Method(enum.Enum):
    SENDFILE = "sendfile"
    PREAD = "pread"


class ClientGone(Exception):
    """The client closed the connection while its body was being sent."""


class SendStalled(Exception):
    """The client took no bytes for ``STALL_LIMIT`` seconds."""


class FileShrank(Exception):
    """The file ended before ``count`` bytes: it was replaced or cut while being sent."""


@dataclass(slots=True)
class _Step:
    sent: int = 0
    blocked: bool = False


class MethodChooser:
    """The send method for one kind of client: each measured ``TRIALS`` times, then the one
    whose recent sends took less time per byte (the median of the last ``KEEP``), the other
    again every ``RETRY_EVERY`` sends so that a change in the host or the traffic is seen.
    Sends that start together (a client's layers) are spread over the methods being tried,
    not all given the same one: ``pick`` counts the sends in flight until ``done``."""

    TRIALS = 3
    RETRY_EVERY = 50
    KEEP = 8

    def __init__(self, client: str = "") -> None:
        self.client = client
        self._lock = threading.Lock()
        self._recent: dict[Method, deque[float]] = {m: deque(maxlen=self.KEEP) for m in Method}
        self._cost: dict[Method, float] = {}
        self._samples = dict.fromkeys(Method, 0)
        self._in_flight = dict.fromkeys(Method, 0)
        self._picks = 0
        self._preferred: Method | None = None

    def pick(self) -> Method:
        with self._lock:
            method = self._choose()
            self._in_flight[method] += 1
            return method

    def _choose(self) -> Method:
        self._picks += 1
        unmeasured = [m for m in Method if self._samples[m] < self.TRIALS]
        if unmeasured:
            return min(unmeasured, key=lambda m: self._samples[m] + self._in_flight[m])
        best = min(Method, key=lambda m: self._cost[m])
        if self._picks % self.RETRY_EVERY == 0:
            return next(m for m in Method if m is not best)
        return best

    def done(self, method: Method) -> None:
        """A send ``pick`` chose ended, measured or not."""
        with self._lock:
            self._in_flight[method] = max(0, self._in_flight[method] - 1)

    def record(self, method: Method, sent: int, seconds: float) -> None:
        if sent < MIN_THREADED_SEND:
            return  # too little to weigh: the fixed costs would decide
        with self._lock:
            recent = self._recent[method]
            recent.append(seconds / sent)
            self._cost[method] = statistics.median(recent)
            self._samples[method] += 1
            if any(self._samples[m] < self.TRIALS for m in Method):
                return
            best = min(Method, key=lambda m: self._cost[m])
            if best is not self._preferred:
                self._preferred = best
                log.info(
                    "blob sends to %s use %s: %s",
                    self.client or "clients without a User-Agent",
                    best.value,
                    ", ".join(f"{m.value} {1e-6 / self._cost[m]:.0f} MB/s" for m in Method),
                )

    def costs(self) -> dict[Method, float]:
        """Seconds per byte measured so far, by method."""
        with self._lock:
            return dict(self._cost)

    @property
    def preferred(self) -> Method | None:
        return self._preferred


#: Kinds of clients measured apart; the least recently seen is forgotten past this.
_MAX_CLIENTS = 64
_choosers: OrderedDict[str, MethodChooser] = OrderedDict()
_pool: ThreadPoolExecutor | None = None
_buffers = threading.local()


class _Overlap:
    """How many sends run at once in this worker, integrated over time: a send that shared
    the worker with three others took four times as long for the same delivery rate, and is
    weighed so (sends of one worker run on its event loop, so no lock is needed)."""

    def __init__(self) -> None:
        self.active = 0
        self.area = 0.0  # sends x seconds
        self.stamp = time.monotonic()

    def now(self) -> tuple[float, float]:
        """The clock and the area so far."""
        now = time.monotonic()
        self.area += self.active * (now - self.stamp)
        self.stamp = now
        return now, self.area


_overlap = _Overlap()


def chooser(client: str) -> MethodChooser:
    """The chooser for clients of this kind (``client_kind`` of their User-Agent)."""
    found = _choosers.get(client)
    if found is None:
        found = _choosers[client] = MethodChooser(client)
        while len(_choosers) > _MAX_CLIENTS:
            _choosers.popitem(last=False)
    else:
        _choosers.move_to_end(client)
    return found


def client_kind(user_agent: bytes | None) -> str:
    """The product a User-Agent names first (``skopeo/1.9.3 ...`` -> ``skopeo``)."""
    if not user_agent:
        return ""
    product = user_agent.split(None, 1)[0].split(b"/", 1)[0][:40]
    return product.decode("latin-1").lower()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="wharf-send")
    return _pool


def _cached(fd: int, offset: int) -> bool:
    if not _NOWAIT:
        return True  # no way to tell: leave reading ahead to the kernel
    try:
        return os.preadv(fd, [bytearray(1)], offset, _NOWAIT) == 1
    except OSError:
        return False


def _buffer() -> memoryview:
    buffer: memoryview | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = memoryview(bytearray(_BUFFER))
    return buffer


def _write_some(sock: int, data: memoryview, poller: select.poll) -> int:
    """Bytes of ``data`` written before the socket stayed full for a moment."""
    written = 0
    while written < len(data):
        try:
            written += os.write(sock, data[written:])
        except BlockingIOError:
            if not poller.poll(_WAIT_IN_THREAD_MS):
                break
    return written


def _send_step(sock: int, fd: int, offset: int, count: int, method: Method, end: int) -> _Step:
    """In a thread: up to ``count`` bytes of ``fd`` from ``offset`` to ``sock``."""
    step = _Step()
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    ahead = 0
    while step.sent < count:
        position = offset + step.sent
        if position >= ahead - _READ_AHEAD // 2:
            window_end = min(position + _READ_AHEAD, end)
            if not _cached(fd, window_end - 1):
                os.posix_fadvise(fd, position, window_end - position, os.POSIX_FADV_WILLNEED)
            ahead = window_end
        want = count - step.sent
        try:
            if method is Method.SENDFILE:
                sent = os.sendfile(sock, fd, position, want)
            else:
                buffer = _buffer()
                read = os.preadv(fd, [buffer[: min(want, len(buffer))]], position)
                if read == 0:
                    raise FileShrank()
                sent = _write_some(sock, buffer[:read], poller)
                if sent < read:
                    step.sent += sent
                    step.blocked = True
                    return step
        except BlockingIOError:
            if poller.poll(_WAIT_IN_THREAD_MS):
                continue
            step.blocked = True
            return step
        except (BrokenPipeError, ConnectionResetError) as error:
            raise ClientGone() from error
        if sent == 0:
            raise FileShrank()
        step.sent += sent
    return step


async def _writable(sock: int, limit: float) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock, wake)
    try:
        await asyncio.wait_for(ready, limit)
    except TimeoutError:
        raise SendStalled() from None
    finally:
        loop.remove_writer(sock)


async def send_file(sock_fd: int, file_fd: int, offset: int, count: int, client: str = "") -> None:
    """``count`` bytes of ``file_fd`` from ``offset`` to the connected socket ``sock_fd``,
    which nothing else writes to meanwhile, for a client of kind ``client``. Raises
    ClientGone, SendStalled or OSError; the caller closes the connection then, since its
    body is cut."""
    loop = asyncio.get_running_loop()
    sock = os.dup(sock_fd)
    choosing = chooser(client)
    method = choosing.pick()
    sent = 0
    began, area_before = _overlap.now()
    _overlap.active += 1
    try:
        while sent < count:
            running = loop.run_in_executor(
                _executor(),
                _send_step,
                sock,
                file_fd,
                offset + sent,
                min(count - sent, _STEP),
                method,
                offset + count,
            )
            try:
                step = await asyncio.shield(running)
            except asyncio.CancelledError:
                # The thread still uses both descriptors: they close after it ends.
                with contextlib.suppress(Exception):
                    await running
                raise
            sent += step.sent
            if step.blocked:
                await _writable(sock, STALL_LIMIT)
    except FileShrank:
        raise OSError(f"file ended {count - sent} bytes early") from None
    else:
        # Written into the socket, not yet read: the client's buffers hold at most a few
        # megabytes, next to the hundreds a send is measured on.
        ended, area_after = _overlap.now()
        elapsed = ended - began
        sharing = (area_after - area_before) / elapsed if elapsed > 0 else 1.0
        choosing.record(method, sent, elapsed / max(sharing, 1.0))
    finally:
        choosing.done(method)
        _overlap.now()
        _overlap.active -= 1
        os.close(sock)
