"""Run comparison and robust anomaly scoring."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.comparison import Severity, compare_runs, robust_score, score_run
from domain.runs import EtlRun, RunStatus, RunTrigger, SourceCounters, SourceRun

AT = datetime(2024, 1, 1, tzinfo=UTC)


def run(run_id: int, **sources: SourceCounters) -> EtlRun:
    return EtlRun(
        id=run_id,
        trigger=RunTrigger.SCHEDULE,
        started_at=AT,
        status=RunStatus.SUCCESS,
        finished_at=AT,
        sources=tuple(SourceRun(name, counters, RunStatus.SUCCESS) for name, counters in sources.items()),
    )


counters = st.builds(
    SourceCounters,
    fetched=st.integers(0, 10**6),
    inserted=st.integers(0, 10**6),
    quarantined=st.integers(0, 1000),
    http_requests=st.integers(0, 100),
    retries=st.integers(0, 100),
    duration_ms=st.integers(0, 10**6),
    drift_findings=st.integers(0, 10),
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["coinpaprika", "coingecko", "csv:x"]), counters, min_size=1))
def test_a_run_compared_with_itself_has_no_anomalies_and_no_deltas(
    sources: dict[str, SourceCounters],
) -> None:
    same = run(1, **sources)
    comparison = compare_runs(same, same)
    assert comparison.anomalies == ()
    assert all(set(delta.deltas.values()) == {0} for delta in comparison.sources)


def test_half_the_coins_is_a_volume_anomaly() -> None:
    history = [run(i, coinpaprika=SourceCounters(fetched=2500 + i, duration_ms=100 + i)) for i in range(1, 6)]
    half = run(6, coinpaprika=SourceCounters(fetched=1250, duration_ms=103))
    [anomaly] = score_run(half, history)
    assert (anomaly.source, anomaly.metric, anomaly.observed, anomaly.baseline) == (
        "coinpaprika",
        "volume",
        1250,
        2503,
    )
    assert anomaly.score < -7
    assert anomaly.severity is Severity.CRITICAL
    assert "below the baseline median" in anomaly.explanation


def test_ten_times_slower_is_a_duration_anomaly() -> None:
    history = [
        run(i, coingecko=SourceCounters(fetched=1000, duration_ms=d))
        for i, d in enumerate([900, 1100, 1000, 950, 1050], 1)
    ]
    slow = run(9, coingecko=SourceCounters(fetched=1000, duration_ms=10_000))
    [anomaly] = score_run(slow, history)
    assert (anomaly.metric, anomaly.severity) == ("duration_ms", Severity.CRITICAL)


def test_ordinary_variation_is_not_an_anomaly() -> None:
    history = [
        run(i, csv=SourceCounters(fetched=f, duration_ms=d))
        for i, (f, d) in enumerate([(100, 50), (104, 55), (98, 47), (101, 52)], 1)
    ]
    assert score_run(run(5, csv=SourceCounters(fetched=103, duration_ms=54)), history) == []


def test_robust_score_resists_an_earlier_outlier() -> None:
    median, score = robust_score(100, [100, 101, 99, 100, 10_000])
    assert median == 100
    assert abs(score) < 1
    assert robust_score(110, [100]) == (100, 2.0)  # no spread: units of 5% of the median


def test_deltas_cover_sources_in_either_run() -> None:
    a = run(1, csv=SourceCounters(fetched=10, inserted=10))
    b = run(2, csv=SourceCounters(fetched=12, inserted=2, unchanged=10), coingecko=SourceCounters(fetched=5))
    comparison = compare_runs(a, b)
    by_source = {delta.source: delta for delta in comparison.sources}
    assert by_source["csv"].deltas["inserted"] == -8
    assert by_source["csv"].deltas["unchanged"] == 10
    assert by_source["coingecko"].in_a is None
    assert by_source["coingecko"].deltas["fetched"] == 5


def test_sources_disagreeing_on_a_price_are_flagged_and_agreeing_ones_are_not() -> None:
    from domain.comparison import PriceQuote, price_divergence

    quotes = [
        PriceQuote("BTC", "coingecko", 60000.0, 1),
        PriceQuote("BTC", "coinpaprika", 60300.0, 1),
        PriceQuote("ETH", "coingecko", 3000.0, 2),
        PriceQuote("ETH", "coinpaprika", 3600.0, 2),
        PriceQuote("SOL", "coingecko", 100.0, 5),  # one source only: nothing to compare
    ]
    [anomaly] = price_divergence(quotes, threshold_pct=5)
    assert (anomaly.metric, anomaly.source) == ("price_divergence:ETH", "coingecko,coinpaprika")
    assert anomaly.observed == pytest.approx(600 / 3300 * 100, abs=0.01)
    assert "coingecko 3000, coinpaprika 3600" in anomaly.explanation


def test_prices_observed_far_apart_in_time_are_not_a_divergence() -> None:
    from datetime import UTC, datetime, timedelta

    from domain.comparison import PriceQuote, price_divergence

    now = datetime(2026, 1, 1, tzinfo=UTC)
    live = PriceQuote("BTC", "coingecko", 91000.0, 1, 1, now)
    old = PriceQuote("BTC", "coinpaprika", 27000.0, 1, 1, now - timedelta(days=30))
    close = PriceQuote("BTC", "coinpaprika", 60000.0, 1, 1, now - timedelta(minutes=5))
    window = timedelta(minutes=15)
    assert price_divergence([live, old], 5.0, window) == []
    [found] = price_divergence([live, close], 5.0, window)
    assert found.metric == "price_divergence:BTC#1"
    assert len(price_divergence([live, old], 5.0, None)) == 1  # without a window, as before


def _source_run(
    fetched: int, quarantined: int = 0, status: RunStatus = RunStatus.SUCCESS, drift: int = 0
) -> SourceRun:
    return SourceRun(
        "csv:prices", SourceCounters(fetched=fetched, quarantined=quarantined, drift_findings=drift), status
    )


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.integers(min_value=0, max_value=1000))
def test_a_quarantine_rate_jumping_from_a_calm_zero_baseline_is_flagged_by_its_size(
    runs: int, quarantined: int
) -> None:
    from domain.comparison import score_source

    history = [_source_run(1000) for _ in range(runs)]
    found = {a.metric: a for a in score_source("csv:prices", _source_run(1000, quarantined), history)}
    rate = quarantined / 1000
    if rate < 0.10:
        assert "quarantine_rate" not in found
    else:
        assert found["quarantine_rate"].severity is (Severity.CRITICAL if rate >= 0.5 else Severity.WARNING)


def test_zero_to_98_percent_quarantined_a_failure_and_three_drift_findings_are_flagged() -> None:
    from domain.comparison import score_source

    history = [_source_run(61) for _ in range(5)]
    found = {
        a.metric: a
        for a in score_source("coingecko", _source_run(61, 60, RunStatus.FAILED, drift=3), history)
    }
    assert found["quarantine_rate"].severity is Severity.CRITICAL
    assert found["error_rate"].severity is Severity.CRITICAL
    assert found["drift_findings"].severity is Severity.WARNING
    assert "up from 0 in each of the last 5 run(s)" in found["quarantine_rate"].explanation
    assert score_source("coingecko", _source_run(61), history) == []  # calm stays calm


def test_a_file_read_whole_then_untouched_is_no_volume_anomaly() -> None:
    from domain.comparison import score_source

    loaded = SourceRun(
        "csv:prices", SourceCounters(fetched=540, inserted=540, duration_ms=900), RunStatus.SUCCESS
    )
    untouched = SourceRun("csv:prices", SourceCounters(), RunStatus.SUCCESS)
    assert score_source("csv:prices", untouched, [loaded]) == []
    api_before = SourceRun("coingecko", SourceCounters(fetched=540), RunStatus.SUCCESS)
    api_empty = SourceRun("coingecko", SourceCounters(fetched=0), RunStatus.SUCCESS)
    assert [a.metric for a in score_source("coingecko", api_empty, [api_before])] == ["volume"]


def test_without_ids_the_newest_run_is_compared_with_the_last_run_of_its_sources() -> None:
    """A scheduler records one run per source kind: runs of `a` and `b` alternate, and the run
    just before the newest shares nothing with it."""
    from adapters.memory.sources import InMemoryMarketNormalizer, InMemorySourceReader
    from adapters.memory.state import InMemoryStore
    from adapters.memory.store import InMemoryUnitOfWork
    from application.comparison import compare
    from application.errors import NotFound
    from application.ingest import run_etl
    from application.pipeline import SourcePipeline
    from application.runs import run_before

    store = InMemoryStore()
    uow = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    now = lambda: datetime(2024, 5, 1, tzinfo=UTC)  # noqa: E731

    def run(source: str) -> int:
        page = [{"id": "c1", "symbol": "btc", "price": "1", "at": "2024-05-01T00:00:00Z"}]
        reader = InMemorySourceReader(source, [page])
        return run_etl([SourcePipeline(reader, InMemoryMarketNormalizer())], uow, now, RunTrigger.SCHEDULE).id

    first = run("a")
    with pytest.raises(NotFound, match=f"run {first} is the first run of its sources"):
        compare(uow)
    other = run("b")
    with pytest.raises(NotFound, match=f"run {other} is the first run of its sources"):
        compare(uow)  # b's first run: a's run before it is no comparison
    assert run_before(uow, other) is None
    newest = run("a")
    comparison = compare(uow)
    assert (comparison.run_a.id, comparison.run_b.id) == (first, newest)
    assert [delta.source for delta in comparison.sources] == ["a"]
    assert all(delta.in_a is not None and delta.in_b is not None for delta in comparison.sources)
    assert run_before(uow, newest).id == first


def test_suspect_bars_in_a_sources_first_run_are_news_and_none_are_not() -> None:
    [anomaly] = score_run(run(1, **{"binance:1d": SourceCounters(fetched=30, suspect_bars=1)}), [])
    assert (anomaly.source, anomaly.metric, anomaly.observed, anomaly.baseline) == (
        "binance:1d",
        "suspect_bars",
        1,
        0,
    )
    assert score_run(run(1, **{"binance:1d": SourceCounters(fetched=30)}), []) == []


def test_a_history_pass_of_fewer_windows_than_the_last_is_no_volume_anomaly() -> None:
    history = [
        run(i, **{"coingecko:1d": SourceCounters(fetched=20 * 365, duration_ms=9000)}) for i in range(1, 6)
    ]
    short = run(6, **{"coingecko:1d": SourceCounters(fetched=365, duration_ms=400)})
    assert score_run(short, history) == []
    # a snapshot that read a twentieth of its coins still is one
    snapshots = [run(i, coingecko=SourceCounters(fetched=7300, duration_ms=9000)) for i in range(1, 6)]
    assert {
        a.metric for a in score_run(run(6, coingecko=SourceCounters(fetched=365, duration_ms=400)), snapshots)
    } >= {"volume"}
