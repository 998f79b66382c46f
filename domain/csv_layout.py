"""A price file is understood before it is read: one decision per file, from its own content.

`detect_layout` looks at the first lines of a file (and its name, and the per-file options) and
decides its delimiter, the banner lines before its header, whether it has a header at all (or
is one of the known headerless layouts), which column carries which field, each date column's
form and day/month order, each number column's decimal mark, the symbol and quote currency and
where each came from, and the bar interval. Loading and `kaspero csv inspect` both use it, so
what inspect shows is what a load does. A file it cannot understand is refused whole with one
reason (`LayoutRefused`) that says what is missing and how to supply it.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from domain.csv_cells import (
    DecimalMark,
    MomentForm,
    MomentReader,
    OrderEvidence,
    decide_mark,
    is_missing_cell,
    marks_allowed,
    moment_form,
    order_evidence,
    read_number,
)
from domain.csv_naming import (
    ALIASES,
    BY_ALIAS,
    CURRENCIES,
    TIME_COLUMNS,
    FromName,
    all_numeric,
    header_key,
    one_base,
    option_quote,
    pair_from_file_name,
    quote_from_columns,
    unique_header,
    volume_terms,
)
from domain.csv_options import FileOptions, Origin
from domain.drift import DriftFinding, DriftKind, name_similarity
from domain.errors import DomainError, InvalidRecord, InvalidValue
from domain.pairs import Pair, split_pair

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_ROWS = 2000  # data rows a layout is decided from (a date order still open is settled by the rest)

# Binance's kline files (spot and futures); spot files carry no header, and since 2025 their
# times are in microseconds
BINANCE_KLINE = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
# Kraken's OHLCVT downloads (`XBTUSD_1440.csv`): Unix seconds, base volume, trade count
KRAKEN_OHLCVT = ("time", "open", "high", "low", "close", "volume", "trades")
HEADERLESS_LAYOUTS: Mapping[int, tuple[str, tuple[str, ...]]] = {
    12: ("binance-kline", BINANCE_KLINE),
    7: ("kraken-ohlcvt", KRAKEN_OHLCVT),
}

INTERVALS = {
    "1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800,
}  # fmt: skip


class LayoutRefused(DomainError):
    """The file cannot be understood; the message says what is missing and how to supply it."""


@attrs.frozen
class Layout:
    """How to read one file. Columns are named as the file names them (or as the known
    headerless layout does); `fields` maps unified fields to them."""

    delimiter: str
    skip_lines: int
    header: tuple[str, ...]
    has_header: bool
    headerless_layout: str | None
    fields: Mapping[str, str]
    time_column: str
    moments: MomentReader
    marks: Mapping[str, DecimalMark | None]
    symbol: Origin  # value None: the symbol is in each row (`fields["symbol"]`)
    quote: Origin
    asset_name: str | None
    volume_terms: Mapping[str, str]  # column -> "base" | "quote" | "usd"
    interval: Origin
    date_order_open: bool = False  # the sample left the day/month order undecided
    findings: tuple[DriftFinding, ...] = ()  # a price column found by its name's likeness, not an alias
    extra_columns: tuple[str, ...] = ()
    time_evidence: str = ""
    venue: str | None = None  # an exchange or vendor the file name names: kept, never the coin
    # each row's symbol from its asset name, through these names (a file of several coins by name)
    names: Mapping[str, str] | None = None
    volume_evidence: Mapping[str, str] = attrs.field(factory=dict)  # column -> why its unit is what it is

    @property
    def interval_seconds(self) -> int | None:
        return INTERVALS.get(self.interval.value or "")

    def describe(self) -> dict[str, Any]:
        """The layout as `kaspero csv inspect` prints it."""
        return {
            "delimiter": {"\t": "tab"}.get(self.delimiter, self.delimiter),
            "lines_skipped": self.skip_lines,
            "header": "from the file" if self.has_header else f"none: read as {self.headerless_layout}",
            "columns": {column: self._role(column) for column in self.header},
            "time": {
                "column": self.time_column,
                "form": self.moments.form.value,
                "order": self.moments.describe_order(),
                "timezone": str(self.moments.zone),
            },
            "decimal_mark": {column: mark.value if mark else None for column, mark in self.marks.items()},
            "symbol": {"value": self.symbol.value, "from": self.symbol.source},
            "quote": {"value": self.quote.value, "from": self.quote.source},
            "interval": {"value": self.interval.value, "from": self.interval.source},
            "decisions": self.decisions(),
        }

    def decisions(self) -> list[dict[str, Any]]:
        """Every inference about the file with what it rests on, as inspect shows them."""
        made: list[dict[str, Any]] = [
            {"decision": "time column", "value": self.time_column, "evidence": self.time_evidence},
            {
                "decision": "time form",
                "value": self.moments.form.value,
                "evidence": f"the values of {self.time_column!r}",
            },
            {"decision": "symbol", "value": self.symbol.value or "per row", "evidence": self.symbol.source},
            {"decision": "quote currency", "value": self.quote.value, "evidence": self.quote.source},
            {"decision": "bar interval", "value": self.interval.value, "evidence": self.interval.source},
        ]
        if self.venue:
            made.append(
                {
                    "decision": "venue",
                    "value": self.venue,
                    "evidence": "an exchange or vendor in the file name, never the coin",
                }
            )
        if "usd_close" in self.fields:
            made.append(
                {
                    "decision": "USD price",
                    "value": self.fields["usd_close"],
                    "evidence": "a column naming USD beside the quoted price",
                }
            )
        for column, terms in self.volume_terms.items():
            made.append(
                {"decision": f"unit of {column!r}", "value": f"{terms} currency" if terms != "usd" else "USD",
                 "evidence": self.volume_evidence.get(column, f"its name ({column!r})")}
            )  # fmt: skip
        return made

    def _role(self, column: str) -> str:
        for field, mapped in self.fields.items():
            if mapped == column:
                terms = self.volume_terms.get(column)
                return f"{field} ({terms} currency)" if terms in ("base", "quote") else field
        return "extra" if column in self.extra_columns else "ignored"


@attrs.frozen
class Bar:
    """One row of a price file, read: a price of `symbol` in `quote` at `observed_at`."""

    symbol: str
    quote: str | None
    observed_at: datetime
    close: Decimal
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    base_volume: Decimal | None = None
    quote_volume: Decimal | None = None
    usd_volume: Decimal | None = None
    market_cap: Decimal | None = None
    usd_close: Decimal | None = None  # the file's own USD price beside a price in another currency
    trades: int | None = None
    asset_name: str | None = None
    interval_seconds: int | None = None
    extra: Mapping[str, str] = attrs.field(factory=dict)


def detect_layout(
    file_name: str,
    lines: Sequence[str],
    options: FileOptions | None = None,
    names_to_symbols: Mapping[str, str] | None = None,
    known_symbols: frozenset[str] = frozenset(),
    auto_map_confidence: float = 0.8,
    now: datetime | None = None,
) -> Layout:
    """Decide how to read a file from its first `lines` (decoded, BOM removed), its name, the
    per-file options and the cross-reference of asset names; raise `LayoutRefused` if it cannot."""
    options = options or FileOptions()
    delimiter, start, rows = _table(lines, options)
    first = rows[0]
    width = len(first)
    if _looks_like_data(first):
        known = HEADERLESS_LAYOUTS.get(width)
        if known is None:
            raise LayoutRefused(
                f"no header: the first row holds numbers and dates, and its {width} columns match no "
                "known headerless layout (Binance klines: 12, Kraken OHLCVT: 7); add a header line naming the columns"
            )
        headerless: str | None = known[0]
        header = list(known[1])
        data = rows
    else:
        headerless = None
        header = unique_header(first)
        data = rows[1:]
    data = [row for row in data if any(cell.strip() for cell in row)][:SAMPLE_ROWS]
    columns = {name: [row[i] if i < len(row) else "" for row in data] for i, name in enumerate(header)}
    fields, time_column, time_evidence = _map_fields(header, columns, options, headerless)
    time_reader, order_open = _time_reader(time_column, columns[time_column], options)
    _check_unix_range(time_column, time_reader, columns[time_column], now or datetime.now(UTC))

    from_name = pair_from_file_name(file_name, names_to_symbols or {}, known_symbols)
    symbol, quote, asset_name, by_name = _symbol_and_quote(
        file_name, header, fields, columns, options, from_name, known_symbols
    )
    fields, quote = _price_currencies(header, fields, quote, options)
    base = symbol.value or one_base(columns.get(fields.get("symbol", ""), []), known_symbols)
    terms_of = volume_terms(header, fields, base, quote, headerless)
    volume_evidence = _plain_volume(header, fields, columns, terms_of, options)
    fields = {field: column for field, column in fields.items() if field != "volume"}
    for column, terms in terms_of.items():
        fields.setdefault(f"{terms}_volume", column)
    findings: tuple[DriftFinding, ...] = ()
    if "close" not in fields:
        fields, findings = _renamed_price(header, fields, columns, auto_map_confidence)
    number_columns = [
        fields[f] for f in ("open", "high", "low", "close", "market_cap", "usd_close") if f in fields
    ]
    number_columns += list(terms_of)
    marks = _marks(number_columns, columns, options)
    interval = _interval(options, time_reader, columns[time_column])
    mapped = set(fields.values())
    extra = tuple(c for c in header if c not in mapped and header_key(c) not in ("ignore", "unnamed_0"))
    return Layout(
        delimiter=delimiter,
        skip_lines=start,
        header=tuple(header),
        has_header=headerless is None,
        headerless_layout=headerless,
        fields=fields,
        time_column=time_column,
        moments=time_reader,
        marks=marks,
        symbol=symbol,
        quote=quote,
        asset_name=asset_name,
        volume_terms=terms_of,
        findings=findings,
        interval=interval,
        date_order_open=order_open,
        extra_columns=extra,
        time_evidence=time_evidence,
        venue=from_name.venue if from_name else None,
        names=dict(names_to_symbols or {}) if by_name else None,
        volume_evidence=volume_evidence,
    )


def settle_date_order(layout: Layout, evidence: OrderEvidence) -> Layout:
    """The layout with the day/month order the rest of its date column settled, or the refusal."""
    if evidence.contradictory:
        raise LayoutRefused(
            f"the dates in {layout.time_column!r} are neither all day-first nor all month-first; "
            "fix the file, or set date_order and let the rows that disagree be quarantined"
        )
    if evidence.open:
        raise LayoutRefused(
            f"the dates in {layout.time_column!r} (numbers like 01/02/2024) never show a day above 12, "
            'so day and month cannot be told apart; set date_order = "dmy" or "mdy" for this file '
            "in csv_options.toml"
        )
    return attrs.evolve(
        layout, moments=attrs.evolve(layout.moments, orders=evidence.orders), date_order_open=False
    )


def read_bar(layout: Layout, row: Mapping[str, str]) -> Bar:
    """One row as a bar, or `InvalidRecord` naming each field that cannot be read."""
    fields = layout.fields
    problems: list[str] = []

    def cell(field: str) -> str:
        column = fields.get(field)
        return (row.get(column) or "") if column else ""

    marks = layout.marks

    def number(field: str) -> Decimal | None:
        column = fields.get(field)
        if column is None:
            return None
        try:
            return read_number(row.get(column) or "", marks.get(column))
        except InvalidValue as ex:
            problems.append(f"{column}: {ex}")
            return None

    observed_at = None
    try:
        observed_at = layout.moments.read(cell("observed_at"))
        if observed_at is None:
            problems.append(f"{layout.time_column}: required value is missing")
    except InvalidValue as ex:
        problems.append(f"{layout.time_column}: {ex}")
    symbol, quote = layout.symbol.value, layout.quote.value
    if symbol is None and layout.names is not None:
        written = cell("asset_name").strip()
        symbol = layout.names.get(written.lower()) or layout.names.get(written.lower().replace(" ", "-"))
        if symbol is None:
            problems.append(
                f"{fields['asset_name']}: {written!r} is no asset the cross-reference knows "
                "(add it to data/reference/asset_crossref.csv)"
                if written
                else f"{fields['asset_name']}: required value is missing"
            )
    elif symbol is None:
        pair = split_pair(cell("symbol")) if cell("symbol").strip() else None
        if pair is None:
            text = cell("symbol").strip()
            problems.append(
                f"{fields['symbol']}: " + (f"not a symbol: {text!r}" if text else "required value is missing")
            )
        else:
            symbol, quote = pair.base, pair.quote or quote
    close = number("close")
    if close is None and not any(p.startswith(f"{fields['close']}:") for p in problems):
        problems.append(f"{fields['close']}: required value is missing")
    if close is not None and close < 0:
        problems.append(f"{fields['close']}: a price cannot be negative ({close})")
    values = {field: number(field) for field in ("open", "high", "low", "market_cap", "usd_close")}
    volumes = {terms: number(f"{terms}_volume") for terms in ("base", "quote", "usd")}
    trades = None
    if "trades" in fields:
        try:
            count = number("trades")
            trades = int(count) if count is not None and count == count.to_integral_value() else None
        except (ValueError, ArithmeticError):  # pragma: no cover - a Decimal always converts
            trades = None
    if problems or observed_at is None or close is None or symbol is None:
        raise InvalidRecord("; ".join(problems))
    name = layout.asset_name or (cell("asset_name").strip() or None if "asset_name" in fields else None)
    mapped = set(fields.values())
    extra = {
        column: value
        for column, value in row.items()
        if column not in mapped and column in layout.extra_columns and value not in ("", None)
    }
    if layout.venue:
        extra["venue"] = layout.venue
    return Bar(
        symbol=symbol.upper(),
        quote=quote.upper() if quote else None,
        observed_at=observed_at,
        close=close,
        open=values["open"],
        high=values["high"],
        low=values["low"],
        base_volume=volumes["base"],
        quote_volume=volumes["quote"],
        usd_volume=volumes["usd"],
        market_cap=values["market_cap"],
        usd_close=values["usd_close"],
        trades=trades,
        asset_name=name,
        interval_seconds=layout.interval_seconds,
        extra=extra,
    )


# ---- the decisions ---------------------------------------------------------------------------


def _table(lines: Sequence[str], options: FileOptions) -> tuple[str, int, list[list[str]]]:
    """The delimiter, the number of lines before the table, and the table's rows (sample).

    Each delimiter splits the lines; the one whose table is the most regular and whose cells
    read best (numbers, dates, words; not `5;2`) wins, wider tables breaking ties."""
    texts = [line.rstrip("\r\n") for line in lines]
    skip = options.skip_lines or 0
    candidates = [options.delimiter] if options.delimiter else list(DELIMITERS)
    best: tuple[tuple[float, int, int], str, int, list[list[str]]] | None = None
    for order, delimiter in enumerate(candidates):
        rows = [next(csv.reader([text], delimiter=delimiter), []) for text in texts[skip:]]
        start, width = _table_start(rows, fixed=options.skip_lines is not None)
        table = [row for row in rows[start:] if any(cell.strip() for cell in row)]
        if width < 2 or not table:
            continue
        regular = sum(1 for row in table if len(row) == width) / len(table)
        rank = (regular + _plausibility(table[1:] or table, delimiter), width, -order)
        if best is None or rank > best[0]:
            best = (rank, delimiter, skip + start, table)
    if best is None:
        shown = texts[skip] if len(texts) > skip else ""
        raise LayoutRefused(
            "not a table: no delimiter (, ; tab |) splits its lines into two or more columns "
            f"(first line: {shown[:80]!r}); set delimiter for it in csv_options.toml"
        )
    return best[1], best[2], best[3]


def _table_start(rows: list[list[str]], fixed: bool) -> tuple[int, int]:
    """Where the table starts (banner lines before it are skipped) and its width: the width
    most lines have, and the first line from which every line has it."""
    widths = [len(row) for row in rows if any(cell.strip() for cell in row)]
    if not widths:
        return 0, 0
    width = Counter(widths[len(widths) // 3 :] or widths).most_common(1)[0][0]
    if fixed:
        return 0, width
    for index, row in enumerate(rows):
        # a banner (`https://www.CryptoDataDownload.com`, `Created on …,https://…`) is never the table
        if len(row) == width and not any("://" in cell for cell in row):
            return index, width
    return 0, width  # pragma: no cover - the modal width is some row's width


def _plausibility(rows: list[list[str]], delimiter: str) -> float:
    """The share of cells that read as a number, a date or a plain word: a wrong delimiter
    leaves cells such as `5;2` that are none of these."""
    others = "".join(d for d in DELIMITERS if d != delimiter)
    cells = [cell for row in rows[:50] for cell in row]
    if not cells:
        return 0.0
    good = sum(
        1
        for cell in cells
        if is_missing_cell(cell)
        or marks_allowed(cell) is not None
        or moment_form(cell) is not None
        or not any(mark in cell for mark in others)
    )
    return good / len(cells)


def _looks_like_data(row: Sequence[str]) -> bool:
    cells = [cell for cell in row if cell.strip()]
    data = sum(1 for cell in cells if marks_allowed(cell) is not None or moment_form(cell) is not None)
    return bool(cells) and data * 2 > len(cells)


GENESIS = datetime(2009, 1, 3, tzinfo=UTC)  # no crypto price is older than the first block


def _map_fields(
    header: Sequence[str], columns: Mapping[str, list[str]], options: FileOptions, headerless: str | None
) -> tuple[dict[str, str], str, str]:
    """The column of each field, the time column, and what the time column rests on.

    The time column is the `time_column` option, else the first column named as a time, else
    the first whose values read as dates in a written form (ISO, day/month numbers, month
    names): a column of bare numbers is a time only when named as one (or a known headerless
    layout says so), never because its numbers could be read as seconds."""
    keys = {column: header_key(column) for column in header}
    fields: dict[str, str] = {}
    by_key = {key: column for column, key in reversed(list(keys.items()))}
    if options.time_column is not None:
        if options.time_column not in header:
            raise LayoutRefused(
                f"time_column {options.time_column!r} (csv_options.toml) is not a column: {', '.join(header)}"
            )
        time_column, evidence = options.time_column, "option time_column"
    elif (named := next((by_key[name] for name in TIME_COLUMNS if name in by_key), None)) is not None:
        time_column = named
        evidence = f"the known headerless layout {headerless}" if headerless else f"named {named!r}"
    else:
        written = (MomentForm.ISO, MomentForm.NUMERIC, MomentForm.MONTH_NAME)
        found = next(
            (
                c
                for c in header
                if any(not is_missing_cell(v) for v in columns[c][:50])
                and all(moment_form(v) in written or is_missing_cell(v) for v in columns[c][:50])
            ),
            None,
        )
        if found is None:
            raise LayoutRefused(
                f"no time column: none of {', '.join(header)} is named as a time "
                f"({', '.join(TIME_COLUMNS[:8])}, …) or holds written dates; a column of plain numbers "
                "is not taken for Unix time on its looks. Set time_column for this file in csv_options.toml"
            )
        time_column, evidence = found, f"its values read as dates ({found!r})"
    fields["observed_at"] = time_column
    for column in header:
        field = BY_ALIAS.get(keys[column])
        if field is None or field in fields or column == time_column:
            continue
        if field == "asset_name" and all_numeric(columns[column]):
            continue  # CoinMarketCap's id of the quote currency, not a name
        fields[field] = column
    return fields, time_column, evidence


def _check_unix_range(column: str, reader: MomentReader, values: Sequence[str], now: datetime) -> None:
    """A numeric time column must hold Unix times of this data's era, or it is no time at all
    (market caps around 1e9–1e11 read as seconds fall between 1973 and the year 5134)."""
    if reader.form is not MomentForm.EPOCH:
        return
    latest = now + timedelta(days=1)
    for value in values:
        if is_missing_cell(value):
            continue
        try:
            moment = reader.read(value)
        except InvalidValue:
            continue
        if moment is not None and not GENESIS <= moment <= latest:
            raise LayoutRefused(
                f"the numbers in {column!r} are not Unix times between 2009-01-03 and tomorrow "
                f"({value.strip()!r} would be {moment:%Y-%m-%d}): not a time column. Set time_column "
                "for this file in csv_options.toml"
            )


def _renamed_price(
    header: Sequence[str],
    fields: dict[str, str],
    columns: Mapping[str, list[str]],
    auto_map_confidence: float,
) -> tuple[dict[str, str], tuple[DriftFinding, ...]]:
    """No column is named as a price: the unmapped number column whose name is most like one
    (`closing_price_usd`) is a `renamed` finding, and read as the price when the likeness
    reaches `auto_map_confidence`; otherwise the file is refused, naming the nearest column."""
    mapped = set(fields.values())
    scored = sorted(
        (
            (max(name_similarity(column, alias) for alias in ("close", *ALIASES["close"])), column)
            for column in header
            if column not in mapped and decide_mark(columns[column])[1] and not all_numeric([column])
        ),
        reverse=True,
    )
    names = f"names read as one: {', '.join(ALIASES['close'])}"
    if not scored:
        raise LayoutRefused(f"no price column: none of {', '.join(header)} is a close or price ({names})")
    confidence, column = round(scored[0][0], 3), scored[0][1]
    if confidence < auto_map_confidence:
        raise LayoutRefused(
            f"no price column: none of {', '.join(header)} is a close or price ({names}); the nearest, "
            f"{column!r}, is only {confidence:.2f} alike (auto-mapped from {auto_map_confidence:.2f}); "
            "rename the column"
        )
    sample = next((value for value in columns[column] if value.strip()), None)
    finding = DriftFinding(
        kind=DriftKind.RENAMED,
        field="close",
        candidate=column,
        confidence=confidence,
        auto_mapped=True,
        sample_value=sample,
        evidence={"name_similarity": confidence, "values": "numbers", "read_by": "csv layout"},
    )
    return {**fields, "close": column}, (finding,)


def _time_reader(column: str, values: Sequence[str], options: FileOptions) -> tuple[MomentReader, bool]:
    forms = Counter(moment_form(value) for value in values if not is_missing_cell(value))
    zone = options.timezone or UTC
    if not forms:  # a header alone: nothing to read yet
        return MomentReader(MomentForm.ISO, zone=zone, fixed_order=options.date_order), False
    forms.pop(None, None)
    if not forms:
        shown = next((value for value in values if value.strip()), "")
        raise LayoutRefused(f"the dates in {column!r} are in no form Kaspero reads (first: {shown!r})")
    form = forms.most_common(1)[0][0]
    assert form is not None
    if options.date_order is not None:
        return MomentReader(form, zone=zone, fixed_order=options.date_order), False
    evidence = order_evidence(values)
    if evidence.contradictory:
        raise LayoutRefused(
            f"the dates in {column!r} are neither all day-first nor all month-first (both a first and a "
            "second number above 12 occur); fix the file, or set date_order for it in csv_options.toml"
        )
    # a column mostly of other forms reads a stray numeric date by what it shows, else refuses it
    still_open = bool(evidence.open) and form is MomentForm.NUMERIC
    return MomentReader(form, evidence.orders, zone), still_open


def _marks(
    number_columns: Sequence[str], columns: Mapping[str, list[str]], options: FileOptions
) -> dict[str, DecimalMark | None]:
    if options.decimal is not None:
        return dict.fromkeys(number_columns, options.decimal)
    marks = {column: decide_mark(columns[column])[0] for column in number_columns}
    # a file is written in one locale: a column its own values leave open takes the file's mark
    decided = {mark for mark in marks.values() if mark is not None}
    if len(decided) == 1:
        mark = decided.pop()
        marks = {column: own or mark for column, own in marks.items()}
    return marks


def _interval(options: FileOptions, reader: MomentReader, values: Sequence[str]) -> Origin:
    if options.interval:
        return Origin(options.interval, "option")
    moments: set[datetime] = set()
    for value in values[:SAMPLE_ROWS]:
        try:
            moment = reader.read(value)
        except InvalidValue:
            continue
        if moment is not None:
            moments.add(moment)
    ordered = sorted(moments)
    steps = Counter(int((b - a).total_seconds()) for a, b in itertools.pairwise(ordered))
    if not steps:
        return Origin(None, "unknown: fewer than two distinct times")
    step, _ = steps.most_common(1)[0]
    named = next((name for name, seconds in INTERVALS.items() if seconds == step), None)
    if named is None:
        return Origin(None, f"irregular: the most common spacing is {timedelta(seconds=step)}")
    return Origin(named, "spacing of the times")


def _symbol_and_quote(
    file_name: str,
    header: Sequence[str],
    fields: Mapping[str, str],
    columns: Mapping[str, list[str]],
    options: FileOptions,
    from_name: FromName | None,
    known_symbols: frozenset[str],
) -> tuple[Origin, Origin, str | None, bool]:
    """The symbol and quote and what each rests on; the asset name; whether each row's symbol
    comes from its asset name (a file of several coins by name)."""
    asset_name = options.name
    if "symbol" in fields:
        symbol = Origin(None, f"column {fields['symbol']!r}")
        values = [v for v in columns[fields["symbol"]] if v.strip()]
        pairs = [split_pair(value, known_symbols) for value in values]
        row_quotes = {pair.quote for pair in pairs if pair is not None and pair.quote}
        if len(row_quotes) == 1 and all(p is not None and p.quote for p in pairs):
            in_rows = Origin(row_quotes.pop(), f"column {fields['symbol']!r}")
            return symbol, option_quote(options) or in_rows, asset_name, False
        base_only: Pair | None = None
    elif options.symbol:
        pair = split_pair(options.symbol, known_symbols) or Pair(options.symbol.upper())
        symbol, base_only = Origin(pair.base, "option"), pair
    elif from_name is not None and from_name.pair.base:
        if from_name.order_open and not options.quote:
            raise LayoutRefused(
                f"the file name pairs two crypto assets ({from_name.pair.base} and {from_name.pair.quote}) and "
                "nothing in the file shows which is priced in which (Poloniex writes QUOTE_BASE, most "
                "exporters BASE_QUOTE); set symbol and quote for this file in csv_options.toml"
            )
        symbol, base_only = Origin(from_name.pair.base, from_name.how), from_name.pair
    elif "asset_name" in fields and _names_several(columns[fields["asset_name"]]):
        symbol = Origin(
            None, f"each row's name in column {fields['asset_name']!r}, through the cross-reference"
        )
        quote = option_quote(options) or (
            Origin(from_name.pair.quote, from_name.how) if from_name and from_name.pair.quote else None
        )
        return symbol, quote or quote_from_columns(header, columns, None), asset_name, True
    elif (counted := _counted_base(header, from_name.pair.quote if from_name else None)) is not None:
        symbol, base_only = counted, None
    else:
        venue = f" ({from_name.venue} is an exchange, not a coin)" if from_name and from_name.venue else ""
        raise LayoutRefused(
            f"no symbol: not in a column, not in the file name {file_name!r}{venue}; "
            "set symbol for it in csv_options.toml"
        )
    quote = option_quote(options)
    if quote is None and base_only is not None and base_only.quote:
        quote = Origin(base_only.quote, symbol.source)
    if quote is None and from_name is not None and from_name.pair.quote:
        quote = Origin(from_name.pair.quote, from_name.how)
    return symbol, quote or quote_from_columns(header, columns, symbol.value), asset_name, False


def _names_several(values: Sequence[str]) -> bool:
    """A column of asset names naming more than one asset (`Bitcoin`, `Ripple`, `Ardor`)."""
    names = {value.strip().lower() for value in values if value.strip()}
    return len(names) > 1 and not all_numeric(list(names))


def _counted_base(header: Sequence[str], quote: str | None) -> Origin | None:
    """The base asset a volume column counts units of (`Volume_(BTC)` beside a USD pair): the
    file's own word for what is traded."""
    for column in header:
        named = re.fullmatch(r"vol(?:ume)?_([a-z0-9]{2,10})", header_key(column))
        if named is None:
            continue
        currency = named.group(1).upper()
        if (
            currency not in CURRENCIES
            and currency != (quote or "")
            and currency not in ("CURRENCY", "QUOTE", "BASE")
        ):
            return Origin(
                {"XBT": "BTC"}.get(currency, currency), f"column {column!r} counts units of {currency}"
            )
    return None


_PRICE_IN = (
    re.compile(r"^(price|close|open|high|low|rate)_([a-z]{3,5})$"),
    re.compile(r"^([a-z]{3,5})_(price|close|open|high|low|rate)$"),
)
_PRICE_FIELD = {
    "price": "close",
    "rate": "close",
    "close": "close",
    "open": "open",
    "high": "high",
    "low": "low",
}


def _price_currencies(
    header: Sequence[str], fields: dict[str, str], quote: Origin, options: FileOptions
) -> tuple[dict[str, str], Origin]:
    """Price columns that name their currency (`price_eur`, `price_usd`, `usd_close`) are in
    that currency, whatever the file name says. One currency: it is the quote. Several: the one
    the options or the file name quote is the price, and the USD one beside it the USD price."""
    by_currency: dict[str, dict[str, str]] = {}
    for column in header:
        key = header_key(column)
        for pattern in _PRICE_IN:
            matched = pattern.match(key)
            if matched is None:
                continue
            kind, currency = (
                (matched.group(1), matched.group(2))
                if pattern is _PRICE_IN[0]
                else (matched.group(2), matched.group(1))
            )
            currency = currency.upper()
            if currency in CURRENCIES or currency in ("BTC", "ETH"):
                by_currency.setdefault(currency, {}).setdefault(_PRICE_FIELD[kind], column)
            break
    if not by_currency:
        return fields, quote
    named = (options.quote or "").upper() or (quote.value if quote.source not in ("assumed",) else None)
    if len(by_currency) == 1:
        chosen = next(iter(by_currency))
    elif named in by_currency:
        chosen = named
    elif "USD" in by_currency:
        chosen = "USD"
    else:
        raise LayoutRefused(
            f"prices in several currencies ({', '.join(sorted(by_currency))}) and nothing says which the file "
            "quotes; set quote for this file in csv_options.toml"
        )
    chosen_columns = by_currency[chosen]
    updated = {
        field: column for field, column in fields.items() if field not in ("close", "open", "high", "low")
    }
    updated.update(chosen_columns)
    for field in ("open", "high", "low"):
        if (
            field not in chosen_columns
            and field in fields
            and fields[field] not in {c for columns in by_currency.values() for c in columns.values()}
        ):
            updated[field] = fields[field]
    if chosen != "USD" and "close" in by_currency.get("USD", {}):
        updated["usd_close"] = by_currency["USD"]["close"]
    if "close" not in updated:
        return fields, quote
    return updated, Origin(
        chosen,
        f"column {chosen_columns.get('close', next(iter(chosen_columns.values())))!r} names its currency",
    )


# a plain volume column read in the quote currency by who exported the file: their header shows it
_QUOTE_VOLUME_EXPORTERS = {
    "yahoo finance (Adj Close)": ("adj_close",),
    "CoinMarketCap (timeOpen, marketCap)": ("timeopen", "marketcap"),
    "CoinGecko (snapped_at, total_volume)": ("snapped_at", "total_volume"),
}


def _plain_volume(
    header: Sequence[str],
    fields: Mapping[str, str],
    columns: Mapping[str, list[str]],
    terms_of: dict[str, str],
    options: FileOptions,
) -> dict[str, str]:
    """The unit of a volume column whose name names no currency, from evidence: the `volume`
    option; an exporter whose header shows it (Yahoo, CoinMarketCap, CoinGecko count their
    volume in the quote currency); or, beside a market cap, what the magnitudes allow (as base
    units the day's volume would be many times the market cap). Without evidence it counts base
    units, never USD. Rewrites `terms_of` and says why, per column."""
    evidence = {column: f"its name ({column!r})" for column in terms_of}
    column = fields.get("volume")
    if (
        column is None
        or column not in terms_of
        or (terms_of[column] != "quote" and "quote" in terms_of.values())
    ):
        return evidence
    if "quote" in terms_of.values() and terms_of[column] == "base":
        evidence[column] = f"beside a quote volume, {column!r} counts base units"
        return evidence
    keys = {header_key(name) for name in header}
    if options.volume:
        terms_of[column] = options.volume
        evidence[column] = "option volume"
        return evidence
    exporter = next((name for name, marks in _QUOTE_VOLUME_EXPORTERS.items() if set(marks) <= keys), None)
    if exporter is not None:
        terms_of[column] = "quote"
        evidence[column] = f"the exporter's header ({exporter}) counts it in the quote currency"
        return evidence
    ratio = _volume_to_cap(columns, fields, column)
    if ratio is not None:
        as_quote, as_base = ratio
        if as_quote <= 5:
            # market caps come from aggregators (CoinMarketCap, CoinGecko), whose volumes are in the
            # quote currency; exchanges' exports, in base units, have no market cap. The values agree.
            terms_of[column] = "quote"
            evidence[column] = (
                f"beside market caps (an aggregator's export): in the quote currency a day's volume is "
                f"{as_quote:.2f}× the market cap (as base units: {as_base:,.2f}×)"
            )
            return evidence
        evidence_note = f"; as the quote currency it would be {as_quote:,.0f}× the market cap"
    else:
        evidence_note = ""
    terms_of[column] = "base"
    evidence[column] = (
        f"no currency in its name and nothing in the file says otherwise{evidence_note}: base units, never "
        'USD (set volume = "quote" or "usd" for this file in csv_options.toml if it is not)'
    )
    return evidence


def _volume_to_cap(
    columns: Mapping[str, list[str]], fields: Mapping[str, str], volume: str
) -> tuple[float, float] | None:
    """Median volume/market cap and volume × close/market cap over the sample, when both exist."""
    cap, close = fields.get("market_cap"), fields.get("close")
    if cap is None or close is None:
        return None
    quotients, products = [], []
    for v, m, c in zip(columns[volume], columns[cap], columns[close], strict=False):
        try:
            volume_value, cap_value, close_value = (
                read_number(v, None),
                read_number(m, None),
                read_number(c, None),
            )
        except InvalidValue:
            continue
        if volume_value and cap_value and close_value and cap_value > 0:
            quotients.append(float(volume_value / cap_value))
            products.append(float(volume_value * close_value / cap_value))
    if len(quotients) < 3:
        return None
    quotients.sort()
    products.sort()
    return quotients[len(quotients) // 2], products[len(products) // 2]
