"""What a price file's layout is decided from besides its content: the per-file options, and
where each decided value came from."""

from __future__ import annotations

from datetime import tzinfo

import attrs

from domain.csv_cells import DateOrder, DecimalMark


@attrs.frozen
class FileOptions:
    """What detection cannot know, given per file in `csv_options.toml`."""

    symbol: str | None = None
    name: str | None = None
    quote: str | None = None
    delimiter: str | None = None
    decimal: DecimalMark | None = None
    date_order: DateOrder | None = None
    timezone: tzinfo | None = None
    timezone_name: str | None = None
    interval: str | None = None
    skip_lines: int | None = None
    time_column: str | None = None  # the column holding the time, when nothing in the file shows it
    volume: str | None = None  # what a volume column without a currency in its name counts: base|quote|usd


@attrs.frozen
class Origin:
    """A value the layout decided and where it came from, for inspect and for the records."""

    value: str | None
    source: str
