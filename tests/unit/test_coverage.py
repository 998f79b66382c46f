"""Coverage: covered ranges from the fake store, and the gaps around them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.memory.assets import InMemoryCoverage
from adapters.memory.store import InMemoryStore, InMemoryUnitOfWork
from application.assets import asset_coverage
from application.errors import NotFound
from domain.assets import Asset, HistoryPoint, Interval
from domain.coverage import Span, gaps_between

DAY = timedelta(days=1)
D0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_gaps_lie_between_ranges_and_from_the_asked_start_to_the_asked_end() -> None:
    covered = [Span(D0 + 2 * DAY, D0 + 5 * DAY, 3), Span(D0 + 7 * DAY, D0 + 8 * DAY, 1)]
    assert gaps_between(covered, DAY) == (Span(D0 + 5 * DAY, D0 + 7 * DAY, 2),)
    assert gaps_between(covered, DAY, D0 + timedelta(hours=5), D0 + 9 * DAY + timedelta(hours=1)) == (
        Span(D0, D0 + 2 * DAY, 2),
        Span(D0 + 5 * DAY, D0 + 7 * DAY, 2),
        Span(D0 + 8 * DAY, D0 + 10 * DAY, 2),
    )
    assert gaps_between([], DAY, D0, D0 + 2 * DAY) == (Span(D0, D0 + 3 * DAY, 3),)
    assert gaps_between([], DAY, D0) == ()  # an open end says nothing of what is missing


def test_coverage_of_the_fake_store_per_source() -> None:
    store = InMemoryStore()
    store.state.assets[1] = Asset(1, "BTC", "Bitcoin", False)
    for day in (0, 1, 2, 5):
        moment = D0 + day * DAY + timedelta(hours=3)
        store.state.history[(1, "csv:a", moment)] = HistoryPoint(moment, Decimal(1))
    store.state.history[(1, "coingecko", D0 + 9 * DAY)] = HistoryPoint(D0 + 9 * DAY, Decimal(1))
    found = asset_coverage(lambda: InMemoryUnitOfWork(store), InMemoryCoverage(store), 1, Interval.DAY)
    by_source = {source.source: source for source in found.sources}
    assert by_source["csv:a"].covered == (Span(D0, D0 + 3 * DAY, 3), Span(D0 + 5 * DAY, D0 + 6 * DAY, 1))
    assert (by_source["csv:a"].buckets, by_source["csv:a"].missing) == (4, 2)
    assert by_source["coingecko"].covered == (Span(D0 + 9 * DAY, D0 + 10 * DAY, 1),)
    with pytest.raises(NotFound):
        asset_coverage(lambda: InMemoryUnitOfWork(store), InMemoryCoverage(store), 2, Interval.DAY)
