"""A bar in the history follows its record: a corrected row of a file read again changes what
`/data` and `/assets/{id}/history` say alike, and the candles holding it are folded again
(migration 0021)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import falcon.testing
import psycopg

from domain.runs import RunStatus
from entrypoints.api.app import create_app
from entrypoints.bootstrap import build
from entrypoints.settings import Settings

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "tests" / "fixtures" / "csv" / "AVAXUSDT-1m-2025-02.csv"  # Binance's one-minute klines
CROSSREF = REPO / "data" / "reference" / "asset_crossref.csv"

# every candle as folding every stored bar from scratch gives it (migration 0011's own fold)
FOLDED = """
SELECT asset_id, l.seconds,
       date_bin(make_interval(secs => l.seconds), observed_at, timestamptz '2000-01-01 00:00:00+00'), source,
       min(observed_at), (array_agg(coalesce(open_usd, price_usd) ORDER BY observed_at))[1],
       max(coalesce(high_usd, price_usd)), min(coalesce(low_usd, price_usd)),
       max(observed_at), (array_agg(price_usd ORDER BY observed_at DESC))[1], count(*)
FROM market_history CROSS JOIN (VALUES (3600), (86400)) AS l (seconds)
WHERE bar_seconds IS NULL OR bar_seconds < l.seconds
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
"""
STORED = """
SELECT asset_id, seconds, bucket, source, open_at, open, high, low, close_at, close, bars
FROM market_candles ORDER BY 1, 2, 3, 4
"""


def load(url: str, path: Path) -> tuple[RunStatus, int]:
    settings = Settings(csv_source_path=str(path), asset_crossref_path=CROSSREF, log_level="WARNING")  # type: ignore[call-arg]
    app = build(settings, url)
    try:
        run = app.run_etl(["csv"], full_refresh=True)
    finally:
        app.close()
    return run.status, run.sources[0].counters.updated


def candles(url: str) -> tuple[list[tuple], list[tuple]]:
    with psycopg.connect(url) as connection:
        return connection.execute(STORED).fetchall(), connection.execute(FOLDED).fetchall()


def test_a_corrected_bar_changes_data_history_and_its_candles_alike(
    clean_database: str, tmp_path: Path
) -> None:
    path = tmp_path / REAL.name
    path.write_bytes(REAL.read_bytes())
    assert load(clean_database, path) == (RunStatus.SUCCESS, 0)
    stored, folded = candles(clean_database)
    assert stored == folded
    assert len(stored) == 2  # the file's 40 minutes: one hour, one day

    # the exporter corrects the 21st minute: a higher high and another close
    rows = list(csv.reader(io.StringIO(REAL.read_text())))
    header, bars = rows[0], rows[1:]
    corrected = bars[20]
    high = Decimal(max(Decimal(bar[2]) for bar in bars)) + 1
    corrected[2], corrected[4] = str(high), str(Decimal(corrected[4]) + Decimal("0.5"))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *bars])
    path.write_text(out.getvalue())
    assert load(clean_database, path) == (RunStatus.SUCCESS, 1)

    with psycopg.connect(clean_database) as connection:
        record = connection.execute(
            "SELECT id, asset_id, price::text, high_usd::text FROM unified_data "
            "WHERE observed_at = to_timestamp(%s / 1000.0)",
            (int(corrected[0]),),
        ).fetchone()
        bar = connection.execute(
            "SELECT price_usd::text, high_usd::text FROM market_history WHERE observed_at = to_timestamp(%s / 1000.0)",
            (int(corrected[0]),),
        ).fetchone()
    assert record is not None
    record_id, asset_id, price, record_high = record
    assert (price, record_high) == (corrected[4], corrected[2])  # /data: the corrected row
    assert bar == (corrected[4], corrected[2])  # the history's bar: the same
    stored, folded = candles(clean_database)
    assert stored == folded  # the candles holding it folded again

    app = build(Settings(log_level="WARNING"), clean_database)  # type: ignore[call-arg]
    try:
        client = falcon.testing.TestClient(create_app(app.reader, app.probe, app.uow_factory))
        shown = client.simulate_get(f"/data/{record_id}").json["data"]
        hourly = client.simulate_get(
            f"/assets/{asset_id}/history", params={"interval": "1h", "source": "csv:AVAXUSDT-1m-2025-02"}
        ).json["data"]
    finally:
        app.close()
    assert (shown["price"], shown["high_usd"]) == (corrected[4], corrected[2])
    [hour] = hourly
    assert Decimal(hour["high"]) == high  # the hour's high is the corrected minute's
    assert Decimal(hour["close"]) == Decimal(bars[-1][4])
    assert hour["observations"] == len(bars)


def test_any_update_of_a_bar_folds_its_candles_again(clean_database: str, tmp_path: Path) -> None:
    """The trigger keeps the candles true whoever updates the bars (a snapshot's price too)."""
    path = tmp_path / REAL.name
    path.write_bytes(REAL.read_bytes())
    load(clean_database, path)
    before, _ = candles(clean_database)
    with psycopg.connect(clean_database) as connection:
        connection.execute(
            "UPDATE unified_data SET low_usd = low_usd - 3, price_usd = price_usd * 2 "
            "WHERE observed_at IN (SELECT observed_at FROM market_history ORDER BY observed_at LIMIT 3)"
        )
        connection.execute("UPDATE unified_data SET bar_seconds = NULL, open_usd = NULL WHERE price_usd > 60")
        connection.commit()
    stored, folded = candles(clean_database)
    assert stored == folded
    assert [candle[7] for candle in stored] < [candle[7] for candle in before]  # the lows moved down
    with psycopg.connect(clean_database) as connection:  # every bar made a daily one: no candle folds it
        connection.execute("UPDATE unified_data SET bar_seconds = 86400")
        connection.commit()
    assert candles(clean_database) == ([], [])
