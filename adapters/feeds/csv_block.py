"""The columnar path of a price file: a batch of lines read and normalized as columns (pyarrow).

A file's batch of lines is parsed by Arrow's CSV reader into columns of text; each rule then
reads a whole column: numbers are checked against one pattern per column (a cell in it is
exactly the decimal its text says, so the text itself is the stored value), times, symbols and
names are decided once per distinct value by the domain's own readers (a daily file repeats each
date once per asset), checksums are taken of each row's canonical JSON built column by column.
No Python object is made per value.

It decides only what it can decide exactly as the row path would (`CsvFileSource._batches`,
`domain.csv_layout.read_bar`, `domain.bars.bar_record`): a batch with anything else in it
(a quoted cell, a backslash or control character, a row of another width, a missing or
non-plain number, a time or symbol the domain cannot read, a quote that is not USD, a record id
twice) is not a block, and the row path reads it. What the batch's own rules still need row by
row is in `raws()`, which are the row path's raw records of the same lines.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from application.ports import BarColumns, TextColumn
from domain.bars import QUOTE_VOLUME
from domain.csv_cells import DecimalMark, is_missing_cell
from domain.csv_layout import Layout
from domain.errors import InvalidValue
from domain.pairs import UsdQuotes, split_pair
from domain.plausibility import BarRanges
from domain.records import RawRecord, SourceType, is_symbol

# the fields a block reads; a layout mapping any other (trades, a second price column, names to
# symbols through the cross-reference, columns kept in `extra`) is read by the row path
_BLOCK_FIELDS = frozenset(
    {
        "observed_at", "symbol", "asset_name", "open", "high", "low", "close", "market_cap",
        "base_volume", "quote_volume", "usd_volume", "trades",
    }
)  # fmt: skip
_NUMBERS = ("open", "high", "low", "close", "market_cap", "base_volume", "quote_volume", "usd_volume")
# a decimal whose text is what `str(Decimal(text))` writes: no sign but `-`, no leading zero, no
# exponent, and not below a millionth (which Decimal writes with an exponent)
_EXACT = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"
_TINY = r"^-?0\.000000"
_ZERO = r"^-?0(\.0+)?$"
_WHOLE = r"^-?(0|[1-9][0-9]*)(\.0+)?$"  # a count of trades: a whole number, as `read_bar` keeps one
# bytes no block holds: a quote (the row path reads quoted cells), a backslash or control
# character (JSON and COPY would have to escape them), a carriage return not ending a line
_UNSAFE = re.compile(rb'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)')
_DECIMAL = pa.decimal128(38, 18)
# A signal is the process's: the scheduler stops on SIGTERM after the batch in flight, and Ctrl-C
# reaches Python between batches. Arrow would otherwise set its own SIGINT/SIGTERM handler for the
# length of each read and cancel it (`ArrowCancelled: received signal 15`), failing the source.
pa.enable_signal_handlers(False)
_EVIDENCE_BLOCK = 1 << 22  # bytes of a file a block of one column is read from


class BlockReader:
    """Reads batches of one file's lines as blocks, for one layout (None from `of`: a layout
    whose fields a block does not read)."""

    def __init__(
        self, layout: Layout, source: str, usd: UsdQuotes, max_record_bytes: int, raw_of: RawOf
    ) -> None:
        self._layout, self._source, self._usd = layout, source, usd
        self._limit, self._raw_of = max_record_bytes, raw_of
        self._names = list(layout.header)
        self._columns = {field: layout.fields[field] for field in layout.fields}
        # the canonical JSON of a row: its cells under their sorted column names
        self._keys = sorted(self._names)
        self._key_json = {name: json.dumps(name, ensure_ascii=False) for name in self._names}
        # each symbol cell's reading, remembered across the file's batches (a file of many
        # assets repeats them in every batch)
        self._pair_of = _pair_of(layout, usd)
        self._pairs: dict[str, tuple[str, str, str] | None] = {}

    def _pair(self, cell: str) -> tuple[str, str, str] | None:
        if cell not in self._pairs:
            self._pairs[cell] = self._pair_of(cell)
        return self._pairs[cell]

    @classmethod
    def of(
        cls, layout: Layout, source: str, usd: UsdQuotes, max_record_bytes: int, raw_of: RawOf
    ) -> BlockReader | None:
        fields = set(layout.fields)
        if (
            not fields <= _BLOCK_FIELDS
            or "close" not in fields
            or "observed_at" not in fields
            or layout.names is not None
            or (layout.symbol.value is None and "symbol" not in fields)
            or len(set(layout.header)) != len(layout.header)
            or layout.fields["observed_at"] != layout.time_column
            or any(mark is DecimalMark.COMMA for mark in layout.marks.values())
            or any(_UNSAFE.search(name.encode("utf-8")) for name in layout.header)
            or (layout.venue is not None and _UNSAFE.search(layout.venue.encode("utf-8")))
        ):
            return None
        return cls(layout, source, usd, max_record_bytes, raw_of)

    def block(
        self, lines: Sequence[bytes], start: int, run_id: int, fetched_at: datetime
    ) -> FileBlock | None:
        """`lines` (each with its line break) read as a block, or None: the row path reads them."""
        chunk = b"".join(lines)
        if (
            not lines
            or not chunk.endswith(b"\n")
            or _UNSAFE.search(chunk)
            or (self._layout.delimiter != "\t" and b"\t" in chunk)
            or max(map(len, lines)) > self._limit
        ):
            return None
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if "\ufffd" in text:
            return None  # the row path quarantines it as not valid UTF-8
        try:
            table = pa_csv.read_csv(
                io.BytesIO(chunk),
                read_options=pa_csv.ReadOptions(column_names=self._names),
                parse_options=pa_csv.ParseOptions(
                    delimiter=self._layout.delimiter, quote_char=False, ignore_empty_lines=False
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(self._names, pa.string()), strings_can_be_null=False
                ),
            )
        except (pa.ArrowInvalid, ValueError):
            return None  # a row of another width, an empty line
        if table.num_rows != len(lines):
            return None
        return self._decided(table.combine_chunks(), text, lines, start, run_id, fetched_at)

    def _decided(
        self,
        table: pa.Table,
        text: str,
        lines: Sequence[bytes],
        start: int,
        run_id: int,
        fetched_at: datetime,
    ) -> FileBlock | None:
        layout = self._layout
        column = self._columns
        count = table.num_rows
        # times, symbols and names: decided once per distinct value, by the domain's readers
        times = table.column(column["observed_at"])
        moments = _each_distinct(times, _moment_of(layout))
        if moments is None:
            return None
        if layout.symbol.value is not None:
            symbol = _symbol_of(layout, self._usd)(layout.symbol.value)
            if symbol is None:
                return None
            pairs = _same(symbol[0], count)
            id_symbols = _same(symbol[1], count)
            quotes = _same(symbol[2], count)
        else:
            decided = _each_distinct(table.column(column["symbol"]), self._pair)
            if decided is None:
                return None
            cells = table.column(column["symbol"])
            pairs = _mapped(cells, {cell: found[0] for cell, found in decided.items()})
            id_symbols = _mapped(cells, {cell: found[1] for cell, found in decided.items()})
            quotes = _mapped(cells, {cell: found[2] for cell, found in decided.items()})
        if "asset_name" in column:
            names_cells = table.column(column["asset_name"])
            names = _mapped(names_cells, {cell: cell.strip() or None for cell in _distinct(names_cells)})
        else:
            names = pa.nulls(count, pa.string())
        if layout.asset_name:
            names = pa.array([layout.asset_name] * count)
        numbers: dict[str, pa.Array] = {}
        for field in _NUMBERS:
            if field in column:
                found = _numbers(table.column(column[field]))
                if found is None:
                    return None
                numbers[field] = found
        trades = None
        if "trades" in column:
            trades = _trades(table.column(column["trades"]))
            if trades is None:
                return None
        close = numbers["close"]
        if close.null_count or pc.any(pc.starts_with(close, "-")).as_py():
            return None  # a missing or negative price: the row path quarantines the row, naming it
        when = _mapped(times, {cell: _id_moment(moment) for cell, moment in moments.items()})
        keys = pc.binary_join_element_wise(id_symbols, when, "@")
        if pc.count_distinct(keys).as_py() != count:
            return None  # one record twice in the batch: the row path keeps the later one
        observed = _mapped(times, {cell: moment.isoformat() for cell, moment in moments.items()})
        return FileBlock(
            reader=self,
            count=count,
            text=text,
            lines=lines,
            start=start,
            run_id=run_id,
            fetched_at=fetched_at,
            table=table,
            keys=keys,
            symbols=pairs,
            names=names,
            numbers=numbers,
            observed=observed,
            moments=moments,
            times=times,
            quotes=quotes,
            trades=trades,
        )

    def checksums(self, table: pa.Table) -> list[str]:
        """sha256 of each row's canonical JSON (`domain.checksum`), the JSON built by columns."""
        pieces: list[Any] = []
        for index, name in enumerate(self._keys):
            pieces.append(("{" if index == 0 else '",') + self._key_json[name] + ':"')
            pieces.append(table.column(name))
        pieces.append('"}')
        joined = pc.binary_join_element_wise(*pieces, "")
        return [hashlib.sha256(row).hexdigest() for row in pc.cast(joined, pa.binary()).to_pylist()]

    def raws(self, block: FileBlock) -> tuple[RawRecord, ...]:
        """The block's lines as the row path reads them."""
        return tuple(
            self._raw_of(next(csv.reader([line], delimiter=self._layout.delimiter)), line, offset, block)
            for line, offset in zip(block.texts(), block.offsets(), strict=True)
        )


RawOf = Callable[[list[str], str, int, "FileBlock"], RawRecord]


class FileBlock:
    """A batch of a file's lines read as columns (`application.ports.BarBlock`)."""

    def __init__(
        self,
        *,
        reader: BlockReader,
        count: int,
        text: str,
        lines: Sequence[bytes],
        start: int,
        run_id: int,
        fetched_at: datetime,
        table: pa.Table,
        keys: pa.Array,
        symbols: pa.Array,
        names: pa.Array,
        numbers: Mapping[str, pa.Array],
        observed: pa.Array,
        moments: Mapping[str, datetime],
        times: pa.Array,
        quotes: pa.Array,
        trades: pa.Array | None,
    ) -> None:
        self._reader = reader
        self.count, self.text, self.lines, self.start = count, text, lines, start
        self.run_id, self.fetched_at = run_id, fetched_at
        self._table, self._keys, self._symbols, self._names = table, keys, symbols, names
        self._numbers, self._observed, self._moments, self._times = numbers, observed, moments, times
        self._quotes = quotes
        self._trades = trades
        self._volume: tuple[pa.Array, pa.Array] | None = None

    def __len__(self) -> int:
        return self.count

    def keys(self) -> list[str]:
        return list(self._keys.to_pylist())

    def names(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}  # in the order symbols first appear, each with its last name
        for symbol, name in zip(self._symbols.to_pylist(), self._names.to_pylist(), strict=True):
            found[symbol] = name
        return found

    def ranges(self) -> BarRanges:
        moments = self._moments.values()
        largest: dict[str, Decimal] = {}
        smallest: dict[str, Decimal] = {}
        for name, values in self._usd_figures().items():
            found = _extremes(values)
            if found is not None:
                largest[name] = found[0]
                if found[1] is not None:
                    smallest[name] = found[1]
        return BarRanges(min(moments), max(moments), largest, smallest)

    def raws(self) -> tuple[RawRecord, ...]:
        return self._reader.raws(self)

    @property
    def bar_seconds(self) -> int | None:
        return self._reader._layout.interval_seconds

    def bars(self) -> list[tuple[str, datetime]]:
        moments = self._moments
        return list(
            zip(self._symbols.to_pylist(), map(moments.__getitem__, self._times.to_pylist()), strict=True)
        )

    def texts(self) -> list[str]:
        """Each line as read, without its line break (CR LF or LF)."""
        return [line.removesuffix("\r") for line in self.text.split("\n")[: self.count]]

    def offsets(self) -> list[int]:
        offsets, at = [], self.start
        for line in self.lines:
            offsets.append(at)
            at += len(line)
        return offsets

    def columns(self, asset_ids: Mapping[str, int]) -> BarColumns:
        count, numbers = self.count, self._numbers
        close = numbers["close"]
        volume, volume_from = self._usd_volume()
        extra = self._extra(volume_from)
        names = self._names
        symbols = self._symbols
        titles = pc.if_else(
            pc.is_null(names), symbols, pc.binary_join_element_wise(names, " (", symbols, ")", "")
        )
        market_cap = numbers.get("market_cap")
        if market_cap is not None:  # a market cap of 0 is a provider's "unknown"
            market_cap = pc.if_else(
                pc.match_substring_regex(market_cap, _ZERO), pa.scalar(None, pa.string()), market_cap
            )
        interval = self._reader._layout.interval_seconds
        none = pa.nulls(count, pa.string())
        records: dict[str, TextColumn] = {
            "source_type": _same(SourceType.CSV.value, count),
            "source": _same(self._reader._source, count),
            "source_record_id": self._keys,
            "kind": _same("market", count),
            "title": titles,
            "published_at": self._observed,
            "symbol": symbols,
            "asset_name": names,
            "price_usd": close,
            "market_cap_usd": market_cap if market_cap is not None else none,
            "volume_24h_usd": volume,
            "observed_at": self._observed,
            "extra": extra,
            "checksum": pa.array(self._reader.checksums(self._table), pa.string()),
            "asset_id": _mapped(symbols, {symbol: str(asset_ids[symbol]) for symbol in _distinct(symbols)}),
            "quote_currency": self._quotes,
            "price": close,
            "open_usd": numbers.get("open", none),
            "high_usd": numbers.get("high", none),
            "low_usd": numbers.get("low", none),
            "bar_seconds": _same(str(interval), count) if interval is not None else none,
        }
        return BarColumns(
            source=self._reader._source,
            count=count,
            records=records,
            lines=self.texts(),
            offsets=self.offsets(),
            fetched_at=self.fetched_at,
        )

    # ---- the rules of `domain.bars.bar_record`, by columns -----------------------------------

    def _usd_figures(self) -> dict[str, pa.Array]:
        numbers = self._numbers
        figures = {
            "price_usd": numbers["close"],
            **{f"{name}_usd": numbers[name] for name in ("open", "high", "low") if name in numbers},
        }
        if "market_cap" in numbers:
            figures["market_cap_usd"] = numbers["market_cap"]
        figures["volume_24h_usd"] = self._usd_volume()[0]
        return figures

    def _usd_volume(self) -> tuple[pa.Array, pa.Array]:
        """Each bar's volume in USD and where it came from (`domain.bars._usd_volume`, quotes
        being USD in a block): the USD volume column, else the quote volume, else the base
        volume × close (an exact product: the one figure computed a row at a time)."""
        if self._volume is not None:
            return self._volume
        numbers, count = self._numbers, self.count
        none = pa.nulls(count, pa.string())
        volume, origin = none, none
        base = numbers.get("base_volume")
        if base is not None:
            volume = pa.array(
                [
                    None if amount is None else str(Decimal(amount) * Decimal(close))
                    for amount, close in zip(base.to_pylist(), numbers["close"].to_pylist(), strict=True)
                ],
                pa.string(),
            )
            said = pc.binary_join_element_wise("base volume × close (", self._quotes, ")", "")
            origin = pc.if_else(pc.is_valid(base), said, none)
        for field, said_of in (("quote_volume", QUOTE_VOLUME), ("usd_volume", "usd volume column")):
            given = numbers.get(field)
            if given is not None:
                volume = pc.coalesce(given, volume)
                origin = pc.if_else(pc.is_valid(given), pa.scalar(said_of, pa.string()), origin)
        self._volume = (volume, origin)
        return self._volume

    def _extra(self, volume_from: pa.Array) -> pa.Array:
        """Each bar's `extra` as a JSON object: its open, high and low as written, its base
        volume, its quote volume when that is not the USD volume itself, where the USD volume
        came from unless it is the quote volume, the file's venue."""
        numbers, count = self._numbers, self.count
        no_text = pa.scalar(None, pa.string())
        members: list[tuple[str, pa.Array]] = []  # (the member's key, its JSON value or null)
        layout = self._reader._layout
        for name in layout.extra_columns:  # kept as written, when not empty
            cells = self._table.column(name)
            kept = pc.if_else(pc.equal(cells, ""), no_text, cells)
            members.append((name, _quoted(kept)))
        venue = layout.venue
        if venue is not None:
            members.append(("venue", pa.array([json.dumps(venue, ensure_ascii=False)] * count, pa.string())))
        for name in ("open", "high", "low", "base_volume"):
            if name in numbers:
                members.append((name, _quoted(numbers[name])))
        if "quote_volume" in numbers:
            kept = pc.if_else(pc.equal(volume_from, QUOTE_VOLUME), no_text, numbers["quote_volume"])
            members.append(("quote_volume", _quoted(kept)))
        if self._trades is not None:
            members.append(("trades", self._trades))
        # where the USD volume came from: our own words and a USD quote's symbol, nothing to escape
        said = pc.if_else(pc.equal(volume_from, QUOTE_VOLUME), no_text, volume_from)
        members.append(("volume_usd_from", _quoted(said)))
        # each member `"key":value,` or "" (no nulls: Arrow's join skipping nulls loses rows that
        # are null throughout), joined, the last comma taken off
        pieces = [
            pc.fill_null(pc.binary_join_element_wise(_key(key) + ":", values, ",", ""), "")
            for key, values in members
        ]
        body = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, "")
        return pc.binary_join_element_wise("{", pc.utf8_rtrim(body, characters=","), "}", "")


def distinct_cells(handle: IO[bytes], columns: int, index: int, delimiter: str) -> Iterator[list[str]]:
    """One column of a file's data rows (from the handle's position on), read by Arrow's CSV
    reader as the csv module reads them (quoted cells, a quoted line break, empty lines skipped),
    each block's distinct values at a time: a rule that only learns from values (the date order's
    evidence) judges each once. Raises `pyarrow.ArrowInvalid` where the reading could differ
    from the csv module's: a row of another width, bytes that are not UTF-8."""
    names = [f"c{position}" for position in range(columns)]
    reader = pa_csv.open_csv(
        handle,
        read_options=pa_csv.ReadOptions(column_names=names, block_size=_EVIDENCE_BLOCK),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            include_columns=[names[index]],
            column_types={names[index]: pa.string()},
            strings_can_be_null=False,
        ),
    )
    for batch in reader:
        yield pc.unique(batch.column(0)).to_pylist()


def _key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def _trades(cells: pa.ChunkedArray) -> pa.Array | None:
    """A count of trades as JSON numbers: a whole number's integer part, null for a missing
    cell or a fraction (as `read_bar` drops it); None when some cell is no plain number."""
    found = _numbers(cells)
    if found is None:
        return None
    whole = pc.fill_null(pc.match_substring_regex(found, _WHOLE), False)
    integer = pc.replace_substring_regex(found, r"\.0+$", "")
    return pc.if_else(whole, integer, pa.scalar(None, pa.string()))


def _quoted(values: pa.Array) -> pa.Array:
    """Text as JSON strings (the text holds no quote, backslash or control character)."""
    return pc.binary_join_element_wise('"', values, '"', "")


def _extremes(values: pa.Array) -> tuple[Decimal, Decimal | None] | None:
    """The largest value of a column of decimals and its smallest above zero, exactly (None:
    no value)."""
    if values.null_count == len(values):
        return None
    try:
        exact = pc.cast(values, _DECIMAL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # past 18 decimals or 20 digits
        numbers = [Decimal(value) for value in values.to_pylist() if value is not None]
        positive = [number for number in numbers if number > 0]
        return max(numbers), min(positive) if positive else None
    positive = pc.filter(exact, pc.greater(exact, pa.scalar(Decimal(0), _DECIMAL)))
    return pc.max(exact).as_py(), pc.min(positive).as_py() if len(positive) else None


def _same(value: str, count: int) -> pa.Array:
    return pa.array([value] * count, pa.string())


def _distinct(values: pa.Array | pa.ChunkedArray) -> list[str]:
    return list(pc.unique(values).to_pylist())


def _mapped(cells: pa.Array | pa.ChunkedArray, decided: Mapping[str, Any]) -> pa.Array:
    """Each cell's decided value: the distinct cells looked up, not each one."""
    distinct = pa.array(list(decided), pa.string())
    values = pa.array(list(decided.values()), pa.string())
    return _flat(pc.take(values, pc.index_in(_flat(cells), value_set=distinct)))


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _each_distinct(values: pa.Array | pa.ChunkedArray, decide: Callable[[str], Any]) -> dict[str, Any] | None:
    """`decide` of each distinct value; None when it decides None for any."""
    decided = {}
    for value in _distinct(values):
        found = decide(value)
        if found is None:
            return None
        decided[value] = found
    return decided


def _numbers(cells: pa.ChunkedArray) -> pa.Array | None:
    """The column's numbers as their text (None where the cell is missing), or None when some
    cell is not a decimal written as `Decimal` writes it."""
    cells = _flat(cells)
    exact = pc.and_(
        pc.match_substring_regex(cells, _EXACT), pc.invert(pc.match_substring_regex(cells, _TINY))
    )
    if pc.all(exact).as_py():
        return cells
    others = pc.filter(cells, pc.invert(exact))
    if not all(is_missing_cell(value) for value in _distinct(others)):
        return None
    return pc.if_else(exact, cells, pa.scalar(None, pa.string()))


def _moment_of(layout: Layout) -> Callable[[str], datetime | None]:
    def moment(cell: str) -> datetime | None:
        try:
            return layout.moments.read(cell)
        except InvalidValue:
            return None

    return moment


def _id_moment(moment: datetime) -> str:
    """The moment as a record id says it: a date alone at midnight (`BTC@2024-01-31`)."""
    return moment.date().isoformat() if moment.time() == moment.min.time() else moment.isoformat()


def _symbol_of(layout: Layout, usd: UsdQuotes) -> Callable[[str], tuple[str, str, str] | None]:
    """The file's own symbol: (symbol, the id's symbol, quote), None when its quote is not USD."""

    def decide(symbol: str) -> tuple[str, str, str] | None:
        quote = layout.quote.value
        upper = symbol.upper()
        if not quote or not usd.is_usd(quote.upper()) or not is_symbol(upper):
            return None
        return upper, upper, quote.upper()

    return decide


def _pair_of(layout: Layout, usd: UsdQuotes) -> Callable[[str], tuple[str, str, str] | None]:
    """A row's symbol cell as (symbol, the id's symbol, quote), as `read_bar` and the reader's
    record id read it; None when the row path would decide otherwise (no symbol, a quote that
    is not USD)."""

    def decide(cell: str) -> tuple[str, str, str] | None:
        if not cell.strip():
            return None
        pair = split_pair(cell)
        if pair is None:
            return None
        quote = pair.quote or layout.quote.value
        if not quote or not usd.is_usd(quote.upper()):
            return None
        id_symbol = pair.base
        if pair.quote and pair.quote != layout.quote.value:
            id_symbol = f"{pair.base}/{pair.quote}"
        upper = pair.base.upper()
        if not is_symbol(upper):
            return None
        return upper, id_symbol.upper(), quote.upper()

    return decide
