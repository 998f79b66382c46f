"""A signal that arrives while Arrow reads a CSV is the process's: the scheduler's SIGTERM handler
finishes the batch in flight (tests/e2e/test_schedulers.py), where Arrow's own temporary handler
would cancel the read (`ArrowCancelled: received signal 15`) and fail the source."""

from __future__ import annotations

import io
import os
import signal
from typing import Any

import pyarrow.csv as pa_csv

from adapters.feeds.csv_block import distinct_cells


class SignalsOnRead(io.BytesIO):
    """A file that sends this process SIGTERM the first time it is read from."""

    sent = False

    def read(self, *args: Any) -> bytes:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return super().read(*args)


def test_sigterm_during_a_columnar_read_reaches_the_processs_handler_and_the_read_completes() -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda number, _frame: received.append(number))
    try:
        content = b"".join(f"2024-01-{day % 28 + 1:02d},{day}\n".encode() for day in range(20_000))
        values = [value for block in distinct_cells(SignalsOnRead(content), 2, 0, ",") for value in block]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sorted(set(values)) == [f"2024-01-{day:02d}" for day in range(1, 29)]
    assert received == [signal.SIGTERM]


def test_sigterm_during_a_whole_block_read_reaches_the_processs_handler() -> None:
    """The block path reads a batch with `read_csv`, which by default sets Arrow's handler for the
    read: the adapter turns that off for the process."""
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda number, _frame: received.append(number))
    try:
        content = b"date,close\n" + b"".join(
            f"2024-01-{day % 28 + 1:02d},{day}\n".encode() for day in range(20_000)
        )
        table = pa_csv.read_csv(SignalsOnRead(content))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert table.num_rows == 20_000
    assert received == [signal.SIGTERM]
