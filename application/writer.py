"""The overlapped writer: a source's batches written one at a time, in order, on a thread of their
own, while the next batch is prepared on the reading thread."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait


class BatchWriter:
    """Writes batches one at a time, in order, on a thread of its own.

    `submit` first waits for the batch before (re-raising its error), so one batch is written
    while the next is prepared, and never more. Leaving the block waits for the last one; an
    error on the way out (a reader failing, an injected failure) still lets the batch in
    flight finish first, exactly as if batches were written in line.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kaspero-writer")
        self._pending: Future[None] | None = None

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if exc is None:
                self.drain()
            elif self._pending is not None:
                # the error already on its way wins; a failed write is noted on it, not lost
                wait([self._pending])
                failed = self._pending.exception()
                if failed is not None:
                    exc.add_note(f"the batch being written when this happened failed too: {failed!r}")
        finally:
            self._pool.shutdown(wait=True)

    def submit(self, write: Callable[..., None], *args: object) -> None:
        self.drain()
        context = contextvars.copy_context()  # log context (run, source) follows the write
        self._pending = self._pool.submit(context.run, write, *args)

    def drain(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
