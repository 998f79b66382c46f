"""`kaspero csv inspect` as a user runs it: on each real export, then on a file it refuses."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

from tests.support.processes import REPO, environment, kaspero

FIXTURES = REPO / "tests" / "fixtures" / "csv"
ORIGINAL_FIVE = (
    "btc-usd-max.csv", "Binance_BTCUSDT_d.csv", "BTC-USD.csv", "AVAXUSDT-1m-2025-02.csv",
    "Bitcoin_2024_12_8-2025_12_8_historical_data_coinmarketcap.csv",
)  # fmt: skip


def test_inspect_shows_each_real_exports_layout_and_first_rows_and_writes_nothing(tmp_path: Path) -> None:
    files = [FIXTURES / name for name in ORIGINAL_FIVE]
    env = environment(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")  # never used: a dry run
    done = kaspero("csv", "inspect", *map(str, files), "--json", env=env)
    assert done.returncode == 0, done.stderr
    inspected = {Path(item["file"]).name: item for item in json.loads(done.stdout)}
    assert set(inspected) == {path.name for path in files}
    expected = {
        "btc-usd-max.csv": ("BTC", "USD", "file name (btc-usd: USD is a currency)", ",", 0),
        "Binance_BTCUSDT_d.csv": (None, "USDT", "column 'symbol'", ",", 1),
        "BTC-USD.csv": ("BTC", "USD", "file name (BTC-USD: USD is a currency)", ",", 0),
        "AVAXUSDT-1m-2025-02.csv": ("AVAX", "USDT", "file name (AVAXUSDT, an exchange symbol: base then quote)", ",", 0),
        "Bitcoin_2024_12_8-2025_12_8_historical_data_coinmarketcap.csv": (
            "BTC", "USD", "asset name 'bitcoin' in the file name, through the cross-reference", ";", 0,
        ),
    }  # fmt: skip
    for name, (symbol, quote, symbol_from, delimiter, skipped) in expected.items():
        layout = inspected[name]["layout"]
        assert inspected[name]["refused"] is None
        assert (layout["symbol"]["value"], layout["quote"]["value"]) == (symbol, quote), name
        assert (layout["symbol"]["from"], layout["delimiter"], layout["lines_skipped"]) == (
            symbol_from if symbol else "column 'symbol'", delimiter, skipped,
        )  # fmt: skip
        assert len(inspected[name]["rows"]) == 5
    # the first rows are the file's own: Yahoo's closes, in order
    yahoo = [line.split(",") for line in (FIXTURES / "BTC-USD.csv").read_text().splitlines()[1:6]]
    rows = inspected["BTC-USD.csv"]["rows"]
    assert [Decimal(row["price"]) for row in rows] == [Decimal(cells[4]) for cells in yahoo]
    assert [row["observed_at"][:10] for row in rows] == [cells[0] for cells in yahoo]
    assert (
        inspected["Binance_BTCUSDT_d.csv"]["layout"]["columns"]["Volume BTC"] == "base_volume (base currency)"
    )

    text = kaspero("csv", "inspect", str(FIXTURES / "btc-usd-max.csv"), env=env)
    assert text.returncode == 0
    assert "symbol: BTC (from file name (btc-usd: USD is a currency))" in text.stdout
    assert "snapped_at → observed_at" in text.stdout


def test_inspect_reports_a_refused_file_and_exits_1(tmp_path: Path) -> None:
    refused = tmp_path / "prices.csv"
    refused.write_text("Date,Close\n2024-01-01,1\n")
    shutil.copyfile(FIXTURES / "BTC-USD.csv", tmp_path / "BTC-USD.csv")
    done = kaspero("csv", "inspect", str(refused), str(tmp_path / "BTC-USD.csv"), env=environment())
    assert done.returncode == 1
    assert "REFUSED: csv:prices: no symbol: not in a column, not in the file name 'prices.csv'" in done.stdout
    assert "symbol: BTC (from file name (BTC-USD: USD is a currency))" in done.stdout


def test_quarantine_list_and_full_refresh_from_the_command_line(clean_database: str, tmp_path: Path) -> None:
    csv = tmp_path / "BTC-USD.csv"
    csv.write_text('Date,Close\n2024-01-01,100\n2024-01-02,"1,500"\n2024-01-03,101\n2024-01-04,102\n')
    env = environment(DATABASE_URL=clean_database, CSV_SOURCE_PATH=str(csv))
    first = kaspero("etl", "run", "--once", env=env)
    assert first.returncode == 0, first.stderr
    listed = kaspero("quarantine", "list", "--source", "csv:BTC-USD", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "1 quarantined" in listed.stdout
    assert "reason: Close: ambiguous number '1,500'" in listed.stdout
    options = tmp_path / "csv_options.toml"
    options.write_text('["BTC-USD.csv"]\ndecimal = "."\n')
    env["CSV_OPTIONS_PATH"] = str(options)
    refreshed = kaspero("etl", "run", "--once", "--full-refresh", env=env)
    assert refreshed.returncode == 0, refreshed.stderr
    summary = json.loads(next(line for line in refreshed.stdout.splitlines() if line.startswith("{")))
    assert summary["sources"]["csv:BTC-USD"]["inserted"] == 1
    assert summary["sources"]["csv:BTC-USD"]["quarantined"] == 0
    bad = kaspero("quarantine", "list", "--limit", "-1", env=env)
    assert bad.returncode == 2
    assert "must be 1 or more" in bad.stderr


def test_inspect_json_shows_each_decision_with_its_evidence_and_a_refusal_names_its_setting() -> None:
    env = environment(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")
    names = ("ethereum_classic_price.csv", "XBTUSD_1440.csv", "BITSTAMP_BTCUSD, 1D.csv", "BTC_ETH.csv")
    done = kaspero("csv", "inspect", *(str(FIXTURES / name) for name in names), "--json", env=env)
    assert done.returncode == 1  # one of them is refused
    inspected = {Path(item["file"]).name: item for item in json.loads(done.stdout)}
    decisions = {
        name: {made["decision"]: (made["value"], made["evidence"]) for made in item["layout"]["decisions"]}
        for name, item in inspected.items()
        if item["layout"]
    }
    assert decisions["ethereum_classic_price.csv"]["symbol"] == (
        "ETC", "asset name 'ethereum classic' in the file name, through the cross-reference",
    )  # fmt: skip
    assert decisions["ethereum_classic_price.csv"]["time column"] == (
        "Date",
        "named 'Date'",
    )
    assert decisions["ethereum_classic_price.csv"]["unit of 'Volume'"][0] == "quote currency"
    assert decisions["XBTUSD_1440.csv"]["time column"] == (
        "time",
        "the known headerless layout kraken-ohlcvt",
    )
    assert decisions["XBTUSD_1440.csv"]["symbol"][0] == "BTC"
    tradingview = decisions["BITSTAMP_BTCUSD, 1D.csv"]
    assert tradingview["venue"][0] == "bitstamp"
    assert tradingview["symbol"][0] == "BTC"
    assert tradingview["unit of 'Volume'"][0] == "base currency"
    assert "set symbol and quote for this file in csv_options.toml" in inspected["BTC_ETH.csv"]["refused"]
    text = kaspero("csv", "inspect", str(FIXTURES / "XBTUSD_1440.csv"), env=env)
    assert "time column: time  ← the known headerless layout kraken-ohlcvt" in text.stdout
