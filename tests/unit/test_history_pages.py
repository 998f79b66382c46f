"""History pages: whole buckets, `next_start` to go on, and a bucket larger than a page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork
from application.assets import asset_history, export_history, history_assets
from application.errors import InvalidQuery, NotFound
from domain.assets import Asset, HistoryPoint, HistoryQuery, Interval

DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def _store(assets: int, sources: int, days: int) -> InMemoryStore:
    store = InMemoryStore()
    for asset in range(1, assets + 1):
        store.state.assets[asset] = Asset(asset, f"C{asset}", f"Coin {asset}", False)
        for source in range(sources):
            for day in range(days):
                moment = DAY0 + timedelta(days=day, hours=source)
                store.state.history[(asset, f"s{source}", moment)] = HistoryPoint(
                    moment, Decimal(asset * 100 + day)
                )
    return store


def test_pages_hold_whole_buckets_and_walk_the_range_once() -> None:
    store = _store(assets=3, sources=2, days=10)  # six candles a day
    factory = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    assets = history_assets(factory, symbols=("c1", "C3"))
    assert assets == {1: "C1", 3: "C3"}
    query = HistoryQuery(Interval.DAY, limit=9)
    seen, pages = [], 0
    while True:
        page = asset_history(factory, assets, query)
        pages += 1
        assert len(page.candles) == 8  # two whole days of four candles; a ninth would split a third
        seen += page.candles
        if page.next_start is None:
            break
        assert page.next_start == page.candles[-1].bucket + timedelta(days=1)
        query = HistoryQuery(Interval.DAY, start=page.next_start, limit=9)
    assert pages == 5
    assert [(c.bucket, c.asset_id, c.source) for c in seen] == sorted(
        (DAY0 + timedelta(days=day), asset, f"s{source}")
        for day in range(10)
        for asset in (1, 3)
        for source in (0, 1)
    )
    assert list(export_history(factory, assets, HistoryQuery(Interval.DAY), batch=3)) == seen


def test_a_bucket_larger_than_a_page_comes_whole_and_the_next_page_goes_on_after_it() -> None:
    store = _store(assets=3, sources=2, days=3)
    factory = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    page = asset_history(factory, {1: "C1", 2: "C2", 3: "C3"}, HistoryQuery(Interval.DAY, limit=4))
    assert [c.bucket for c in page.candles] == [DAY0] * 6
    assert page.next_start == DAY0 + timedelta(days=1)
    last = asset_history(
        factory,
        {1: "C1", 2: "C2", 3: "C3"},
        HistoryQuery(Interval.DAY, start=DAY0 + timedelta(days=2), limit=4),
    )
    assert ([c.bucket for c in last.candles], last.next_start) == ([DAY0 + timedelta(days=2)] * 6, None)


def test_unknown_and_too_many_assets_are_refused_with_the_reason() -> None:
    store = _store(assets=51, sources=1, days=1)
    factory = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    with pytest.raises(NotFound, match="no asset with symbol NOPE"):
        history_assets(factory, symbols=("C1", "nope"))
    with pytest.raises(NotFound, match="no asset with id 99"):
        history_assets(factory, asset_ids=(99,))
    with pytest.raises(InvalidQuery, match="at most 50 assets; these name 51"):
        history_assets(factory, asset_ids=tuple(range(1, 52)))
