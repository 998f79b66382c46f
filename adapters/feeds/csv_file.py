"""A price file as a source: understood first (its layout), then read incrementally.

The layout is decided once per read from the file's first lines (`domain.csv_layout`); a file
that cannot be understood is refused whole (`FileRefused`) before any row is read. Rows are then
read from the byte offset of the checkpoint: appended rows only, a rewritten file in full. The
checkpoint holds the offset of the last complete line read and the sha256 of every byte before
it; an untouched file (same size and mtime) is skipped without being opened.

The same object normalizes what it read (it knows the layout), and `inspect` shows what a load
would do without writing anything.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import attrs
import pyarrow as pa

from adapters.feeds.csv_block import BlockReader, FileBlock, distinct_cells
from application.errors import FileRefused, SourceSkipped, SourceUnavailable
from application.ports import Batch
from domain.bars import FileInspection, bar_record
from domain.checkpoints import FileCursor
from domain.checksum import payload_checksum
from domain.cleaning import NUL, NUL_REASON, replace_nul
from domain.csv_cells import OrderEvidence
from domain.csv_layout import Layout, LayoutRefused, detect_layout, read_bar, settle_date_order
from domain.csv_options import FileOptions
from domain.errors import InvalidRecord, InvalidValue
from domain.pairs import UsdQuotes, split_pair
from domain.records import QuarantinedRecord, RawRecord, Source, SourceType, UnifiedRecord

_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"
_HEAD_BYTES = 256 << 10  # what the layout is decided from: the first 256 KiB (up to 2,000 rows)
_HEAD_LINES = 2100
_QUOTE_LINES = 100  # enough to tell a file's quote currency (its name, header, symbol column)
DEFAULT_MAX_RECORD_BYTES = 1 << 20
_KEPT_OF_OVERSIZED = 1024  # characters of each cell kept in the raw payload of an oversized row

# every field of any size is read (the csv module refuses fields over 128 KiB by default); rows
# over the record size limit are quarantined instead, whole files never fail on one cell
csv.field_size_limit(sys.maxsize)


def csv_source_name(path: Path) -> str:
    return f"csv:{path.stem}"


@attrs.frozen
class CsvContext:
    """What detection needs besides the file: the cross-reference and the USD quotes."""

    names_to_symbols: Mapping[str, str] = attrs.field(factory=dict)
    known_symbols: frozenset[str] = frozenset()
    usd: UsdQuotes = attrs.Factory(UsdQuotes)
    auto_map_confidence: float = 0.8
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES


class CsvFileSource:
    """One CSV price file as one source, `csv:<file stem>`: its reader and its normalizer."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], datetime],
        batch_size: int = 5000,
        options: FileOptions | None = None,
        context: CsvContext | None = None,
        full_refresh: bool = False,
        columnar: bool = True,
    ) -> None:
        self.path = path
        self.source = Source(name=csv_source_name(path), source_type=SourceType.CSV)
        self._clock = clock
        self._batch_size = batch_size
        self._options = options or FileOptions()
        self._context = context or CsvContext()
        self._full_refresh = full_refresh
        self.layout: Layout | None = None
        self._quoted_in_usd: bool | None = None
        # batches of clean bars read as columns (the columnar path); False: every row one by one
        self.columnar = columnar

    # ---- SourceReader -------------------------------------------------------------------------

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        try:
            stat = self.path.stat()
            handle = self.path.open("rb")
        except OSError as ex:
            raise SourceUnavailable(f"{self.source.name}: cannot open {self.path}: {ex.strerror}") from ex
        with handle:
            previous = None if self._full_refresh or not cursor else FileCursor.from_dict(cursor)
            if (
                previous
                and previous.complete
                and (previous.size, previous.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
            ):
                return
            if stat.st_size == 0 or not handle.read(_CHUNK).strip():
                return
            layout = self._understand(handle)
            self.layout = layout
            data_start = _data_start(handle, layout)
            start, hasher = _resume_point(handle, previous, stat.st_size)
            if start < data_start:
                handle.seek(0)
                hasher = hashlib.sha256(handle.read(data_start))
                start = data_start
            handle.seek(start)
            batches = self._blocks(handle, layout, start, hasher, stat.st_size, stat.st_mtime_ns, run_id)
            first = True
            for batch in batches:
                if first and layout.findings:
                    batch = attrs.evolve(batch, findings=layout.findings)
                first = False
                yield batch

    def quoted_in_usd(self) -> bool:
        """Whether the file's prices are quoted in USD terms (as its first lines tell): such a
        file needs no other file's history to be converted, so it can load beside others. A file
        that cannot be read or understood says yes: it is refused on its own anyway. Asked once
        per run (remembered), from the first `_QUOTE_LINES` lines: only the order of loading
        depends on it."""
        if self._quoted_in_usd is None:
            try:
                with self.path.open("rb") as handle:
                    quote = self._head_layout(handle, _QUOTE_LINES).quote.value
            except (OSError, LayoutRefused):
                quote = None
            self._quoted_in_usd = quote is None or self._context.usd.is_usd(quote)
        return self._quoted_in_usd

    def _understand(self, handle: IO[bytes]) -> Layout:
        """The file's layout, or the file refused whole with the reason."""
        try:
            layout = self._head_layout(handle)
            if layout.date_order_open:
                layout = settle_date_order(layout, self._date_evidence(handle, layout))
        except LayoutRefused as ex:
            raise FileRefused(f"{self.source.name}: {ex}") from ex
        return layout

    def _head_layout(self, handle: IO[bytes], max_lines: int = _HEAD_LINES) -> Layout:
        """The layout its first lines show (raises LayoutRefused)."""
        handle.seek(0)
        head = handle.read(_HEAD_BYTES)
        whole = len(head) < _HEAD_BYTES
        text = head.removeprefix(_BOM).decode("utf-8", "replace")
        lines = text.splitlines(keepends=True)
        if not whole and len(lines) > 1:
            lines = lines[:-1]  # the last line of the head may be cut
        return detect_layout(
            self.path.name,
            lines[:max_lines],
            self._options,
            self._context.names_to_symbols,
            self._context.known_symbols,
            self._context.auto_map_confidence,
            self._clock(),
        )

    def _date_evidence(self, handle: IO[bytes], layout: Layout) -> OrderEvidence:
        """The whole time column's say on its day/month order (its first rows left it open)."""
        start = _data_start(handle, layout)
        try:
            return column_date_evidence(handle, layout)
        except (pa.ArrowInvalid, ValueError):
            handle.seek(start)
            return row_date_evidence(handle, layout)

    def _blocks(
        self,
        handle: IO[bytes],
        layout: Layout,
        start: int,
        hasher: Any,
        size: int,
        mtime_ns: int,
        run_id: int,
    ) -> Iterator[Batch]:
        """The columnar path (`adapters.feeds.csv_block`): each batch of lines read as a block
        of columns; from the first batch that cannot be one, the row path reads the rest."""
        reader = (
            None
            if not self.columnar
            else BlockReader.of(
                layout, self.source.name, self._context.usd, self._context.max_record_bytes, self._raw_of
            )
        )
        if reader is None:
            yield from self._batches(handle, layout, start, hasher, size, mtime_ns, run_id)
            return
        fetched_at = self._clock()
        offset = start
        lines = list(itertools.islice(handle, self._batch_size))
        while lines:
            block = reader.block(lines, offset, run_id, fetched_at)
            if block is None:
                handle.seek(offset)
                yield from self._batches(handle, layout, offset, hasher, size, mtime_ns, run_id, fetched_at)
                return
            for line in lines:
                hasher.update(line)
            offset += sum(map(len, lines))
            lines = list(itertools.islice(handle, self._batch_size))  # read ahead: is this the last?
            cursor = self._file_cursor(offset, hasher, size, mtime_ns, complete=not lines)
            yield Batch((), cursor, position=(offset if lines else size, size), block=block)
        if offset == start:  # nothing to read after the checkpoint: the file is read to its end
            yield Batch((), self._file_cursor(offset, hasher, size, mtime_ns, True), position=(size, size))

    def _file_cursor(
        self, offset: int, hasher: Any, size: int, mtime_ns: int, complete: bool
    ) -> dict[str, Any]:
        """Read to `offset` (complete lines only), the bytes before it hashed by `hasher`."""
        return FileCursor(
            path=str(self.path),
            offset=offset,
            prefix_sha256=str(hasher.hexdigest()),
            size=size,
            mtime_ns=mtime_ns,
            complete=complete,
        ).to_dict()

    def _raw_of(self, cells: list[str], line: str, offset: int, block: FileBlock) -> RawRecord:
        """A block's row as the row path makes its raw record (a block holds no row with a
        problem: too long, too wide, not UTF-8, a NUL)."""
        layout = self.layout
        assert layout is not None, "a block is read under a layout"
        raw, _ = self._row(layout, cells, line, offset, block.fetched_at, block.run_id)
        return raw

    def _row(
        self, layout: Layout, cells: list[str], line: str, offset: int, fetched_at: datetime, run_id: int
    ) -> tuple[RawRecord, str | None]:
        """A row's raw record, and why it is quarantined as read (None: it is not)."""
        limit = self._context.max_record_bytes
        payload, problem = _payload(layout.header, cells, limit)
        raw = RawRecord.of(
            source=self.source.name,
            source_record_id=_record_id(payload, layout),
            payload=payload,
            fetched_at=fetched_at,
            run_id=run_id,
            # kept as read; an oversized row is kept as its payload of cut cells instead
            line=None if len(line) > limit else line.replace(NUL, "\ufffd"),
            position=offset,
        )
        return raw, problem

    def _batches(
        self,
        handle: IO[bytes],
        layout: Layout,
        start: int,
        hasher: Any,
        size: int,
        mtime_ns: int,
        run_id: int,
        fetched_at: datetime | None = None,
    ) -> Iterator[Batch]:
        position = _LinePosition(handle, start, hasher)
        fetched_at = fetched_at or self._clock()
        raws: list[RawRecord] = []
        rejected: list[QuarantinedRecord] = []
        for cells in csv.reader(position.lines(), delimiter=layout.delimiter):
            line, offset = position.take_row()
            if not cells or all(not cell.strip() for cell in cells):
                continue
            raw, problem = self._row(layout, cells, line, offset, fetched_at, run_id)
            if problem:
                rejected.append(QuarantinedRecord(raw=raw, reason=problem))
            else:
                raws.append(raw)
            if len(raws) + len(rejected) >= self._batch_size:
                yield Batch(
                    tuple(raws),
                    self._cursor(position, size, mtime_ns, False),
                    tuple(rejected),
                    position=(position.complete_offset, size),
                )
                raws, rejected = [], []
        # always a final batch, even an empty one: it marks the file read to its end
        yield Batch(
            tuple(raws), self._cursor(position, size, mtime_ns, True), tuple(rejected), position=(size, size)
        )

    def _cursor(self, position: _LinePosition, size: int, mtime_ns: int, complete: bool) -> dict[str, Any]:
        return self._file_cursor(position.complete_offset, position.hasher, size, mtime_ns, complete)

    # ---- Normalizer ---------------------------------------------------------------------------

    def understand(self) -> None:
        """The file's layout read now, under the current options, without reading its rows: what
        normalizing its quarantined rows again needs (`kaspero quarantine replay`)."""
        try:
            handle = self.path.open("rb")
        except OSError as ex:
            raise SourceUnavailable(
                f"{self.source.name}: cannot open {self.path} to read its quarantined rows again: {ex.strerror}"
            ) from ex
        with handle:
            self.layout = self._understand(handle)

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        layout = self.layout
        if layout is None:  # pragma: no cover - read() always runs first
            raise InvalidRecord("the file's layout is not known yet")
        bar = read_bar(layout, raw.payload)
        return bar_record(raw, bar, self._context.usd, price_field=layout.fields["close"])

    # ---- kaspero csv inspect ------------------------------------------------------------------

    def inspect(self, rows: int = 5) -> FileInspection:
        """The layout and the first `rows` rows as they would be stored; writes nothing."""
        try:
            batches = self.read(None, run_id=0)
            records: list[UnifiedRecord] = []
            quarantined: list[QuarantinedRecord] = []
            for batch in batches:
                for raw in batch.block.raws() if batch.block is not None else batch.raws:
                    if len(records) + len(quarantined) >= rows:
                        break
                    try:
                        records.append(self.normalize(raw))
                    except InvalidRecord as ex:
                        quarantined.append(QuarantinedRecord(raw, str(ex)))
                quarantined.extend(batch.rejected[: max(0, rows - len(records) - len(quarantined))])
                if len(records) + len(quarantined) >= rows:
                    break
        except SourceUnavailable as ex:
            return FileInspection(path=str(self.path), source=self.source.name, layout=None, refusal=str(ex))
        return FileInspection(
            path=str(self.path),
            source=self.source.name,
            layout=self.layout,
            refusal=None,
            records=tuple(records),
            quarantined=tuple(quarantined),
        )


def column_date_evidence(handle: IO[bytes], layout: Layout) -> OrderEvidence:
    """The time column's evidence of its date order from the handle's position on, read as a
    column by Arrow: each distinct value of a block judged once by the domain's rule, where
    `row_date_evidence` judges every row's (raises `pyarrow.ArrowInvalid` where Arrow cannot read
    the file as the csv module does: a ragged row, bytes that are not UTF-8)."""
    index = layout.header.index(layout.time_column)
    evidence = OrderEvidence()
    for values in distinct_cells(handle, len(layout.header), index, layout.delimiter):
        for value in values:
            evidence = evidence.seeing(value)
        if evidence.contradictory:
            break
    return evidence


def row_date_evidence(handle: IO[bytes], layout: Layout) -> OrderEvidence:
    """The same, row by row with the csv module (undecodable bytes replaced)."""
    index = layout.header.index(layout.time_column)
    evidence = OrderEvidence()
    lines = (line.decode("utf-8", "replace") for line in handle)
    for cells in csv.reader(lines, delimiter=layout.delimiter):
        if index < len(cells):
            evidence = evidence.seeing(cells[index])
            if evidence.contradictory:
                break
    return evidence


def _data_start(handle: IO[bytes], layout: Layout) -> int:
    """The byte offset of the first data row: after the banner lines and the header."""
    handle.seek(0)
    for _ in range(layout.skip_lines + (1 if layout.has_header else 0)):
        handle.readline()
    return handle.tell()


def _resume_point(handle: IO[bytes], previous: FileCursor | None, size: int) -> tuple[int, Any]:
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
        self._offset = start  # where the next line starts, terminated or not
        self._row: list[str] = []  # the lines of the row being read (a quoted cell may span lines)
        self._row_start = start

    @property
    def hasher(self) -> Any:
        """The hash of the bytes before `complete_offset`."""
        return self._hasher

    def lines(self) -> Iterator[str]:
        for line in self._handle:
            if not self._row:
                self._row_start = self._offset
            self._offset += len(line)
            if line.endswith(b"\n"):
                self._hasher.update(line)
                self.complete_offset += len(line)
            text = line.decode("utf-8", "replace")
            self._row.append(text)
            yield text

    def take_row(self) -> tuple[str, int]:
        """The text of the row the csv module just read (its last line break left out) and the
        byte offset in the file where it starts."""
        text = "".join(self._row)
        self._row.clear()
        return text.removesuffix("\n").removesuffix("\r"), self._row_start


def _payload(header: Sequence[str], cells: list[str], limit: int) -> tuple[dict[str, Any], str | None]:
    problem = None
    size = sum(map(len, cells))
    if size > limit:
        problem = (
            f"row is {size:,} characters, over the {limit:,} a record may hold (CSV_MAX_RECORD_BYTES); "
            f"kept with each cell cut to {_KEPT_OF_OVERSIZED:,} characters"
        )
        cells = [cell[:_KEPT_OF_OVERSIZED] for cell in cells]
    text = "".join(cells)
    if problem:
        pass
    elif len(cells) > len(header):
        problem = f"row has {len(cells)} cells but the header has {len(header)}"
    elif "\ufffd" in text:
        problem = "row is not valid UTF-8"
    elif NUL in text:
        problem = f"row {NUL_REASON}"
    if NUL in text:
        cells = [replace_nul(cell) for cell in cells]
    payload: dict[str, Any] = dict(zip(header, cells, strict=False))
    if len(cells) > len(header):
        payload["_extra_cells"] = cells[len(header) :]
    return payload, problem


def _record_id(payload: dict[str, Any], layout: Layout) -> str:
    """`BTC@2024-01-31` for a daily row: the same row re-read keeps its identity."""
    symbol = layout.symbol.value
    if symbol is None:
        pair = split_pair(str(payload.get(layout.fields.get("symbol", ""), "") or ""))
        symbol = pair.base if pair else None
        if pair and pair.quote and pair.quote != layout.quote.value:
            symbol = f"{pair.base}/{pair.quote}"
    try:
        moment = layout.moments.read(str(payload.get(layout.time_column) or ""))
    except InvalidValue:
        moment = None
    if symbol and moment:
        when = moment.date().isoformat() if moment.time() == moment.min.time() else moment.isoformat()
        return f"{symbol.upper()}@{when}"
    return "row:" + payload_checksum(payload)[:24]


class NoCsvFiles:
    """The CSV source when `CSV_SOURCE_PATH` matches no file: skipped, with a warning."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.source = Source(name="csv", source_type=SourceType.CSV)

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        raise SourceSkipped(f"csv: CSV_SOURCE_PATH {self.pattern!r} matches no file; nothing to load")

    def normalize(self, raw: RawRecord) -> UnifiedRecord:  # pragma: no cover - nothing is read
        raise InvalidRecord("no file")
