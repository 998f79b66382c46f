"""Response encoding: compact UTF-8 JSON, exact money, whatever a provider's payload holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from entrypoints.api.render import dumps


def test_money_is_an_exact_string_and_times_keep_their_offset() -> None:
    value = {
        "price": Decimal("0.000000012345678901234567890"),
        "at": datetime(2024, 1, 31, 12, 0, 0, 250000, tzinfo=UTC),
        "local": datetime(2024, 1, 31, tzinfo=timezone(timedelta(hours=-5))),
        "name": "Ünïcode 🚀",
    }
    assert json.loads(dumps(value)) == {
        "price": "0.000000012345678901234567890",
        "at": "2024-01-31T12:00:00.250000+00:00",
        "local": "2024-01-31T00:00:00-05:00",
        "name": "Ünïcode 🚀",
    }


def test_integers_past_64_bits_in_a_payload_are_encoded_not_refused() -> None:
    payload = {"extra": {"total_supply": 2**80, "nested": [2**65, -(2**70)]}, "count": 3}
    assert json.loads(dumps(payload)) == payload


def test_orjson_and_the_fallback_write_the_same_document() -> None:
    from zoneinfo import ZoneInfo

    value = {
        "utc": datetime(2024, 1, 31, 12, 0, tzinfo=UTC),
        "zone": datetime(2024, 1, 31, 12, 0, 0, 1, tzinfo=ZoneInfo("Etc/UTC")),
        "offset": datetime(2024, 7, 1, 8, 30, tzinfo=ZoneInfo("America/New_York")),
        "naive": datetime(2024, 1, 31, 12, 0, 59, 999999),
        "money": Decimal("1E+3"),
        "text": 'quote " backslash \\ newline \n ünï 🚀',
    }
    fast = dumps(value)
    slow = dumps({**value, "big": 2**70})  # past 64 bits: the json module writes it
    assert slow.startswith(fast[:-1])
    assert json.loads(fast)["offset"] == "2024-07-01T08:30:00-04:00"
    assert json.loads(fast)["money"] == "1000"
