"""The state bookkeeping that the remote stores' writers share.

A writer on S3, Azure or GCS sends its bytes in background uploads (parts, blocks) and moves
through ``open`` -> ``closed`` -> ``committed`` (or ``cancelled``). Any failure makes it
``failed``: it no longer knows what the store holds. A store's own errors are translated into
the driver contract's at this boundary; a background upload's failure is raised by the next
call that waits for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ClassVar

from wharf.storage.driver.base import DriverError

__all__ = ["WriterSteps"]


class WriterSteps:
    """Mixed into a store's writer, which sets ``_state``, ``_path`` and ``_error``."""

    #: The store's own error types, translated at the driver boundary.
    store_error: ClassVar[type[BaseException] | tuple[type[BaseException], ...]]
    #: The store's translation of one of its errors met on a path.
    translate: ClassVar[Callable[[BaseException, str], DriverError]]
    #: What one background upload sends, for the message of its failure.
    upload_unit: ClassVar[str] = "part"

    _state: str
    _path: str
    _error: BaseException | None

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
