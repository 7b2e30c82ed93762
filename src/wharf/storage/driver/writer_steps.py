"""The state bookkeeping that the remote stores' writers share.

A writer on S3, Azure or GCS sends its bytes in background uploads (parts, blocks) and moves
through ``open`` -> ``closed`` -> ``committed`` (or ``cancelled``). Any failure makes it
``failed``: it no longer knows what the store holds. A store's own errors are translated into
the driver contract's at this boundary; a background upload's failure is raised by the next
call that waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, ClassVar

from wharf.storage.driver.base import DriverError

__all__ = ["WriterSteps"]


class WriterSteps:
    """Mixed into a store's writer, which sets ``_state``, ``_path`` and ``_error``, and
    ``_slots`` (the uploads allowed in flight) and ``_tasks`` (those running)."""

    #: The store's own error types, translated at the driver boundary.
    store_error: ClassVar[type[BaseException] | tuple[type[BaseException], ...]]
    #: The store's translation of one of its errors met on a path.
    translate: ClassVar[Callable[[BaseException, str], DriverError]]
    #: What one background upload sends, for the message of its failure.
    upload_unit: ClassVar[str] = "part"

    _state: str
    _path: str
    _error: BaseException | None
    _slots: asyncio.Semaphore
    _tasks: set[asyncio.Task[None]]

    def _check(self, *states: str) -> None:
        if self._state not in states:
            raise DriverError(f"writer already {self._state}: {self._path}", path=self._path)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Any failure makes the writer final: it no longer knows what storage holds."""
        try:
            yield
        except self.store_error as exc:
            self._state = "failed"
            raise type(self).translate(exc, self._path) from exc
        except BaseException:
            self._state = "failed"
            raise

    def _raise_failure(self) -> None:
        error = self._error
        if error is None:
            return
        if isinstance(error, self.store_error):
            raise type(self).translate(error, self._path) from error
        message = f"{self.upload_unit} upload failed: {self._path}"
        raise DriverError(message, path=self._path) from error

    async def _take_slot(self) -> None:
        """Wait until fewer uploads are in flight than allowed; a background upload's
        failure is raised instead. The upload started next releases the slot."""
        await self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            self._raise_failure()

    def _in_background(self, upload: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(upload)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_uploads(self) -> None:
        """Until every background upload has ended, however it ended."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
