"""How `kaspero csv inspect` prints a file's inspection: text for people, JSON for scripts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.bars import FileInspection
from domain.records import UnifiedRecord

STORED_FIELDS = (
    "observed_at", "symbol", "quote_currency", "price", "price_usd", "open_usd", "high_usd", "low_usd",
    "volume_24h_usd", "market_cap_usd", "bar_seconds",
)  # fmt: skip


def stored(record: UnifiedRecord) -> dict[str, Any]:
    """A record as a load would store it: its typed fields and `extra`."""
    row: dict[str, Any] = {"source_record_id": record.source_record_id}
    for name in STORED_FIELDS:
        value = getattr(record, name)
        row[name] = format(value, "f") if isinstance(value, Decimal) else value
    row["extra"] = record.extra
    return row


def inspection_json(item: FileInspection) -> dict[str, Any]:
    return {
        "file": item.path,
        "source": item.source,
        "refused": item.refusal,
        "layout": item.layout.describe() if item.layout else None,
        "rows": [stored(record) for record in item.records],
        "quarantined": [{"payload": q.raw.payload, "reason": q.reason} for q in item.quarantined],
    }


def inspection_text(item: FileInspection) -> str:
    lines = [f"{item.path}  (source {item.source})"]
    if item.refusal or item.layout is None:
        lines.append(f"  REFUSED: {item.refusal}")
        return "\n".join(lines) + "\n"
    layout = item.layout.describe()
    time = layout["time"]
    lines += [
        f"  delimiter {layout['delimiter']!r}, {layout['lines_skipped']} line(s) skipped before the table, "
        f"header: {layout['header']}",
        "  columns: " + ", ".join(f"{column} → {role}" for column, role in layout["columns"].items()),
        f"  time: column {time['column']!r}, {time['form']}"
        + (f", order {time['order']}" if time["order"] else "")
        + f", naive times in {time['timezone']}",
        "  decimal mark: "
        + (", ".join(f"{column} {mark!r}" for column, mark in layout["decimal_mark"].items()) or "-"),
        f"  symbol: {layout['symbol']['value'] or '(per row)'} (from {layout['symbol']['from']})",
        f"  quote: {layout['quote']['value']} (from {layout['quote']['from']})",
        f"  bar interval: {layout['interval']['value'] or '-'} ({layout['interval']['from']})",
        "  known prices: a dry run compares with nothing; a load compares each bar with the USD prices other"
        " sources observed of the asset in that bar (PLAUSIBLE_FILE_DEVIATION, PLAUSIBLE_BAR_DEVIATION)",
        "  decisions and what each rests on:",
        *(f"    {made['decision']}: {made['value']}  ← {made['evidence']}" for made in layout["decisions"]),
    ]
    if item.records:
        lines.append("  first rows as they would be stored:")
        for record in item.records:
            row = stored(record)
            shown = {key: value for key, value in row.items() if value is not None and key != "extra"}
            lines.append("    " + "  ".join(f"{key}={value}" for key, value in shown.items()))
    for quarantined in item.quarantined:
        lines.append(f"  quarantined: {quarantined.reason}  ({quarantined.raw.source_record_id})")
    return "\n".join(lines) + "\n"
