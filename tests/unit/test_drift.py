"""Schema drift detection on payloads: each kind found, nothing found in what matches."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.http_source.coingecko import CONTRACT as COINGECKO
from adapters.http_source.coinpaprika import CONTRACT as COINPAPRIKA
from domain.drift import DriftKind, detect_drift, name_similarity
from tests.support.provider import coingecko_coin, coinpaprika_ticker


def batch(payloads: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(str(payload.get("id", i)), payload) for i, payload in enumerate(payloads)]


def kinds(report) -> list[tuple[str, str, str]]:
    return sorted((f.kind.value, f.field, f.candidate) for f in report.findings)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=30))
def test_payloads_in_the_documented_shape_yield_no_finding(ids: list[int]) -> None:
    assert detect_drift(COINGECKO, batch([coingecko_coin(i) for i in ids])).findings == ()
    assert detect_drift(COINPAPRIKA, batch([coinpaprika_ticker(i) for i in ids])).findings == ()


def test_real_captured_payloads_match_their_contracts() -> None:
    """The payloads captured from the real APIs (copied into tests/fixtures/payloads)."""
    import json
    from pathlib import Path

    captured = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
    gecko = json.loads((captured / "coingecko_coins_markets.json").read_text())
    paprika = json.loads((captured / "coinpaprika_tickers.json").read_text())
    assert detect_drift(COINGECKO, batch(gecko)).findings == ()
    paprika_findings = detect_drift(COINPAPRIKA, batch(paprika)).findings
    # 2020-era tickers lack `first_data_at`, which the provider added later: an optional field
    assert [(f.kind.value, f.field) for f in paprika_findings] in ([], [("removed", "first_data_at")])


def test_a_renamed_coingecko_price_is_found_and_auto_mapped() -> None:
    payloads = []
    for i in range(5):
        coin = coingecko_coin(i)
        coin["currentPrice"] = coin.pop("current_price")
        payloads.append(coin)
    report = detect_drift(COINGECKO, batch(payloads))
    [finding] = report.findings
    assert (finding.kind, finding.field, finding.candidate) == (
        DriftKind.RENAMED,
        "current_price",
        "currentPrice",
    )
    assert finding.confidence >= 0.8
    assert finding.auto_mapped
    assert finding.evidence["name_similarity"] == 1.0
    assert report.remap(payloads[0])["current_price"] == payloads[0]["currentPrice"]


def test_value_evidence_raises_or_lowers_a_rename_s_confidence() -> None:
    payloads = [coingecko_coin(i) for i in range(4)]
    renamed = [{("price_now" if k == "current_price" else k): v for k, v in p.items()} for p in payloads]
    earlier = {p["id"]: p for p in payloads}
    agreeing = detect_drift(COINGECKO, batch(renamed), previous=lambda ids: earlier)
    [finding] = [f for f in agreeing.findings if f.kind is DriftKind.RENAMED]
    assert finding.evidence["value_agreement"] == 1.0
    assert finding.evidence["records_compared"] == 4
    elsewhere = {p["id"]: {**p, "current_price": p["current_price"] * 3} for p in payloads}
    disagreeing = detect_drift(COINGECKO, batch(renamed), previous=lambda ids: elsewhere)
    [weaker] = [f for f in disagreeing.findings if f.kind is DriftKind.RENAMED]
    assert weaker.confidence < finding.confidence
    assert not weaker.auto_mapped


def test_an_unlike_new_name_is_not_a_rename_and_the_required_field_is_reported_removed() -> None:
    payloads = []
    for i in range(3):
        coin = coingecko_coin(i)
        coin["zzz"] = coin.pop("current_price")
        payloads.append(coin)
    report = detect_drift(COINGECKO, batch(payloads))
    assert kinds(report) == [("added", "zzz", ""), ("removed", "current_price", "")]
    assert report.mapping == {}
    removed = next(f for f in report.findings if f.kind is DriftKind.REMOVED)
    assert removed.evidence["required"] is True


def test_an_added_field_a_removed_optional_field_and_a_type_change() -> None:
    payloads = []
    for i in range(4):
        ticker = coinpaprika_ticker(i)
        ticker["contract_address"] = "0xabc"
        del ticker["beta_value"]
        ticker["rank"] = str(ticker["rank"])
        payloads.append(ticker)
    report = detect_drift(COINPAPRIKA, batch(payloads))
    assert kinds(report) == [
        ("added", "contract_address", ""),
        ("removed", "beta_value", ""),
        ("type_changed", "rank", ""),
    ]
    changed = next(f for f in report.findings if f.kind is DriftKind.TYPE_CHANGED)
    assert changed.evidence == {"expected": ["number"], "observed": ["string"]}
    assert changed.sample_value == "1"


def test_a_renamed_csv_price_column_is_found_by_the_layout_and_read() -> None:
    from domain.csv_layout import detect_layout, read_bar

    lines = [
        "Date,Ticker,Name,Closing,Volume\n",
        "2024-01-01,BTC,Bitcoin,42000.5,1\n",
        "2024-01-02,BTC,Bitcoin,43000.5,2\n",
    ]
    layout = detect_layout("prices.csv", lines)
    assert [(f.kind, f.field, f.candidate, f.auto_mapped) for f in layout.findings] == [
        (DriftKind.RENAMED, "close", "Closing", True)
    ]
    assert read_bar(
        layout, dict(zip(layout.header, ["2024-01-01", "BTC", "Bitcoin", "42000.5", "1"], strict=True))
    ).close == Decimal("42000.5")


def test_a_column_unlike_any_price_refuses_the_file_naming_the_nearest() -> None:
    from domain.csv_layout import LayoutRefused, detect_layout

    lines = ["Date,Ticker,Zzz\n", "2024-01-01,BTC,42000.5\n"]
    with pytest.raises(LayoutRefused, match=r"no price column: .*the nearest, 'Zzz', is only"):
        detect_layout("prices.csv", lines)


def test_names_alike_score_high_and_names_apart_score_low() -> None:
    assert name_similarity("current_price", "currentPrice") == 1.0
    assert name_similarity("close", "Closing") > 0.8
    assert name_similarity("market_cap", "zzz") < 0.5


def test_real_captured_payloads_normalize_without_quarantine() -> None:
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from adapters.http_source.coingecko import CoinGeckoNormalizer
    from adapters.http_source.coinpaprika import CoinPaprikaNormalizer
    from domain.records import RawRecord

    captured = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
    for name, normalizer in (
        ("coingecko_coins_markets.json", CoinGeckoNormalizer()),
        ("coinpaprika_tickers.json", CoinPaprikaNormalizer()),
    ):
        for payload in json.loads((captured / name).read_text()):
            raw = RawRecord.of(
                source="x",
                source_record_id=payload["id"],
                payload=payload,
                fetched_at=datetime.now(UTC),
                run_id=1,
            )
            record = normalizer.normalize(raw)
            assert record.price_usd is not None
            assert record.price_usd > 0
            assert record.symbol == record.symbol.upper()


def test_a_negative_price_is_refused_naming_the_source_s_field() -> None:
    from datetime import UTC, datetime

    import pytest

    from adapters.http_source.coingecko import CoinGeckoNormalizer
    from domain.errors import InvalidRecord
    from domain.records import RawRecord

    coin = {**coingecko_coin(1), "current_price": -5}
    raw = RawRecord.of(
        source="coingecko", source_record_id="x", payload=coin, fetched_at=datetime.now(UTC), run_id=1
    )
    with pytest.raises(InvalidRecord, match=r"^current_price: a price cannot be negative \(-5\)$"):
        CoinGeckoNormalizer().normalize(raw)


def test_a_rename_that_reached_most_of_a_batch_is_found_and_mapped_where_it_applies() -> None:
    """A provider's rolling deploy: 60 of 61 coins say `currentPrice`, one still `current_price`."""
    coins = [coingecko_coin(i) for i in range(61)]
    renamed = [
        {("currentPrice" if key == "current_price" else key): value for key, value in coin.items()}
        for coin in coins[:60]
    ]
    report = detect_drift(COINGECKO, batch([*renamed, coins[60]]))
    [finding] = [f for f in report.findings if f.kind is DriftKind.RENAMED]
    assert (finding.field, finding.candidate, finding.auto_mapped) == ("current_price", "currentPrice", True)
    assert finding.evidence["old_name_still_in"] == 1
    assert report.remap(renamed[0])["current_price"] == coins[0]["current_price"]
    assert report.remap(coins[60]) == coins[60]  # the record that kept the old name is untouched
    assert not [f for f in report.findings if f.kind is DriftKind.REMOVED]
    # below the share, a field that is only sometimes absent is not paired
    few = detect_drift(COINGECKO, batch([*renamed[:20], *coins[20:]]))
    assert [f for f in few.findings if f.kind is DriftKind.RENAMED] == []
