"""A price file is checked against what other sources already observed of the same asset: a file
whose symbol is another asset's is refused whole with the figures; one far-off bar is stored,
marked suspect; agreeing files load. Through the real CSV reader and the in-memory store."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.runs import RunStatus
from entrypoints.bootstrap import Kaspero, build
from entrypoints.settings import Settings

START = date(2021, 3, 1)


def write(folder: Path, name: str, closes: list[Decimal]) -> None:
    rows = [f"{START + timedelta(days=day)},{close}" for day, close in enumerate(closes)]
    (folder / name).write_text("date,close\n" + "\n".join(rows) + "\n")


def load(folder: Path, pattern: str, app: Kaspero | None = None) -> tuple[Kaspero, object]:
    settings = Settings(csv_source_path=str(folder / pattern), csv_workers=1)  # type: ignore[call-arg]
    app = app or build(settings, in_memory=True)
    app.settings = settings
    return app, app.run_etl(["csv"])


true_prices = st.lists(
    st.decimals(min_value=Decimal("100"), max_value=Decimal("60000"), places=2), min_size=5, max_size=20
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(true_prices, st.one_of(st.decimals("0.01", "0.45", places=3), st.decimals("1.6", "40", places=2)))
def test_a_file_whose_symbol_is_another_assets_is_refused_with_the_figures(
    truth: list[Decimal], factor: Decimal
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write(folder, "btc-usd-first.csv", truth)
        app, first = load(folder, "btc-usd-first.csv")
        assert first.status is RunStatus.SUCCESS
        # another asset's prices (a factor away from Bitcoin's) under Bitcoin's name
        write(folder, "btc-usd-other.csv", [round(price * factor, 8) for price in truth])
        _, second = load(folder, "btc-usd-other.csv", app)
        [source] = second.sources
        assert source.status is RunStatus.FAILED
        assert "prices differ from 1 other source of BTC (csv:btc-usd-first)" in source.error
        assert "set symbol (or quote) for this file" in source.error
        stored = {key for key in app_records(app) if key[0] == "csv:btc-usd-other"}
        assert stored == set()  # refused whole: nothing of it stored


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(true_prices, st.decimals("0.9", "1.1", places=3))
def test_a_file_that_agrees_with_the_known_prices_loads_and_one_far_bar_is_suspect(
    truth: list[Decimal], factor: Decimal
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write(folder, "btc-usd-first.csv", truth)
        app, _ = load(folder, "btc-usd-first.csv")
        agreeing = [round(price * factor, 8) for price in truth]
        agreeing[2] = agreeing[2] * 3  # one bar far off
        write(folder, "btc-usd-other.csv", agreeing)
        _, second = load(folder, "btc-usd-other.csv", app)
        assert second.sources[0].status is RunStatus.SUCCESS
        records = app_records(app)
        suspect = {
            key[1]: record.extra.get("suspect")
            for key, record in records.items()
            if key[0] == "csv:btc-usd-other"
        }
        day = f"BTC@{START + timedelta(days=2)}"
        assert suspect[day] is not None
        assert Decimal(suspect[day]["deviation_pct"]) > 100
        assert suspect[day]["sources"] == ["csv:btc-usd-first"]
        assert all(value is None for key, value in suspect.items() if key != day)


def app_records(app: Kaspero) -> dict:
    """Every stored record by (source, record id), read as the API reads them."""
    from application.queries import DataQuery

    found = {}
    for source in ("csv:btc-usd-first", "csv:btc-usd-other"):
        for item in app.reader.find(DataQuery(source=source, page_size=100)).items:
            found[(source, item.record.source_record_id)] = item.record
    return found
