"""Progress of a collection: a bar redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["LineProgress", "Progress", "TerminalProgress", "progress_for"]


class Progress:
    """Phases with an optional total; this base reports nothing (for the server's schedule)."""

    def __init__(self) -> None:
        self.name = ""
        self.total: int | None = None
        self.count = 0

    def phase(self, name: str, total: int | None = None) -> None:
        self.name, self.total, self.count = name, total, 0
        self._show(force=True)

    def advance(self, count: int = 1) -> None:
        self.count += count
        self._show(force=False)

    def done(self) -> None:
        self._end()

    def _show(self, *, force: bool) -> None:
        pass

    def _end(self) -> None:
        pass


class TerminalProgress(Progress):
    WIDTH = 30
    #: Seconds between redraws: drawing costs more than the work of one item.
    INTERVAL = 0.1

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._drawn = 0.0

    def _show(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < self.INTERVAL:
            return
        self._drawn = now
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * self.count // self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            percent = 100 * self.count // self.total
            line = f"{self.name} [{bar}] {percent:3d}% {self.count}/{self.total}"
        else:
            line = f"{self.name}: {self.count}"
        self.stream.write(f"\r\x1b[K{line}")
        self.stream.flush()

    def _end(self) -> None:
        self._show(force=True)
        self.stream.write("\n")
        self.stream.flush()


class LineProgress(Progress):
    """A line when a phase starts, at every tenth of its total (or every ``step`` items when
    the total is unknown), and when it ends."""

    def __init__(self, stream: TextIO, step: int = 10_000) -> None:
        super().__init__()
        self.stream = stream
        self.step = step
        self._next = 0

    def phase(self, name: str, total: int | None = None) -> None:
        self._next = self._stride(total)
        super().phase(name, total)

    def _stride(self, total: int | None) -> int:
        return max(1, total // 10) if total else self.step

    def _show(self, *, force: bool) -> None:
        if force:
            suffix = f" ({self.total})" if self.total is not None else ""
            self._line(f"{self.name}{suffix}")
        elif self.count >= self._next:
            self._next = self.count + self._stride(self.total)
            if self.total:
                self._line(f"{self.name}: {self.count}/{self.total}")
            else:
                self._line(f"{self.name}: {self.count}")

    def _end(self) -> None:
        self._line(f"{self.name}: done, {self.count}")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def progress_for(stream: TextIO) -> Progress:
    return TerminalProgress(stream) if stream.isatty() else LineProgress(stream)
