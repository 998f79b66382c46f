"""The price-file rules end to end through PostgreSQL: conversion of prices quoted in another
asset, a refused file's single reason, a source whose every row is quarantined, an empty glob,
per-file options, and `--full-refresh`."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from domain.runs import RunStatus, RunTrigger
from entrypoints.bootstrap import build
from entrypoints.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CROSSREF = REPO / "data" / "reference" / "asset_crossref.csv"
FIXTURES = REPO / "tests" / "fixtures" / "csv"

ETC_BTC = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
    "1608595200000,0.00025,0.00026,0.00024,0.000245,1000,1608681599999,0.245,10,500,0.12,0\n"
    "1608681600000,0.000245,0.00025,0.00023,0.00024,2000,1608767999999,0.48,12,900,0.2,0\n"
)  # 2020-12-22 and 2020-12-23, daily bars of ETC priced in BTC


def run_csv(database_url: str, directory: Path, pattern: str = "*.csv", **settings: object):
    app = build(
        Settings(csv_source_path=str(directory / pattern), asset_crossref_path=CROSSREF, **settings),  # type: ignore[arg-type]
        database_url,
    )
    try:
        return app.run_etl(["csv"], full_refresh=bool(settings.pop("full_refresh", False)))
    finally:
        app.close()


def rows(database_url: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(query, params).fetchall()


@pytest.mark.parametrize(
    ("btc_file", "workers"),
    [("Binance_BTCUSDT_d.csv", 1), ("zz_Binance_BTCUSDT_d.csv", 1), ("zz_Binance_BTCUSDT_d.csv", 3)],
)
def test_a_btc_quoted_price_is_converted_through_a_btc_usd_bar_of_the_same_day(
    clean_database: str, tmp_path: Path, btc_file: str, workers: int
) -> None:
    """Whatever the files' names and however many load at once: files quoted in USD load first
    (side by side), the BTC-quoted file after them, converted through their bars."""
    shutil.copyfile(FIXTURES / "Binance_BTCUSDT_d.csv", tmp_path / btc_file)
    shutil.copyfile(FIXTURES / "BTC-USD.csv", tmp_path / "BTC-USD.csv")  # another USD file (2014)
    (tmp_path / "ETCBTC-1d-2020-12.csv").write_text(ETC_BTC)
    run = run_csv(clean_database, tmp_path, csv_workers=workers)
    assert run.status is RunStatus.SUCCESS, run.error
    [(price, price_usd, quote, extra)] = rows(
        clean_database,
        "SELECT price, price_usd, quote_currency, extra FROM unified_data "
        "WHERE symbol = 'ETC' AND observed_at = '2020-12-22'",
    )
    btc_row = next(
        line
        for line in (FIXTURES / "Binance_BTCUSDT_d.csv").read_text().splitlines()
        if ",2020-12-22 " in line
    )
    btc_close = Decimal(btc_row.split(",")[6])  # the file's own BTC/USDT close of that day
    assert (quote, price) == ("BTC", Decimal("0.000245"))
    assert price_usd == price * btc_close
    assert extra["price_usd_converted"]["via"] == "BTC"
    assert extra["price_usd_converted"]["source"] == f"csv:{Path(btc_file).stem}"


def test_a_btc_quoted_price_without_a_btc_usd_bar_has_no_usd_price(
    clean_database: str, tmp_path: Path
) -> None:
    (tmp_path / "ETCBTC-1d-2020-12.csv").write_text(ETC_BTC)
    run = run_csv(clean_database, tmp_path)
    assert run.status is RunStatus.SUCCESS, run.error
    stored = rows(
        clean_database,
        "SELECT symbol, quote_currency, price, price_usd, volume_24h_usd, market_cap_usd FROM unified_data ORDER BY observed_at",
    )
    assert stored == [
        ("ETC", "BTC", Decimal("0.000245"), None, None, None),
        ("ETC", "BTC", Decimal("0.00024"), None, None, None),
    ]
    assert rows(clean_database, "SELECT count(*) FROM market_history") == [(0,)]


def test_a_file_that_cannot_be_understood_is_refused_whole_with_one_reason(
    clean_database: str, tmp_path: Path
) -> None:
    shutil.copyfile(FIXTURES / "BTC-USD.csv", tmp_path / "BTC-USD.csv")
    (tmp_path / "prices.csv").write_text("Date,Close\n2024-01-01,1\n2024-01-02,2\n")
    run = run_csv(clean_database, tmp_path)
    assert run.status is RunStatus.PARTIAL
    by_source = {item.source: item for item in run.sources}
    refused = by_source["csv:prices"]
    assert refused.status is RunStatus.FAILED
    assert refused.error == (
        "csv:prices: no symbol: not in a column, not in the file name 'prices.csv'; "
        "set symbol for it in csv_options.toml"
    )
    assert refused.counters.fetched == 0
    assert by_source["csv:BTC-USD"].status is RunStatus.SUCCESS
    assert rows(clean_database, "SELECT count(*) FROM quarantine") == [(0,)]


def test_a_source_that_read_rows_but_loaded_none_is_failed(clean_database: str, tmp_path: Path) -> None:
    (tmp_path / "BTC-USD.csv").write_text("Date,Close\n2024-01-01,n0pe\n2024-01-02,-1\n")
    run = run_csv(clean_database, tmp_path)
    assert run.status is RunStatus.FAILED
    [source] = run.sources
    assert source.status is RunStatus.FAILED
    assert source.error is not None
    assert source.error.startswith(
        "csv:BTC-USD: all 2 records read were quarantined; the first because Close:"
    )
    assert source.counters.quarantined == 2


def test_a_glob_that_matches_nothing_is_a_skipped_source_not_a_success(
    clean_database: str, tmp_path: Path
) -> None:
    run = run_csv(clean_database, tmp_path, "none-*.csv")
    assert run.status is RunStatus.PARTIAL
    [source] = run.sources
    assert (source.source, source.status) == ("csv", RunStatus.SKIPPED)
    assert source.error is not None
    assert "matches no file" in source.error


def test_per_file_options_settle_what_detection_cannot_and_full_refresh_loads_what_was_quarantined(
    clean_database: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # one slash date that could be either way round, among dates that settle the column as mdy…
    (data / "SOL-USD.csv").write_text("Date,Close\n01/13/2024,100\n2024-01-14,101\n02/01/2024,102\n")
    first = run_csv(clean_database, data)
    assert first.status is RunStatus.SUCCESS
    assert first.sources[0].counters.inserted == 3
    # …and a file whose dates never settle: refused until an option says the order
    (data / "ADA-USD.csv").write_text("Date,Close\n01/02/2024,0.5\n02/02/2024,0.6\n")
    second = run_csv(clean_database, data)
    ada = next(item for item in second.sources if item.source == "csv:ADA-USD")
    assert ada.status is RunStatus.FAILED
    assert ada.error is not None
    assert 'set date_order = "dmy" or "mdy" for this file in csv_options.toml' in ada.error
    options = tmp_path / "csv_options.toml"
    options.write_text('["ADA-*.csv"]\ndate_order = "dmy"\n')
    third = run_csv(clean_database, data, csv_options_path=options)
    assert third.status is RunStatus.SUCCESS
    assert rows(
        clean_database, "SELECT observed_at::date::text FROM unified_data WHERE symbol = 'ADA' ORDER BY 1"
    ) == [
        ("2024-02-01",),
        ("2024-02-02",),
    ]


def test_full_refresh_rereads_a_file_from_its_start_and_loads_rows_quarantined_before(
    clean_database: str, tmp_path: Path
) -> None:
    (tmp_path / "BTC-USD.csv").write_text('Date,Close\n2024-01-01,100\n2024-01-02,"1,500"\n')
    first = run_csv(clean_database, tmp_path)
    assert (first.sources[0].counters.inserted, first.sources[0].counters.quarantined) == (1, 1)
    options = tmp_path / "csv_options.toml"
    options.write_text('["BTC-USD.csv"]\ndecimal = "."\n')
    untouched = run_csv(clean_database, tmp_path, csv_options_path=options)
    assert untouched.sources[0].counters.fetched == 0  # the file did not change: not read again
    refreshed = run_csv(clean_database, tmp_path, csv_options_path=options, full_refresh=True)
    counters = refreshed.sources[0].counters
    assert (counters.fetched, counters.inserted, counters.unchanged, counters.quarantined) == (2, 1, 1, 0)
    assert rows(clean_database, "SELECT price FROM unified_data ORDER BY observed_at") == [
        (Decimal(100),),
        (Decimal(1500),),
    ]
    assert rows(clean_database, "SELECT count(*) FROM quarantine") == [(0,)]  # loaded: it left


def test_an_option_added_then_a_replay_stores_the_quarantined_row_once_with_its_lineage(
    clean_database: str, tmp_path: Path
) -> None:
    (tmp_path / "BTC-USD.csv").write_text('Date,Close\n2024-01-01,100\n2024-01-02,"1,500"\n2024-01-03,90\n')
    first = run_csv(clean_database, tmp_path)
    assert (first.sources[0].counters.inserted, first.sources[0].counters.quarantined) == (2, 1)
    [(reason, raw_id)] = rows(
        clean_database,
        "SELECT q.reason, q.raw_id FROM quarantine q",
    )
    assert "decimal" in reason  # the option that settles it, named
    options = tmp_path / "csv_options.toml"
    options.write_text('["BTC-USD.csv"]\ndecimal = "."\n')
    settings = Settings(
        csv_source_path=str(tmp_path / "*.csv"), asset_crossref_path=CROSSREF, csv_options_path=options
    )  # type: ignore[call-arg]
    for attempt in range(2):  # the second replay finds nothing left to read
        app = build(settings, clean_database)
        try:
            replay = app.replay_quarantine("csv:BTC-USD")
        finally:
            app.close()
        counters = replay.sources[0].counters
        assert (replay.trigger, replay.status) == (RunTrigger.REPLAY, RunStatus.SUCCESS)
        assert (counters.fetched, counters.inserted, counters.quarantined) == (
            (1, 1, 0) if attempt == 0 else (0, 0, 0)
        )
    assert rows(clean_database, "SELECT count(*) FROM quarantine") == [(0,)]
    # each record reaches its own line; the replayed one the line it was quarantined from
    assert rows(
        clean_database,
        "SELECT observed_at::date::text, price, r.line, u.raw_id = %s FROM unified_data u "
        "CROSS JOIN LATERAL raw_csv_line(u.raw_id) r ORDER BY observed_at",
        raw_id,
    ) == [
        ("2024-01-01", Decimal(100), "2024-01-01,100", False),
        ("2024-01-02", Decimal(1500), '2024-01-02,"1,500"', True),
        ("2024-01-03", Decimal(90), "2024-01-03,90", False),
    ]
    assert rows(clean_database, "SELECT count(*) FROM raw_csv_lines") == [(3,)]  # none written again


def test_quarantined_rows_are_in_reach_over_the_api_and_the_command_line(
    clean_database: str, tmp_path: Path
) -> None:
    import falcon.testing

    from entrypoints.api.app import create_app

    (tmp_path / "BTC-USD.csv").write_text(
        "Date,Close\n2024-01-01,100\n2024-01-02,n/a-ish\n2024-01-03,-5\n2024-01-04,7\n<script>,1\n"
    )
    app = build(
        Settings(csv_source_path=str(tmp_path / "*.csv"), asset_crossref_path=CROSSREF), clean_database
    )  # type: ignore[call-arg]
    try:
        run = app.run_etl(["csv"])
        client = falcon.testing.TestClient(
            create_app(app.reader, app.probe, app.uow_factory, quarantine=app.quarantine)
        )
        body = client.simulate_get("/quarantine", params={"source": "csv:BTC-USD", "page_size": 2}).json
        assert body["pagination"]["total_items"] == 3
        first_page = body["data"]
        assert len(first_page) == 2
        assert first_page[0]["id"] > first_page[1]["id"]  # newest first
        second = client.simulate_get(
            "/quarantine", params={"source": "csv:BTC-USD", "cursor": body["pagination"]["next_cursor"]}
        ).json["data"]
        everything = first_page + second
        assert len({entry["id"] for entry in everything}) == 3
        reasons = sorted(entry["reason"] for entry in everything)
        assert reasons[0].startswith("Close: a price cannot be negative")
        negative = next(entry for entry in everything if "negative" in entry["reason"])
        assert negative["payload"] == {"Date": "2024-01-03", "Close": "-5"}
        assert negative["first_run_id"] == run.id
        assert negative["links"]["first_run"] == f"/runs/{run.id}"
        by_reason = client.simulate_get("/quarantine", params={"reason": "NOT A NUMBER"}).json["data"]
        assert [entry["payload"]["Close"] for entry in by_reason] == ["n/a-ish"]
        by_run = client.simulate_get("/quarantine", params={"run_id": run.id + 1}).json["data"]
        assert by_run == []
        assert client.simulate_get("/quarantine", params={"cursor": "bm9wZQ"}).status_code == 400
        assert client.simulate_get("/quarantine", params={"run_id": "-1"}).status_code == 400
    finally:
        app.close()


def test_history_older_than_the_retention_is_dropped_with_its_records_and_candles(
    clean_database: str, tmp_path: Path
) -> None:
    """A bar is its record (migration 0022): the retention deletes the bars observed before its
    cutoff, so their records, and folds the candles they were in again."""
    shutil.copyfile(FIXTURES / "BTC-USD.csv", tmp_path / "BTC-USD.csv")  # 40 days of 2014
    today = datetime.now(UTC).date()
    recent = [today - timedelta(days=n) for n in (3, 2)]
    (tmp_path / "ETH-USD.csv").write_text("Date,Close\n" + "".join(f"{d},{3000 + d.day}\n" for d in recent))
    # hourly bars, which the daily candles fold, long ago and lately; the hour after the cutoff's
    # day began stays in that day's candle
    (tmp_path / "SOL-USD.csv").write_text(
        "Date,Close\n2014-05-01 00:00,1\n2014-05-01 01:00,2\n"
        + "".join(f"{recent[0]} 0{h}:00,{90 + h}\n" for h in range(3))
    )
    kept = run_csv(clean_database, tmp_path)
    assert kept.status is RunStatus.SUCCESS
    years = "SELECT DISTINCT extract(year FROM observed_at)::int FROM market_history ORDER BY 1"
    assert {year for (year,) in rows(clean_database, years)} == {2014, recent[0].year, today.year}
    candles = "SELECT seconds, bucket::date, bars FROM market_candles ORDER BY 1, 2"
    assert {bucket.year for _, bucket, _ in rows(clean_database, candles)} == {2014, recent[0].year}
    (tmp_path / "ETH-USD.csv").write_text(
        "Date,Close\n" + "".join(f"{d},{3000 + d.day}\n" for d in [*recent, today - timedelta(days=1)])
    )
    pruned = run_csv(clean_database, tmp_path, history_retention_days=365)
    assert pruned.status is RunStatus.SUCCESS
    assert {year for (year,) in rows(clean_database, years)} == {recent[0].year, today.year}
    # the old bars' candles went with them; the recent ones are what folding their bars gives
    folded = (
        "SELECT l.seconds, date_bin(make_interval(secs => l.seconds), observed_at, '2000-01-01+00')::date AS day,"
        " count(*) FROM market_history CROSS JOIN (VALUES (3600), (86400)) l (seconds)"
        " WHERE bar_seconds < l.seconds GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert rows(clean_database, candles) == rows(clean_database, folded)
    assert [(s, d, n) for s, d, n in rows(clean_database, candles) if s == 86400] == [(86400, recent[0], 3)]
    assert rows(clean_database, "SELECT count(*) FROM market_candles WHERE bucket < '2015-01-01'") == [(0,)]
    # a bar is its record: the old bars' records went with them, the others stay
    assert rows(clean_database, "SELECT symbol, count(*) FROM unified_data GROUP BY 1 ORDER BY 1") == [
        ("ETH", 3),
        ("SOL", 3),
    ]
