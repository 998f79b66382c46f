"""CoinGecko and CoinPaprika clients over real loopback HTTP, into a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import stamina

from domain.runs import RunStatus, SourceCounters
from entrypoints.bootstrap import Kaspero, build
from entrypoints.settings import Settings
from tests.support.provider import (
    HTML_BLOCK,
    MARKETS,
    TICKERS,
    TRUNCATED,
    Fault,
    LoopbackProvider,
    loopback_provider,
)


@pytest.fixture
def provider() -> Iterator[LoopbackProvider]:
    with loopback_provider() as provider:
        yield provider


@pytest.fixture
def fast_retries() -> Iterator[None]:
    """No backoff sleeps, at most 3 attempts: the retry logic runs, the clock does not."""
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


def kaspero(database_url: str, provider: LoopbackProvider, **overrides: Any) -> Kaspero:
    values: dict[str, Any] = {
        "coingecko_base_url": f"{provider.url}/coingecko",
        "coinpaprika_base_url": f"{provider.url}/coinpaprika",
        "coingecko_per_page": 100,
        "coingecko_max_pages": 10,
        "coingecko_rate_limit_per_minute": 6000,
        "rate_limit_requests_per_minute": 6000,
        "http_timeout_seconds": 2,
        **overrides,
    }
    return build(Settings(**values), database_url)


def run(app: Kaspero, *sources: str, **kwargs: Any):
    try:
        return app.run_etl(list(sources), **kwargs)
    finally:
        app.close()


def source(run_result, name: str):
    return next(item for item in run_result.sources if item.source == name)


def scalar(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as connection:
        row = connection.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_both_sources_load_every_element_once_and_an_unchanged_rerun_writes_nothing(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    first = run(kaspero(clean_database, provider), "coinpaprika", "coingecko")
    assert first.status is RunStatus.SUCCESS, first.error
    gecko, paprika = source(first, "coingecko").counters, source(first, "coinpaprika").counters
    assert (gecko.fetched, gecko.inserted, gecko.http_requests) == (
        300,
        300,
        4,
    )  # 3 full pages + an empty one
    assert (paprika.fetched, paprika.inserted, paprika.http_requests) == (300, 300, 1)
    assert scalar(clean_database, "SELECT count(*) FROM unified_data") == 600
    assert scalar(clean_database, "SELECT count(*) FROM raw_coingecko") == 300
    assert scalar(clean_database, "SELECT count(*) FROM raw_coinpaprika") == 300
    btc = scalar(
        clean_database,
        "SELECT json_build_object('symbol', symbol, 'price', price_usd::text, 'rank', rank, 'observed', observed_at)"
        " FROM unified_data WHERE source = 'coingecko' AND source_record_id = 'bitcoin'",
    )
    assert btc["symbol"] == "BTC"
    assert btc["rank"] == 1
    assert btc["observed"].startswith("2024-03-21T06:51:54.031")

    again = run(kaspero(clean_database, provider), "coinpaprika", "coingecko")
    for name in ("coingecko", "coinpaprika"):
        counters = source(again, name).counters
        assert (counters.fetched, counters.unchanged, counters.inserted, counters.updated) == (300, 300, 0, 0)
    assert scalar(clean_database, "SELECT count(*) FROM raw_coingecko") == 300  # nothing stored twice

    provider.state.price_factor = 1.1
    moved = run(kaspero(clean_database, provider), "coingecko")
    assert source(moved, "coingecko").counters.updated == 300
    assert scalar(clean_database, "SELECT count(*) FROM raw_coingecko") == 600


def test_a_429_with_retry_after_is_waited_out_and_the_run_succeeds(
    clean_database: str, provider: LoopbackProvider
) -> None:
    provider.state.coins = 20
    provider.queue(TICKERS, Fault(status=429, headers={"Retry-After": "1"}, body=b'{"error":"slow down"}'))
    result = run(kaspero(clean_database, provider), "coinpaprika")
    assert result.status is RunStatus.SUCCESS
    counters = source(result, "coinpaprika").counters
    assert (counters.http_requests, counters.retries, counters.rate_limit_waits, counters.inserted) == (
        2,
        1,
        1,
        20,
    )
    assert len(provider.requests_to(TICKERS)) == 2
    times = provider.state.request_times
    assert times[1] - times[0] >= 0.95  # the second request came after the Retry-After second


def test_a_402_stops_only_that_source_with_a_clear_error(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.queue(MARKETS, Fault(status=402, body=b'{"error":"quota"}'))
    result = run(kaspero(clean_database, provider), "coingecko", "coinpaprika")
    assert result.status is RunStatus.PARTIAL
    gecko = source(result, "coingecko")
    assert gecko.status is RunStatus.FAILED
    assert gecko.error == (
        "coingecko: GET /coingecko/coins/markets answered 402: payment required: "
        "the plan's quota is spent or the endpoint needs a paid plan (the provider says: quota)"
    )
    assert gecko.counters.http_requests == 1  # not retried
    assert gecko.counters.retries == 0
    assert source(result, "coinpaprika").status is RunStatus.SUCCESS
    assert scalar(clean_database, "SELECT count(*) FROM unified_data WHERE source = 'coinpaprika'") == 300


@pytest.mark.parametrize(
    "fault",
    [Fault(status=500), Fault(status=503, headers={"Retry-After": "0"}), TRUNCATED, Fault(delay=2.5)],
    ids=["500", "503-retry-after", "truncated-json", "slow"],
)
def test_transient_faults_are_retried(
    clean_database: str, provider: LoopbackProvider, fast_retries: None, fault: Fault
) -> None:
    provider.state.coins = 10
    provider.queue(TICKERS, fault)
    result = run(kaspero(clean_database, provider), "coinpaprika")
    assert result.status is RunStatus.SUCCESS, result.error
    counters = source(result, "coinpaprika").counters
    assert (counters.retries, counters.inserted) == (1, 10)


def test_persistent_faults_fail_the_source_after_bounded_attempts(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.queue(TICKERS, TRUNCATED, TRUNCATED, TRUNCATED, TRUNCATED)
    result = run(kaspero(clean_database, provider), "coinpaprika")
    paprika = source(result, "coinpaprika")
    assert result.status is RunStatus.FAILED
    assert paprika.error is not None
    assert "answered 200 with invalid JSON" in paprika.error
    assert paprika.counters == SourceCounters(
        http_requests=3, retries=3, duration_ms=paprika.counters.duration_ms
    )


def test_an_html_block_page_is_refused_with_a_clear_error(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.queue(MARKETS, HTML_BLOCK)
    result = run(kaspero(clean_database, provider), "coingecko")
    error = source(result, "coingecko").error or ""
    assert "answered 403: forbidden" in error
    assert "an HTML page, not JSON" in error


def test_an_oversized_body_is_refused_without_retrying(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.queue(TICKERS, Fault(body=b"[" + b" " * (2 * 1024 * 1024) + b"]"))
    result = run(kaspero(clean_database, provider, http_max_response_mb=1), "coinpaprika")
    paprika = source(result, "coinpaprika")
    assert "exceeds the 1,048,576-byte limit" in (paprika.error or "")
    assert paprika.counters.http_requests == 1


def test_an_unreachable_port_is_retried_then_reported(clean_database: str, fast_retries: None) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        app = build(
            Settings(coinpaprika_base_url=f"http://127.0.0.1:{port}", rate_limit_requests_per_minute=6000),
            clean_database,
        )
        result = run(app, "coinpaprika")
    paprika = source(result, "coinpaprika")
    assert paprika.error is not None
    assert paprika.error.startswith("coinpaprika: cannot reach the provider")
    assert (paprika.counters.http_requests, paprika.counters.retries) == (3, 3)


def test_malformed_elements_are_quarantined_and_the_rest_load(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.state.coins = 50
    provider.state.broken = {
        3: {"id": "broken-price", "symbol": "bp", "name": "Broken", "current_price": "abc"},
        7: {"id": "no-price", "symbol": "np", "name": "No price", "current_price": None},
        9: {"symbol": "noid"},
        11: {"id": "nul-name", "symbol": "nn", "name": "Bit\u0000coin", "current_price": 1.5},
    }
    result = run(kaspero(clean_database, provider), "coingecko")
    counters = source(result, "coingecko").counters
    assert (counters.fetched, counters.inserted, counters.quarantined) == (50, 46, 4)
    with psycopg.connect(clean_database) as connection:
        reasons = dict(
            connection.execute("SELECT source_record_id, reason FROM quarantine ORDER BY 1").fetchall()
        )
    assert reasons["broken-price"] == "current_price: not a number: 'abc'"
    assert reasons["no-price"] == "current_price: required value is missing"
    assert reasons["nul-name"].startswith("contains a NUL character (U+0000)")
    assert [reason for key, reason in reasons.items() if key.startswith("invalid:")] == [
        "element is not an object with an id"
    ]


def test_a_coin_seen_on_two_pages_of_one_run_is_loaded_once(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.state.shift_after_first_page = True
    result = run(kaspero(clean_database, provider), "coingecko")
    counters = source(result, "coingecko").counters
    assert counters.fetched == 299  # one coin twice (counted once), one missed by the rank swap
    assert scalar(clean_database, "SELECT count(*) FROM unified_data") == 299


def test_keys_travel_in_the_right_headers_and_never_appear_in_errors(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.state.coins = 5
    # a provider echoing the refused key in its error: its words are kept, the key is not
    provider.queue(MARKETS, Fault(status=401, body=b'{"error":"bad key cg-secret-123"}'))
    app = kaspero(clean_database, provider, coingecko_api_key="cg-secret-123", api_key="shared-secret-456")
    result = run(app, "coingecko", "coinpaprika")
    [(_, _, gecko_headers)] = provider.requests_to(MARKETS)
    [(_, _, paprika_headers)] = provider.requests_to(TICKERS)
    assert gecko_headers.get("x-cg-demo-api-key") == "cg-secret-123"
    assert paprika_headers.get("Authorization") == "shared-secret-456"
    assert "cg-secret-123" not in repr(result)
    assert "answered 401: the API key is missing or was refused" in (source(result, "coingecko").error or "")
    assert "(the provider says: bad key [redacted])" in (source(result, "coingecko").error or "")


def test_a_run_that_died_mid_snapshot_resumes_at_the_next_page(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    failed = run(kaspero(clean_database, provider), "coingecko", fail_after=150)
    assert failed.status is RunStatus.FAILED
    assert "ETL_FAIL_AFTER" in (failed.error or "")
    assert scalar(clean_database, "SELECT count(*) FROM unified_data") == 100  # page 1 only
    assert scalar(clean_database, "SELECT cursor->>'page' FROM checkpoints") == "1"

    pages_before = len(provider.requests_to(MARKETS))
    resumed = run(kaspero(clean_database, provider), "coingecko")
    pages = [int(query["page"]) for _, query, _ in provider.requests_to(MARKETS)[pages_before:]]
    assert pages == [2, 3, 4]
    assert source(resumed, "coingecko").counters.inserted == 200
    assert scalar(clean_database, "SELECT count(*) FROM unified_data") == 300
    assert scalar(clean_database, "SELECT (cursor->>'complete')::boolean FROM checkpoints") is True

    fresh = run(kaspero(clean_database, provider), "coingecko")  # after a complete run: page 1 again
    assert source(fresh, "coingecko").counters.unchanged == 300


def test_a_renamed_field_is_auto_mapped_so_data_keeps_flowing_and_the_finding_is_kept(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.state.coins = 40
    first = run(kaspero(clean_database, provider), "coingecko")
    assert source(first, "coingecko").counters.drift_findings == 0
    provider.state.renamed = {"current_price": "currentPrice"}
    provider.state.price_factor = 1.01
    result = run(kaspero(clean_database, provider), "coingecko")
    counters = source(result, "coingecko").counters
    assert result.status is RunStatus.SUCCESS
    assert (counters.updated, counters.quarantined, counters.drift_findings) == (40, 0, 1)
    with psycopg.connect(clean_database) as connection:
        finding = connection.execute(
            "SELECT kind, field, candidate, auto_mapped, confidence, seen_count, evidence"
            " FROM schema_drifts WHERE source = 'coingecko'"
        ).fetchall()
    [(kind, field, candidate, auto_mapped, confidence, seen_count, evidence)] = finding
    assert (kind, field, candidate, auto_mapped, seen_count) == (
        "renamed",
        "current_price",
        "currentPrice",
        True,
        1,
    )
    assert float(confidence) >= 0.8
    assert evidence["value_agreement"] == 1.0  # last run's prices, 1% away: the same place
    moved = scalar(clean_database, "SELECT price_usd FROM unified_data WHERE source_record_id = 'bitcoin'")
    assert moved > 0


def test_a_required_field_gone_without_a_likely_rename_quarantines_with_the_reason(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    provider.state.coins = 10
    provider.state.renamed = {"current_price": "zzz"}
    result = run(kaspero(clean_database, provider), "coingecko")
    counters = source(result, "coingecko").counters
    assert (counters.inserted, counters.quarantined) == (0, 10)
    with psycopg.connect(clean_database) as connection:
        reasons = connection.execute("SELECT DISTINCT reason FROM quarantine").fetchall()
    assert reasons == [("current_price: required value is missing",)]
    with psycopg.connect(clean_database) as connection:
        kinds = connection.execute("SELECT kind, field FROM schema_drifts ORDER BY kind").fetchall()
    assert kinds == [("added", "zzz"), ("removed", "current_price")]


def test_half_the_coins_and_a_ten_times_slower_run_are_flagged(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    from application.comparison import anomalies
    from entrypoints.bootstrap import build as build_app

    provider.state.coins = 200
    durations = []
    for _ in range(5):
        normal = run(kaspero(clean_database, provider), "coinpaprika")
        durations.append(source(normal, "coinpaprika").counters.duration_ms)
    provider.state.coins = 100
    half = run(kaspero(clean_database, provider), "coinpaprika")
    provider.state.coins = 200
    provider.queue(
        TICKERS, Fault(delay=max(12 * max(durations), 500) / 1000)
    )  # at least 10x, and 250 ms more
    slow = run(kaspero(clean_database, provider), "coinpaprika")

    app = build_app(Settings(), clean_database)
    try:
        flagged_half = {item.metric for item in anomalies(app.uow_factory, half.id)}
        flagged_slow = {item.metric for item in anomalies(app.uow_factory, slow.id)}
    finally:
        app.close()
    assert "volume" in flagged_half
    assert "duration_ms" in flagged_slow
    assert "volume" not in flagged_slow  # the half run is one outlier among six: the median holds


def test_comparing_two_runs_shows_vanished_coins_and_price_moves(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    from application.comparison import compare
    from entrypoints.bootstrap import build as build_app

    provider.state.coins = 100
    first = run(kaspero(clean_database, provider), "coinpaprika")
    provider.state.coins = 50
    provider.state.price_factor = 1.25
    second = run(kaspero(clean_database, provider), "coinpaprika")
    app = build_app(Settings(), clean_database)
    try:
        comparison = compare(app.uow_factory, first.id, second.id, price_move_pct=10)
    finally:
        app.close()
    [delta] = comparison.sources
    assert delta.data is not None
    assert (delta.data.in_a, delta.data.in_b, delta.data.vanished, delta.data.added) == (100, 50, 50, 0)
    assert delta.data.median_price_move_pct == pytest.approx(25, abs=0.01)
    assert delta.data.moved_over_threshold == 50
    assert "volume" in {anomaly.metric for anomaly in comparison.anomalies}


def test_providers_disagreeing_on_top_coins_are_flagged_on_the_run(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    from application.comparison import anomalies
    from entrypoints.bootstrap import build as build_app

    provider.state.coins = 20
    agreeing = run(kaspero(clean_database, provider), "coinpaprika", "coingecko")
    provider.state.price_factor = 1.2  # CoinGecko now says 20% more than CoinPaprika said
    disagreeing = run(kaspero(clean_database, provider), "coingecko")
    app = build_app(Settings(), clean_database)
    try:
        before = [
            a for a in anomalies(app.uow_factory, agreeing.id) if a.metric.startswith("price_divergence")
        ]
        after = [
            a for a in anomalies(app.uow_factory, disagreeing.id) if a.metric.startswith("price_divergence")
        ]
    finally:
        app.close()
    assert before == []
    assert len(after) == 20  # every coin both providers have: paired by canonical asset, ranked or not
    assert {a.severity.value for a in after} == {"warning"}


def test_provider_answers_are_counted_by_status(
    clean_database: str, provider: LoopbackProvider, fast_retries: None
) -> None:
    from application.operations import etl_figures
    from entrypoints.bootstrap import build as build_app

    provider.state.coins = 10
    provider.queue(TICKERS, Fault(status=503), Fault(status=429, headers={"Retry-After": "0"}))
    provider.queue(MARKETS, Fault(status=402))
    run(kaspero(clean_database, provider), "coinpaprika", "coingecko")
    app = build_app(Settings(), clean_database)
    try:
        totals = etl_figures(app.uow_factory).responses
    finally:
        app.close()
    assert totals == {
        ("coinpaprika", "503"): 1,
        ("coinpaprika", "429"): 1,
        ("coinpaprika", "200"): 1,
        ("coingecko", "402"): 1,
    }
