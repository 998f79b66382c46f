"""A provider's values PostgreSQL cannot hold, or no asset can have, are quarantined per element
with the reason; the rest of the page loads, the pass goes on to the next source, and no run is
left `running` (issue: one NaN once ended the whole pass with a traceback)."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from domain.runs import RunStatus
from entrypoints.bootstrap import build
from entrypoints.settings import Settings
from tests.support.provider import HOSTILE, MARKETS, Fault, coingecko_coin, hostile_page, loopback_provider


def _both_providers(url: str, database_url: str, **more: Any) -> Any:
    """One pass of CoinGecko then CoinPaprika, both served by the loopback provider at `url`."""
    app = build(
        Settings(
            coingecko_base_url=f"{url}/coingecko", coinpaprika_base_url=f"{url}/coinpaprika",
            coingecko_rate_limit_per_minute=6000, rate_limit_requests_per_minute=6000, **more,
        ),  # type: ignore[call-arg]
        database_url,
    )  # fmt: skip
    try:
        return app.run_etl(["coingecko", "coinpaprika"])
    finally:
        app.close()


def test_hostile_elements_are_quarantined_one_by_one_and_the_pass_goes_on(clean_database: str) -> None:
    good = 20
    with loopback_provider() as provider:
        provider.state.coins = good + len(HOSTILE)
        provider.queue(MARKETS, Fault(body=hostile_page(good), headers={"Content-Type": "application/json"}))
        run = _both_providers(provider.url, clean_database)
    by_source = {item.source: item for item in run.sources}
    assert by_source["coingecko"].status is RunStatus.SUCCESS
    assert by_source["coingecko"].counters.quarantined == len(HOSTILE)
    assert by_source["coingecko"].counters.inserted == good
    assert by_source["coinpaprika"].status is RunStatus.SUCCESS  # the source after it still ran
    assert run.status is RunStatus.SUCCESS
    with psycopg.connect(clean_database) as connection:
        reasons = [row[0] for row in connection.execute("SELECT reason FROM quarantine ORDER BY id")]
        running = connection.execute("SELECT count(*) FROM etl_runs WHERE status = 'running'").fetchone()[0]
        stored = connection.execute(
            "SELECT max(price_usd), min(price_usd) FILTER (WHERE price_usd > 0), max(observed_at) FROM unified_data"
        ).fetchone()
    assert running == 0
    for _, _, expected in HOSTILE:
        assert any(reason.startswith(expected) for reason in reasons), (expected, reasons)
    assert stored[0] < 10**12  # nothing absurd reached the table
    assert stored[1] > 10**-18
    assert stored[2].year < 3000
    with psycopg.connect(clean_database) as connection:
        marked = connection.execute("SELECT count(*) FROM assets WHERE symbol LIKE '%<%'").fetchone()[0]
    assert marked == 0  # a symbol of markup never becomes a canonical asset, from a provider as from a file


def test_a_page_holding_more_coins_than_asked_for_is_refused_whole(clean_database: str) -> None:
    with loopback_provider() as provider:
        flood = json.dumps([coingecko_coin(i) for i in range(600)]).encode()
        provider.queue(MARKETS, Fault(body=flood, headers={"Content-Type": "application/json"}))
        run = _both_providers(provider.url, clean_database, coingecko_per_page=250)
    by_source = {item.source: item for item in run.sources}
    assert by_source["coingecko"].status is RunStatus.FAILED
    assert "answered 600 elements where at most 250 were asked for: refused" in by_source["coingecko"].error
    assert by_source["coinpaprika"].status is RunStatus.SUCCESS
    with psycopg.connect(clean_database) as connection:
        stored = connection.execute("SELECT count(*) FROM raw_coingecko").fetchone()[0]
    assert stored == 0  # nothing of the flood was kept
