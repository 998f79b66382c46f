"""Providers and files that would hold or kill a run: a body trickling in, a feed asking to
come back later, a CSV cell far past the csv module's field limit."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import stamina

from domain.runs import RunStatus
from entrypoints.bootstrap import build
from entrypoints.settings import Settings
from tests.support.market_csv import HEADER, market_lines
from tests.support.provider import MARKETS, Fault, loopback_provider

FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>Bitcoin rallies</title><guid>a</guid><link>javascript:alert(1)</link></item>
<item><title>Ether slips</title><guid>b</guid><link>https://news.example.com/eth</link></item>
</channel></rss>"""


def test_a_trickling_provider_or_feed_is_cut_at_the_deadline(clean_database: str) -> None:
    with stamina.set_testing(True, attempts=1), loopback_provider() as provider:
        provider.queue(MARKETS, Fault(body=b"[" + b" " * 200 + b"]", trickle=0.05))
        provider.state.feeds["slow"] = FEED
        provider.queue(
            "/feeds/slow", Fault(body=FEED, trickle=0.05, headers={"Content-Type": "application/rss+xml"})
        )
        app = build(
            Settings(
                coingecko_base_url=f"{provider.url}/coingecko",
                rss_source_url=f"{provider.url}/feeds/slow",
                http_deadline_seconds=1,
                coingecko_rate_limit_per_minute=6000,
            ),  # type: ignore[call-arg]
            clean_database,
        )
        started = time.monotonic()
        try:
            run = app.run_etl(["coingecko", "rss"])
        finally:
            app.close()
        took = time.monotonic() - started
    by_source = {item.source: item for item in run.sources}
    assert took < 10, f"the run took {took:.1f}s"
    assert by_source["coingecko"].status is RunStatus.FAILED
    assert "trickling" in (by_source["coingecko"].error or "")
    feed = next(item for item in run.sources if item.source.startswith("rss:"))
    assert feed.status is RunStatus.FAILED
    assert "took longer than 1 s" in (feed.error or "")


def test_a_feed_answering_429_with_retry_after_is_retried_and_drops_script_links(clean_database: str) -> None:
    with loopback_provider() as provider:
        provider.state.feeds["news"] = FEED
        provider.queue("/feeds/news", Fault(status=429, headers={"Retry-After": "1"}))
        app = build(Settings(rss_source_url=f"{provider.url}/feeds/news"), clean_database)  # type: ignore[call-arg]
        try:
            run = app.run_etl(["rss"])
        finally:
            app.close()
    [source] = run.sources
    assert source.status is RunStatus.SUCCESS, source.error
    assert (source.counters.retries, source.counters.rate_limit_waits, source.counters.inserted) == (1, 1, 2)
    with psycopg.connect(clean_database) as connection:
        urls = connection.execute("SELECT title, url FROM unified_data ORDER BY title").fetchall()
        kept = connection.execute(
            "SELECT payload->>'link' FROM raw_rss ORDER BY payload->>'title'"
        ).fetchall()
    assert urls == [("Bitcoin rallies", None), ("Ether slips", "https://news.example.com/eth")]
    assert kept[0] == ("javascript:alert(1)",)  # the raw payload keeps what the feed sent


def test_a_giant_csv_cell_is_quarantined_and_the_rest_loads(clean_database: str, tmp_path: Path) -> None:
    lines = list(market_lines(3))
    giant = lines[4].replace("Ethereum", "E" * 2_000_000)
    path = tmp_path / "prices.csv"
    path.write_text("\n".join([HEADER, *lines[:4], giant, *lines[5:]]) + "\n")
    app = build(Settings(csv_source_path=str(path)), clean_database)  # type: ignore[call-arg]
    try:
        run = app.run_etl(["csv"])
        again = app.run_etl(["csv"])
    finally:
        app.close()
    [source] = run.sources
    assert source.status is RunStatus.SUCCESS
    assert (source.counters.inserted, source.counters.quarantined) == (8, 1)
    assert again.status is RunStatus.SUCCESS
    with psycopg.connect(clean_database) as connection:
        reason, name_kept = connection.execute(
            "SELECT reason, length(payload->>'name') FROM quarantine"
        ).fetchone()  # type: ignore[misc]
    assert reason.startswith("row is 2,000,")
    assert "CSV_MAX_RECORD_BYTES" in reason
    assert name_kept == 1024
