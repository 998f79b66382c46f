"""Fixtures of the unit tests: an in-memory store with one run, and the API over it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import falcon.testing
import pytest

from adapters.memory.reader import InMemoryHealthProbe, InMemoryQuarantineReader, InMemoryRecordReader
from adapters.memory.sources import InMemoryMarketNormalizer, InMemorySourceReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from application.ingest import run_etl
from application.pipeline import SourcePipeline
from domain.runs import RunTrigger
from entrypoints.api.app import ApiOptions, create_app
from entrypoints.bootstrap import KINDS


def clock() -> datetime:
    return datetime(2024, 5, 3, 12, tzinfo=UTC)  # after every observation of the store it fills


def coin(i: int, symbol: str, price: str, day: int) -> dict[str, Any]:
    return {"id": f"c{i}", "symbol": symbol, "price": price, "at": f"2024-05-{day:02d}T00:00:00Z"}


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    pages = [[coin(1, "btc", "60000.123456789", 1), coin(2, "eth", "3000", 2), coin(3, "btc", "61000", 3)]]
    reader = InMemorySourceReader("api", pages)
    run_etl(
        [SourcePipeline(reader, InMemoryMarketNormalizer())],
        lambda: InMemoryUnitOfWork(store),
        clock,
        RunTrigger.MANUAL,
    )
    return store


@pytest.fixture
def probe() -> InMemoryHealthProbe:
    return InMemoryHealthProbe()


@pytest.fixture
def client(store: InMemoryStore, probe: InMemoryHealthProbe) -> falcon.testing.TestClient:
    options = ApiOptions(source_kinds=tuple(KINDS), api_keys=("k-123", "k-456"), version="9.9.9")
    app = create_app(
        InMemoryRecordReader(store),
        probe,
        lambda: InMemoryUnitOfWork(store),
        options,
        clock,
        InMemoryQuarantineReader(store),
    )
    return falcon.testing.TestClient(app)
