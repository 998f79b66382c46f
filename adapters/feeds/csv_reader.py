"""Reads a CSV export incrementally: appended rows only, a rewritten file in full.

The checkpoint holds the byte offset of the last complete line read and the sha256 of every
byte before it. On the next run an untouched file (same size and mtime) is skipped without
being opened; otherwise the prefix is hashed again: if it matches, reading resumes at the
offset; if it does not (rewritten) or the file is shorter (truncated), it is read from the top.
Re-reading is safe because records are keyed by content (symbol and date), not by line.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from adapters.feeds.csv_columns import map_header, unique_header
from application.errors import SourceUnavailable
from application.ports import Batch
from domain.checkpoints import FileCursor
from domain.checksum import payload_checksum
from domain.cleaning import NUL, NUL_REASON, clean_text, parse_timestamp, replace_nul
from domain.errors import InvalidValue
from domain.records import QuarantinedRecord, RawRecord, Source, SourceType

_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"


def csv_source_name(path: Path) -> str:
    return f"csv:{path.stem}"


class CsvFileReader:
    """One CSV file as one source, `csv:<file stem>`."""

    def __init__(self, path: Path, clock: Callable[[], datetime], batch_size: int = 5000) -> None:
        self.path = path
        self.source = Source(name=csv_source_name(path), source_type=SourceType.CSV)
        self._clock = clock
        self._batch_size = batch_size

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        try:
            stat = self.path.stat()
            handle = self.path.open("rb")
        except OSError as ex:
            raise SourceUnavailable(f"{self.source.name}: cannot open {self.path}: {ex.strerror}") from ex
        with handle:
            previous = FileCursor.from_dict(cursor) if cursor else None
            if (
                previous
                and previous.complete
                and (previous.size, previous.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
            ):
                return
            header_line = handle.readline()
            if not header_line.strip():
                return
            start, hasher = self._resume_point(handle, previous, stat.st_size)
            if start == 0:
                hasher = hashlib.sha256(header_line)
                start = len(header_line)
            handle.seek(start)
            header = unique_header(
                [
                    replace_nul(name)
                    for name in next(csv.reader([header_line.removeprefix(_BOM).decode("utf-8", "replace")]))
                ]
            )
            yield from self._batches(handle, header, start, hasher, stat.st_size, stat.st_mtime_ns, run_id)

    def _resume_point(self, handle: IO[bytes], previous: FileCursor | None, size: int) -> tuple[int, Any]:
        """The offset to resume at and the hash of the bytes before it; 0 to start over."""
        if previous is None or previous.offset > size:
            return 0, hashlib.sha256()
        handle.seek(0)
        hasher = hashlib.sha256()
        remaining = previous.offset
        while remaining:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                return 0, hashlib.sha256()
            hasher.update(chunk)
            remaining -= len(chunk)
        if hasher.hexdigest() != previous.prefix_sha256:
            return 0, hashlib.sha256()
        return previous.offset, hasher

    def _batches(
        self,
        handle: IO[bytes],
        header: list[str],
        start: int,
        hasher: Any,
        size: int,
        mtime_ns: int,
        run_id: int,
    ) -> Iterator[Batch]:
        position = _LinePosition(handle, start, hasher)
        columns = map_header(header)
        fetched_at = self._clock()
        raws: list[RawRecord] = []
        rejected: list[QuarantinedRecord] = []
        for cells in csv.reader(position.lines()):
            if not cells or all(not cell.strip() for cell in cells):
                continue
            payload, problem = _payload(header, cells)
            raw = RawRecord.of(
                source=self.source.name,
                source_record_id=_record_id(payload, columns),
                payload=payload,
                fetched_at=fetched_at,
                run_id=run_id,
            )
            if problem:
                rejected.append(QuarantinedRecord(raw=raw, reason=problem))
            else:
                raws.append(raw)
            if len(raws) + len(rejected) >= self._batch_size:
                yield Batch(tuple(raws), self._cursor(position, size, mtime_ns, False), tuple(rejected))
                raws, rejected = [], []
        # always a final batch, even an empty one: it marks the file read to its end
        yield Batch(tuple(raws), self._cursor(position, size, mtime_ns, True), tuple(rejected))

    def _cursor(self, position: _LinePosition, size: int, mtime_ns: int, complete: bool) -> dict[str, Any]:
        return FileCursor(
            path=str(self.path),
            offset=position.complete_offset,
            prefix_sha256=position.complete_sha256,
            size=size,
            mtime_ns=mtime_ns,
            complete=complete,
        ).to_dict()


class _LinePosition:
    """Feeds decoded lines to the csv module while tracking how many bytes were consumed.

    Only newline-terminated lines advance the checkpoint: an unterminated last line (a writer
    still appending, or a file without a final newline) is loaded but read again next run,
    which the content-keyed upsert makes harmless.
    """

    def __init__(self, handle: IO[bytes], start: int, hasher: Any) -> None:
        self._handle = handle
        self.complete_offset = start
        self._hasher = hasher

    @property
    def complete_sha256(self) -> str:
        return str(self._hasher.hexdigest())

    def lines(self) -> Iterator[str]:
        for line in self._handle:
            if line.endswith(b"\n"):
                self._hasher.update(line)
                self.complete_offset += len(line)
            yield line.decode("utf-8", "replace")


def _payload(header: list[str], cells: list[str]) -> tuple[dict[str, Any], str | None]:
    problem = None
    text = "".join(cells)
    if len(cells) > len(header):
        problem = f"row has {len(cells)} cells but the header has {len(header)}"
    elif "\ufffd" in text:
        problem = "row is not valid UTF-8"
    elif NUL in text:
        problem = f"row {NUL_REASON}"
        cells = [replace_nul(cell) for cell in cells]
    payload: dict[str, Any] = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        payload["_extra_cells"] = cells[len(header) :]
    return payload, problem


def _record_id(payload: dict[str, Any], columns: dict[str, str]) -> str:
    """`BTC@2024-01-31` for a daily row: the same row re-read keeps its identity."""
    symbol = clean_text(payload.get(columns.get("symbol", "")))
    try:
        moment = parse_timestamp(payload.get(columns.get("observed_at", "")))
    except InvalidValue:
        moment = None
    if symbol and moment:
        when = moment.date().isoformat() if moment.time() == moment.min.time() else moment.isoformat()
        return f"{symbol.upper()}@{when}"
    return "row:" + payload_checksum(payload)[:24]
