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
