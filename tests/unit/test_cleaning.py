from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.checksum import payload_checksum
from domain.cleaning import is_missing, parse_decimal, parse_int, parse_timestamp
from domain.errors import InvalidValue


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.5", Decimal("1234.5")),
        ("$1,234.50", Decimal("1234.50")),
        ("  $ 1,234.50 ", Decimal("1234.50")),
        ("-$5.25", Decimal("-5.25")),
        ("(12.5)", Decimal("-12.5")),
        ("1.2e3", Decimal("1.2e3")),
        ("12.5%", Decimal("12.5")),
        ("€0.000001", Decimal("0.000001")),
        (7, Decimal(7)),
        (0.1, Decimal("0.1")),
    ],
)
def test_numbers_as_exports_write_them_are_read_exactly(text: object, expected: Decimal) -> None:
    assert parse_decimal(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "N/A", "n/a", "null", "None", "-", "NaN", None])
def test_missing_markers_read_as_none(text: object) -> None:
    assert is_missing(text)
    assert parse_decimal(text) is None


@pytest.mark.parametrize("text", ["abc", "1.2.3", "12,34abc", "$", "1e", "--5", True, float("inf"), [1]])
def test_broken_numbers_are_refused_with_the_value(text: object) -> None:
    with pytest.raises(InvalidValue):
        parse_decimal(text)


def test_whole_numbers_refuse_fractions() -> None:
    assert parse_int("1,000") == 1000
    with pytest.raises(InvalidValue, match="whole number"):
        parse_int("1.5")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**15), max_value=10**15))
def test_a_formatted_decimal_reads_back_as_itself(number: Decimal) -> None:
    assert parse_decimal(f"{number:,f}") == number
    assert parse_decimal(str(number)) == number


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-31",
        "2024/01/31",
        "01/31/2024",
        "31.01.2024",
        "Jan 31, 2024",
        "31 Jan 2024",
        "20240131",
        "2024-01-31T00:00:00Z",
        "2024-01-31T00:00:00.000Z",
        "2024-01-31 00:00:00",
        "2024-01-31T01:00:00+01:00",
    ],
)
def test_dates_in_every_supported_format_mean_the_same_instant(text: str) -> None:
    assert parse_timestamp(text) == datetime(2024, 1, 31, tzinfo=UTC)


def test_epoch_seconds_and_milliseconds() -> None:
    assert parse_timestamp("1706659200") == datetime(2024, 1, 31, tzinfo=UTC)
    assert parse_timestamp(1706659200000) == datetime(2024, 1, 31, tzinfo=UTC)


@pytest.mark.parametrize("text", ["31/31/2024", "yesterday", "2024-13-01"])
def test_impossible_dates_are_refused(text: str) -> None:
    with pytest.raises(InvalidValue, match="not a recognised date"):
        parse_timestamp(text)


@given(
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=6)
)
def test_checksum_ignores_key_order_and_sees_any_change(payload: dict) -> None:
    reordered = dict(reversed(list(payload.items())))
    assert payload_checksum(reordered) == payload_checksum(payload)
    changed = {**payload, "__extra__": 1}
    assert payload_checksum(changed) != payload_checksum(payload)


def test_a_raw_record_with_a_nul_character_is_rebuilt_without_it_and_only_then() -> None:
    from datetime import UTC, datetime

    from domain.records import RawRecord, without_nul

    def raw(payload: dict, record_id: str = "a") -> RawRecord:
        return RawRecord.of(
            source="s", source_record_id=record_id, payload=payload, fetched_at=datetime.now(UTC), run_id=1
        )

    assert without_nul(raw({"name": "plain"})) is None
    assert without_nul(raw({"name": "a literal \\u0000 is text"})) is None
    only_id = without_nul(raw({"name": "plain"}, "a\x00b"))
    assert only_id is not None
    assert only_id.source_record_id == "a\ufffdb"
    rebuilt = without_nul(raw({"na\x00me": ["x\x00", {"deep": "y\x00z"}], "n": 1}))
    assert rebuilt is not None
    assert rebuilt.payload == {"na\ufffdme": ["x\ufffd", {"deep": "y\ufffdz"}], "n": 1}
    assert "\\u0000" not in (rebuilt.payload_json or "")
