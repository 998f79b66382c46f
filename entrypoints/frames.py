"""DataFrames for notebooks: `Kaspero.prices` and `Kaspero.records` read the store's CSV text
(`application.tables`) straight into Arrow columns, then hand them to polars or pandas. No row
object is made on the way; money stays exact (`decimal(38, 18)`: pandas shows `Decimal` objects,
polars a `Decimal` column), moments are UTC timestamps."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

FRAMES = ("polars", "pandas", "arrow")


class _Chunks(io.RawIOBase):
    """An iterator of byte chunks as a readable file, for Arrow's streaming CSV reader."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts, self._left = parts, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            try:
                self._left = next(self._parts)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size], self._left = self._left[:size], self._left[size:]
        return size


def arrow_table(parts: Iterator[bytes], columns: tuple[tuple[str, str], ...]) -> Any:
    """The CSV text of `columns` (`application.tables`) as an Arrow table of their types."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {"time": pa.int64(), "money": pa.decimal128(38, 18), "integer": pa.int64(), "text": pa.string()}
    reader = pacsv.open_csv(
        io.BufferedReader(_Chunks(parts), buffer_size=1 << 20),
        read_options=pacsv.ReadOptions(block_size=1 << 22),
        convert_options=pacsv.ConvertOptions(
            column_types={name: types[kind] for name, kind in columns},
            strings_can_be_null=True,  # an empty cell is none; "" (quoted) is an empty text
            quoted_strings_can_be_null=False,
        ),
    )
    try:
        table = reader.read_all()
    except pa.ArrowInvalid as ex:
        raise ValueError(
            f"a value does not fit its column's type ({ex}); money beyond decimal(38, 18) is kept whole "
            "in CSV and NDJSON exports (kaspero export)"
        ) from None
    for name, kind in columns:
        if kind == "time":
            index = table.schema.get_field_index(name)
            moments = table.column(name).cast(pa.timestamp("us", tz="UTC"))
            table = table.set_column(index, pa.field(name, moments.type), moments)
    return table


def with_symbols(table: Any, symbols: Mapping[int, str]) -> Any:
    """The table with each row's asset symbol beside its `asset_id`, by Arrow's own lookup."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(list(symbols), pa.int64())
    names = pa.array(list(symbols.values()), pa.string())
    found = pc.take(names, pc.index_in(table.column("asset_id"), value_set=ids))
    return table.add_column(table.schema.get_field_index("asset_id") + 1, "symbol", found)


def as_frame(table: Any, frame: str) -> Any:
    """The Arrow table as the asked frame: polars, pandas or the Arrow table itself."""
    if frame == "arrow":
        return table
    if frame not in FRAMES:
        raise ValueError(f"frame must be one of {', '.join(FRAMES)}, got {frame!r}")
    try:
        if frame == "polars":
            import polars

            return polars.from_arrow(table)
        import pandas  # noqa: F401  (to_pandas needs it)
    except ImportError:
        raise ImportError(
            f"{frame} is not installed here: pip install 'kaspero[notebook]' (or {frame}), or ask for frame='arrow'"
        ) from None
    return table.to_pandas()


def moment(value: str | date | datetime | None, name: str) -> datetime | None:
    """A notebook's time: a datetime (naive: UTC), a date (its midnight, UTC) or ISO 8601 text."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be a datetime, a date or ISO 8601 text, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
