"""Bounds on what a stored number or time may be."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import attrs
from hypothesis import given
from hypothesis import strategies as st

from domain.plausibility import Bounds, implausible
from domain.records import RawRecord, RecordKind, SourceType, UnifiedRecord, market_record

NOW = datetime(2026, 12, 6, tzinfo=UTC)
RAW = RawRecord.of(source="api", source_record_id="x", payload={}, fetched_at=NOW, run_id=1)


def quote(price: str, at: datetime = NOW, **fields: Decimal) -> UnifiedRecord:
    record = market_record(
        RAW, SourceType.API, symbol="btc", asset_name=None, price_usd=Decimal(price), observed_at=at
    )
    return attrs.evolve(record, **fields)


def test_times_outside_what_data_can_have_are_refused() -> None:
    assert implausible(quote("1", datetime(9999, 12, 31, tzinfo=UTC)), NOW, Bounds()).startswith(
        "observed_at: 9999-12-31"
    )
    assert implausible(quote("1", datetime(2008, 12, 31, tzinfo=UTC)), NOW, Bounds()).startswith(
        "observed_at: 2008"
    )
    assert implausible(quote("1", datetime(2009, 1, 3, tzinfo=UTC)), NOW, Bounds()) is None
    article = UnifiedRecord(source="rss:x", source_type=SourceType.RSS, source_record_id="a", kind=RecordKind.ARTICLE,
                            checksum="c", title="t", published_at=datetime(1995, 5, 1, tzinfo=UTC))  # fmt: skip
    assert implausible(article, NOW, Bounds()) is None  # an old article is an old article


def test_magnitudes_no_asset_can_have_are_refused_naming_the_setting() -> None:
    assert "PLAUSIBLE_MAX_PRICE_USD" in implausible(quote("1e13"), NOW, Bounds())
    assert "PLAUSIBLE_MIN_PRICE_USD" in implausible(quote("1e-19"), NOW, Bounds())
    assert implausible(quote("0"), NOW, Bounds()) is None  # a dead coin's price is 0
    assert "PLAUSIBLE_MAX_MARKET_CAP_USD" in implausible(
        quote("1", market_cap_usd=Decimal("2e15")), NOW, Bounds()
    )
    assert "PLAUSIBLE_MAX_VOLUME_USD" in implausible(
        quote("1", volume_24h_usd=Decimal("2e16")), NOW, Bounds()
    )
    assert "high_usd" in implausible(quote("1", high_usd=Decimal("1e400")), NOW, Bounds())
    assert implausible(quote("1", market_cap_usd=Decimal("1e15")), NOW, Bounds()) is None


@given(st.decimals(min_value=Decimal("1e-18"), max_value=Decimal("1e12"), allow_nan=False, places=18))
def test_every_price_within_the_bounds_is_kept(price: Decimal) -> None:
    assert implausible(quote(str(price)), NOW, Bounds()) is None or price == 0


def test_one_symbol_rule_for_every_source() -> None:
    from domain.records import is_symbol

    for good in ("BTC", "usdc.e", "USD+", "$WIF", "1INCH", "WBTC", "a-b_c", "ÉTÉ"):
        assert is_symbol(good), good
    for bad in ("<SCRIPT>ALERT(1)</SCRIPT>", "BTC USD", "", "A" * 31, "$", ".BTC", "x\ny", "<b>", "'"):
        assert not is_symbol(bad), bad


def test_a_file_is_judged_whole_only_on_enough_bars() -> None:
    from domain.plausibility import Reference, file_refusal

    reference = Reference(Decimal("100"), ("coingecko",))
    far = [(quote("900"), reference)] * 4
    assert file_refusal(far, Bounds()) is None  # four bars: each may be suspect, the file is not judged
    refusal = file_refusal([*far, (quote("900"), reference)], Bounds())
    assert refusal is not None
    assert refusal.startswith(
        "prices differ from 1 other source of BTC (coingecko) by +800 % (median of 5 bars)"
    )
