"""A provider's values PostgreSQL cannot hold, or no asset can have, are quarantined per element
with the reason; the rest of the page loads, the pass goes on to the next source, and no run is
left `running` (issue: one NaN once ended the whole pass with a traceback)."""

from __future__ import annotations

import json

import psycopg

from domain.runs import RunStatus
from entrypoints.bootstrap import build
from entrypoints.settings import Settings
from tests.support.provider import MARKETS, Fault, coingecko_coin, loopback_provider

# the literal the provider writes, the field it goes in, and what the quarantine says of it
HOSTILE = [
    ("NaN", "current_price", "current_price: NaN is not a number that can be stored"),
    ("Infinity", "total_volume", "total_volume: Infinity is not a number that can be stored"),
    ("1e309", "market_cap", "market_cap: 1e309 is not a number that can be stored"),
    ("1e-400", "current_price", "current_price: 1e-400 is not a number that can be stored"),
    ("1" + "0" * 400, "current_price", "price_usd: 1E+400 USD is above 1E+12"),
    ('"9999-12-31T23:59:59Z"', "last_updated", "observed_at: 9999-12-31T23:59:59+00:00 is outside"),
    ("5e-30", "current_price", "price_usd: 5E-30 USD is below 1E-18"),
    ('"<SCRIPT>ALERT(1)</SCRIPT>"', "symbol", "symbol: not a symbol: '<SCRIPT>ALERT(1)</SCRIPT>'"),
]


def hostile_page(good: int) -> bytes:
    coins = [coingecko_coin(i) for i in range(good + len(HOSTILE))]
    for index, (_, field, _) in enumerate(HOSTILE):
        coins[good + index][field] = f"@@{index}@@"
    text = json.dumps(coins)
    for index, (literal, _, _) in enumerate(HOSTILE):
        text = text.replace(f'"@@{index}@@"', literal)
    return text.encode()


def test_hostile_elements_are_quarantined_one_by_one_and_the_pass_goes_on(clean_database: str) -> None:
    good = 20
    with loopback_provider() as provider:
        provider.state.coins = good + len(HOSTILE)
        provider.queue(MARKETS, Fault(body=hostile_page(good), headers={"Content-Type": "application/json"}))
        app = build(
            Settings(
                coingecko_base_url=f"{provider.url}/coingecko", coinpaprika_base_url=f"{provider.url}/coinpaprika",
                coingecko_rate_limit_per_minute=6000, rate_limit_requests_per_minute=6000,
            ),  # type: ignore[call-arg]
            clean_database,
        )  # fmt: skip
        try:
            run = app.run_etl(["coingecko", "coinpaprika"])
        finally:
            app.close()
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
        app = build(
            Settings(
                coingecko_base_url=f"{provider.url}/coingecko", coinpaprika_base_url=f"{provider.url}/coinpaprika",
                coingecko_rate_limit_per_minute=6000, rate_limit_requests_per_minute=6000, coingecko_per_page=250,
            ),  # type: ignore[call-arg]
            clean_database,
        )  # fmt: skip
        try:
            run = app.run_etl(["coingecko", "coinpaprika"])
        finally:
            app.close()
    by_source = {item.source: item for item in run.sources}
    assert by_source["coingecko"].status is RunStatus.FAILED
    assert "answered 600 elements where at most 250 were asked for: refused" in by_source["coingecko"].error
    assert by_source["coinpaprika"].status is RunStatus.SUCCESS
    with psycopg.connect(clean_database) as connection:
        stored = connection.execute("SELECT count(*) FROM raw_coingecko").fetchone()[0]
    assert stored == 0  # nothing of the flood was kept
