"""Rows in PostgreSQL's COPY text format, encoded in Python ahead of the write.

psycopg's `write_row` adapts each value as the COPY runs, on the thread that holds the
connection; encoding here, where the ETL prepares a batch, leaves that thread only bytes to
send, so the database works on one batch while Python encodes the next. Each column's
Python type is known, which also spares a dumper lookup per value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text(value: str | None) -> str:
    """A text value: backslash, tab, newline and carriage return escaped; None as NULL."""
    if value is None:
        return NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def number(value: Decimal | int | None) -> str:
    return NULL if value is None else str(value)


def moment(value: datetime | None) -> str:
    """ISO 8601 with its offset, which `timestamptz` reads exactly."""
    return NULL if value is None else value.isoformat()


def document(value: Any) -> str:
    """A `jsonb` value: by orjson (a tenth of the json module's time for a record's `extra`),
    by the json module for what orjson refuses (integers past 64 bits, keys that are not text)."""
    if not value:
        return "{}"
    try:
        return text(orjson.dumps(value).decode("utf-8"))
    except TypeError:
        return text(json.dumps(value, ensure_ascii=False))


def text_array(items: Sequence[str]) -> str:
    """A `text[]` literal: every element quoted, so commas, braces and "NULL" stay text."""
    if not items:
        return "{}"
    quoted = (item.replace("\\", "\\\\").replace('"', '\\"') for item in items)
    return text("{" + ",".join(f'"{item}"' for item in quoted) + "}")


def encode(lines: Iterable[Iterable[str]]) -> bytes:
    """Rows of already-encoded fields as one COPY text payload."""
    return "".join("\t".join(fields) + "\n" for fields in lines).encode("utf-8")
