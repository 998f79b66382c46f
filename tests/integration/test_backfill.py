"""History backfill from the loopback CoinGecko and CoinPaprika into a real PostgreSQL: stored
once, resumed, plan limits reported, gaps repaired, confirmed-empty ranges not asked again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import stamina

from domain.backfill import JobState
from domain.runs import RunTrigger
from entrypoints.bootstrap import Kaspero, build
from entrypoints.settings import Settings
from tests.support.provider import LoopbackProvider, loopback_provider

SINCE = datetime(2021, 1, 1, tzinfo=UTC)
UNTIL = datetime(2024, 1, 1, tzinfo=UTC)  # three years: 1,095 days
DAYS = (UNTIL - SINCE).days
CHART = "/coingecko/coins/{}/market_chart/range"
OHLCV = "/coinpaprika/coins/{}/ohlcv/historical"


@pytest.fixture
def provider() -> Iterator[LoopbackProvider]:
    with loopback_provider() as provider:
        provider.state.coins = 8
        provider.state.now = UNTIL
        yield provider


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    with stamina.set_testing(True, attempts=2, cap=True):
        yield


def kaspero(database_url: str, provider: LoopbackProvider, **overrides: Any) -> Kaspero:
    values: dict[str, Any] = {
        "coingecko_base_url": f"{provider.url}/coingecko",
        "coinpaprika_base_url": f"{provider.url}/coinpaprika",
        "coingecko_rate_limit_per_minute": 60_000,
        "rate_limit_requests_per_minute": 60_000,
        "coingecko_history_days": 0,
        "coinpaprika_history_days": 0,
        "http_timeout_seconds": 5,
        **overrides,
    }
    return build(Settings(**values), database_url)


def with_assets(app: Kaspero) -> None:
    """The assets and each provider's id of them, as a snapshot run of each brings them."""
    app.run_etl(["coingecko", "coinpaprika"], RunTrigger.CLI)


def bars(database_url: str, source: str) -> list[tuple[str, datetime, str]]:
    with psycopg.connect(database_url) as connection:
        return [
            (symbol, observed_at, str(price))
            for symbol, observed_at, price in connection.execute(
                "SELECT a.symbol, m.observed_at, m.price_usd FROM market_history m JOIN assets a ON a.id = m.asset_id "
                "WHERE m.source = %s ORDER BY 1, 2",
                (source,),
            )
        ]


def _assets(database_url: str) -> list[tuple[int, str]]:
    with psycopg.connect(database_url) as connection:
        return [(int(i), str(symbol)) for i, symbol in connection.execute("SELECT id, symbol FROM assets")]


def work(app: Kaspero, job_id: int) -> None:
    while app.work_backfill() is not None:
        pass
    job = app.backfills.job(job_id)
    assert job is not None
    assert job.finished_at is not None, job


def test_three_years_of_three_assets_from_each_provider_are_stored_once(
    clean_database: str, provider: LoopbackProvider
) -> None:
    app = kaspero(clean_database, provider)
    try:
        with_assets(app)
        job_id = app.backfill(["BTC", "ETH", "SOL"], ["coingecko", "coinpaprika"], "1d", SINCE, UNTIL)
        work(app, job_id)
        job = app.backfills.job(job_id)
        assert job is not None
        assert job.state is JobState.SUCCESS, job
        # CoinGecko: 365-day windows (daily granularity needs more than 90 days): 3 a coin;
        # CoinPaprika's daily bars: 366 a request, 3 a coin
        assert job.windows.done == 3 * 3 + 3 * 3
        assert len(provider.requests_to(CHART.format("bitcoin"))) == 3
        assert len(provider.requests_to(OHLCV.format("btc-bitcoin"))) == 3
        for source in ("coingecko:1d", "coinpaprika:1d"):
            stored = bars(clean_database, source)
            assert len(stored) == 3 * DAYS
            assert len(set(stored)) == len(stored)
            # value by value against what the provider served
            first = next(row for row in stored if row[0] == "ETH")
            assert first[1] == SINCE
            assert float(first[2]) == provider.state.price(1, SINCE)
        # the lineage every source has: a raw payload per bar, the run that stored it, counters
        with psycopg.connect(clean_database) as connection:
            raws = connection.execute(
                "SELECT count(*) FROM raw_coingecko WHERE source = 'coingecko:1d'"
            ).fetchone()
            runs = connection.execute(
                "SELECT r.trigger, s.inserted FROM etl_run_sources s JOIN etl_runs r ON r.id = s.run_id "
                "WHERE s.source = 'coingecko:1d'"
            ).fetchall()
        assert raws == (3 * DAYS,)
        assert runs == [("backfill", 3 * DAYS)]
        with psycopg.connect(clean_database) as connection:
            # what a run saw is kept for comparing a provider's snapshots, not its history
            kept = connection.execute("SELECT DISTINCT source FROM run_observations ORDER BY 1").fetchall()
        assert kept == [("coingecko",), ("coinpaprika",)]
        assert job.bars == 2 * 3 * DAYS

        # the same backfill again: a new job (the first is finished), nothing stored twice
        again = app.backfill(["BTC", "ETH", "SOL"], ["coingecko", "coinpaprika"], "1d", SINCE, UNTIL)
        assert again != job_id
        work(app, again)
        assert len(bars(clean_database, "coingecko:1d")) == 3 * DAYS
    finally:
        app.close()


def test_a_range_beyond_the_plan_is_refused_with_its_limit_and_the_allowed_part_loads(
    clean_database: str, provider: LoopbackProvider
) -> None:
    now = datetime.now(UTC)
    until = datetime(now.year, now.month, now.day, tzinfo=UTC)
    since = until - timedelta(days=DAYS)
    provider.state.now, provider.state.history_days = until, 365
    # the provider's own refusal: the setting says no limit (as a user with a free key may think)
    app = kaspero(clean_database, provider)
    try:
        with_assets(app)
        job_id = app.backfill(["BTC"], ["coingecko", "coinpaprika"], "1d", since, until)
        work(app, job_id)
        job = app.backfills.job(job_id)
        assert job is not None
        assert job.state is JobState.PARTIAL
        assert job.windows.refused == 2 + 2  # the windows of each that reach past the year
        assert job.windows.done == 1 + 1
        assert any("365 days" in error and "COINGECKO_HISTORY_DAYS" in error for error in job.errors), (
            job.errors
        )
        assert any(
            "not allowed in this plan" in error and "COINPAPRIKA_HISTORY_DAYS" in error
            for error in job.errors
        )
        assert len(bars(clean_database, "coingecko:1d")) == 365
    finally:
        app.close()
    # with the plan's reach set, nothing beyond it is asked: one line says what was left out
    provider.state.requests.clear()
    app = kaspero(clean_database, provider, coingecko_history_days=365, coinpaprika_history_days=365)
    try:
        job_id = app.backfill(["ETH"], ["coingecko"], "1d", since, until)
        work(app, job_id)
        job = app.backfills.job(job_id)
        assert job is not None
        assert job.windows.refused == 0
        assert job.windows.done == 1
        assert job.state is JobState.PARTIAL
        (problem,) = job.problems
        assert problem.startswith("coingecko ETH: history before ")
        assert problem.endswith(" not asked: the plan reaches 365 days back (COINGECKO_HISTORY_DAYS)")
        assert len(provider.requests_to(CHART.format("ethereum"))) == 1
    finally:
        app.close()


def test_gaps_are_found_after_bars_are_deleted_and_only_they_are_fetched(
    clean_database: str, provider: LoopbackProvider
) -> None:
    app = kaspero(clean_database, provider)
    try:
        with_assets(app)
        work(app, app.backfill(["BTC"], ["coinpaprika"], "1d", SINCE, UNTIL))
        hole = (datetime(2022, 3, 1, tzinfo=UTC), datetime(2022, 3, 11, tzinfo=UTC))
        with psycopg.connect(clean_database) as connection:
            # the bars, which are their records (the triggers fold the candles they were in again)
            connection.execute(
                "DELETE FROM unified_data WHERE source = 'coinpaprika:1d' AND observed_at >= %s AND observed_at < %s",
                hole,
            )
        btc = app.backfills.jobs(1)[0]
        coverage = app.coverage.covered(1, btc.request.interval, "coinpaprika:1d", SINCE, UNTIL)
        assert [(span.start, span.end) for span in coverage["coinpaprika:1d"]] == [
            (SINCE, hole[0]),
            (hole[1], UNTIL),
        ]
        provider.state.requests.clear()
        job_id = app.backfill(["BTC"], ["coinpaprika"], "1d", SINCE, UNTIL, gaps_only=True)
        work(app, job_id)
        asked = provider.requests_to(OHLCV.format("btc-bitcoin"))
        assert [(query["start"], query["end"]) for _, query, _ in asked] == [
            ("2022-03-01T00:00:00Z", "2022-03-11T00:00:00Z")
        ]
        assert len(bars(clean_database, "coinpaprika:1d")) == DAYS
    finally:
        app.close()


def test_a_range_the_provider_confirmed_empty_is_not_asked_again(
    clean_database: str, provider: LoopbackProvider
) -> None:
    provider.state.listed_from = datetime(2023, 6, 1, tzinfo=UTC)  # nothing before its listing
    app = kaspero(clean_database, provider)
    try:
        with_assets(app)
        first = app.backfill(["SOL"], ["coingecko"], "1d", SINCE, UNTIL)
        work(app, first)
        job = app.backfills.job(first)
        assert job is not None
        assert (job.windows.empty, job.windows.done) == (2, 1)
        provider.state.requests.clear()
        second = app.backfill(["SOL"], ["coingecko"], "1d", SINCE, UNTIL)
        work(app, second)
        asked = provider.requests_to(CHART.format("solana"))
        # the two empty years are not asked again; the other window is
        assert len(asked) == 1
        # coverage says so: the empty years are neither held nor missing
        from application.assets import asset_coverage

        sol = app.backfills.job(second).request  # type: ignore[union-attr]
        asset_id = next(i for i, symbol in _assets(clean_database) if symbol == "SOL")
        found = asset_coverage(app.uow_factory, app.coverage, asset_id, sol.interval, "coingecko:1d", SINCE,
                               UNTIL - timedelta(microseconds=1), app.backfills)  # fmt: skip
        (source,) = found.sources
        assert [(span.start, span.end) for span in source.empty] == [
            (SINCE, SINCE + timedelta(days=365)),
            (SINCE + timedelta(days=365), SINCE + timedelta(days=730)),
        ]
        listed = datetime(2023, 6, 1, tzinfo=UTC)
        assert [(span.start, span.end) for span in source.covered] == [(listed, UNTIL)]
        # what is missing: only the months between the empty years and the listing
        assert [(span.start, span.end) for span in source.gaps] == [(SINCE + timedelta(days=730), listed)]
        assert all(int(query["to"]) > datetime(2023, 1, 1, tzinfo=UTC).timestamp() for _, query, _ in asked)
    finally:
        app.close()


def test_the_job_explains_what_cannot_be_planned(clean_database: str, provider: LoopbackProvider) -> None:
    app = kaspero(clean_database, provider)
    try:
        with_assets(app)
        job_id = app.backfill(["BTC", "NOPE"], ["coingecko"], "1d", UNTIL - timedelta(days=30), UNTIL)
        job = app.backfills.job(job_id)
        assert job is not None
        assert job.problems == (
            "NOPE: no asset has this symbol yet (a provider's snapshot or a file brings it)",
        )
    finally:
        app.close()


def test_the_schedulers_keep_chosen_history_complete_with_one_job_at_a_time(
    clean_database: str, provider: LoopbackProvider
) -> None:
    now = datetime.now(UTC)
    provider.state.now = now
    app = kaspero(
        clean_database, provider, history_keep_symbols=("BTC", "ETH"), history_keep_sources=("coinpaprika",),
        history_keep_days=30,
    )  # fmt: skip
    try:
        with_assets(app)
        (first,) = app.keep_history()
        assert app.keep_history() == [first]  # unfinished: the same job, not a second one
        work(app, first)
        job = app.backfills.job(first)
        assert job is not None
        assert (job.state, job.request.gaps_only, job.windows.total) == (JobState.SUCCESS, True, 2)
        # complete now: the next turn plans a job with nothing to ask for
        (second,) = app.keep_history()
        assert second != first
        job = app.backfills.job(second)
        assert job is not None
        assert (job.state, job.windows.total) == (JobState.SUCCESS, 0)
        # a day lost (retention, a restore): the next turn asks for that day only
        day = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=5)
        with psycopg.connect(clean_database) as connection:
            connection.execute(
                "DELETE FROM unified_data WHERE source = 'coinpaprika:1d' AND observed_at = %s", (day,)
            )
        provider.state.requests.clear()
        (third,) = app.keep_history()
        work(app, third)
        asked = provider.requests_to(OHLCV.format("btc-bitcoin")) + provider.requests_to(
            OHLCV.format("eth-ethereum")
        )
        # that day of each asset (both lost it), and nothing else
        assert [(query["start"], query["end"]) for _, query, _ in asked] == 2 * [
            (f"{day:%Y-%m-%d}T00:00:00Z", f"{day + timedelta(days=1):%Y-%m-%d}T00:00:00Z")
        ]
    finally:
        app.close()


def test_a_window_far_off_the_other_sources_is_refused_with_the_figures_and_nothing_stored(
    clean_database: str, provider: LoopbackProvider
) -> None:
    since, until = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 3, 1, tzinfo=UTC)
    app = kaspero(clean_database, provider)
    try:
        with_assets(app)
        work(app, app.backfill(["BTC"], ["coinpaprika"], "1d", since, until))
        day = since
        while day < until:  # CoinGecko's every price three times the others': another coin
            provider.state.skewed[("coingecko", 0, day)] = 3.0
            day += timedelta(days=1)
        job_id = app.backfill(["BTC"], ["coingecko"], "1d", since, until)
        work(app, job_id)
        job = app.backfills.job(job_id)
    finally:
        app.close()
    assert job is not None
    assert (job.state, job.windows.refused, job.bars) == (JobState.FAILED, 1, 0)
    (error,) = job.errors
    assert error.startswith(
        "coingecko:1d: prices differ from 1 other source of BTC (coinpaprika:1d) by +200 %"
    )
    assert "the provider's id of this asset may name another coin" in error
    assert bars(clean_database, "coingecko:1d") == []


def test_a_backfill_says_nothing_of_a_sources_health(clean_database: str, provider: LoopbackProvider) -> None:
    """A failing snapshot source stays degraded however well its history backfills: health judges
    the scheduled runs (a job says how its windows went)."""
    from application.status import check_health
    from domain.health import Health
    from tests.support.provider import MARKETS, Fault

    app = kaspero(clean_database, provider)
    try:
        with_assets(app)
        provider.queue(MARKETS, *[Fault(status=401, body=b'{"error":"bad key"}')] * 3)
        failed = app.run_etl(["coingecko"], RunTrigger.CLI)
        work(app, app.backfill(["BTC"], ["coingecko"], "1d", UNTIL - timedelta(days=100), UNTIL))
        report = check_health(
            app.probe, app.uow_factory, app.ledger, {"coingecko": timedelta(minutes=5)}, datetime.now(UTC)
        )
    finally:
        app.close()
    assert failed.status.value == "failed"
    assert report.status is Health.DEGRADED
    (kind,) = report.sources
    assert [state.source for state in kind.sources] == ["coingecko"]
    assert kind.reasons[0].startswith(
        "coingecko failed: coingecko: GET /coingecko/coins/markets answered 401"
    )


def test_the_last_window_of_a_killed_worker_is_taken_again(
    clean_database: str, provider: LoopbackProvider
) -> None:
    """A worker killed on a job's last window leaves it `running` under a run nobody holds: the
    next pass closes that run first, so the window waits again and is worked to its end."""
    app = kaspero(clean_database, provider, run_abandon_grace_seconds=0)
    try:
        with_assets(app)
        job_id = app.backfill(["BTC"], ["coinpaprika"], "1d", UNTIL - timedelta(days=30), UNTIL)
        with app.uow_factory() as uow:  # a run whose process is gone: recorded, its lock free
            dead = uow.runs.start(RunTrigger.CLI, datetime.now(UTC) - timedelta(minutes=5))
            uow.commit()
        ((kind, interval, _),) = app.backfills.pending()
        assert app.backfills.claim(kind, interval, dead) is not None
        assert app.backfills.pending() == []
        run = app.work_backfill()
        job = app.backfills.job(job_id)
    finally:
        app.close()
    assert run is not None
    assert job is not None
    assert (job.state, job.bars) == (JobState.SUCCESS, 30)


def test_what_no_source_can_answer_is_refused_with_the_setting(
    clean_database: str, provider: LoopbackProvider
) -> None:
    from application.errors import InvalidQuery

    # no enabled kind has history: nothing is asked of a provider nobody enabled
    app = kaspero(clean_database, provider, etl_sources=("csv",))
    try:
        with pytest.raises(InvalidQuery, match=r"no enabled source has history \(ETL_SOURCES\)"):
            app.backfill(["BTC"])
    finally:
        app.close()
    # the schedulers' keeping asks an interval CoinGecko has not: the same refusal reaches them
    app = kaspero(clean_database, provider, history_keep_symbols=("BTC",), history_keep_intervals=("5m",),
                  history_keep_sources=("coingecko",))  # fmt: skip
    try:
        with pytest.raises(InvalidQuery, match="coingecko has no 5m history"):
            app.keep_history()
    finally:
        app.close()
