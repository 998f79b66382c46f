"""Health per source kind: `healthy` only when every enabled kind's newest run succeeded and none
is stale; the API and the dashboard's headline give the same answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import falcon.testing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.memory.reader import InMemoryHealthProbe, InMemoryRecordReader, InMemorySourceRunLedger
from adapters.memory.sources import InMemoryMarketNormalizer, InMemorySourceReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from application.ingest import run_etl
from application.pipeline import SourcePipeline
from domain.health import Health, SourceRunState, judge, judge_kind
from domain.runs import RunStatus, RunTrigger
from entrypoints.api.app import ApiOptions, create_app
from entrypoints.bootstrap import KINDS

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
FIVE = timedelta(minutes=5)


def state(
    source: str, run_id: int, status: RunStatus, minutes_ago: float, error: str | None = None
) -> SourceRunState:
    finished = NOW - timedelta(minutes=minutes_ago)
    return SourceRunState(source, run_id, status, finished - timedelta(seconds=3), finished, error)


def test_a_kind_that_never_ran_is_degraded() -> None:
    verdict = judge_kind("rss", FIVE, [state("coingecko", 1, RunStatus.SUCCESS, 1)], NOW)
    assert (verdict.status, verdict.reasons) == (Health.DEGRADED, ("never run",))


def test_healthy_only_when_every_enabled_kind_last_succeeded_and_is_fresh() -> None:
    states = [
        state("coingecko", 7, RunStatus.SUCCESS, 1),
        state("coinpaprika", 8, RunStatus.FAILED, 1, "coinpaprika: cannot reach the provider"),
        state("csv:prices", 9, RunStatus.SUCCESS, 2),
    ]
    overall, kinds = judge({"coingecko": FIVE, "csv": FIVE}, states, NOW)
    assert overall is Health.HEALTHY  # coinpaprika is not enabled: not judged
    overall, kinds = judge({"coingecko": FIVE, "coinpaprika": FIVE, "csv": FIVE}, states, NOW)
    assert overall is Health.DEGRADED
    by_kind = {kind.kind: kind for kind in kinds}
    assert by_kind["coingecko"].status is Health.HEALTHY
    assert by_kind["coinpaprika"].reasons == ("coinpaprika failed: coinpaprika: cannot reach the provider",)


def test_a_source_failing_every_run_degrades_health_even_when_the_newest_run_of_another_succeeded() -> None:
    # the scheduler records one run per kind: the newest run overall says nothing of the others
    states = [
        state("coinpaprika", 10, RunStatus.FAILED, 3, "boom"),
        state("coingecko", 11, RunStatus.SUCCESS, 1),
    ]
    overall, _ = judge({"coingecko": FIVE, "coinpaprika": FIVE}, states, NOW)
    assert overall is Health.DEGRADED


def test_stale_after_two_intervals_and_a_minute() -> None:
    fresh = judge_kind("coingecko", FIVE, [state("coingecko", 1, RunStatus.SUCCESS, 10.9)], NOW)
    stale = judge_kind("coingecko", FIVE, [state("coingecko", 1, RunStatus.SUCCESS, 11.1)], NOW)
    assert (fresh.status, fresh.stale) == (Health.HEALTHY, False)
    assert (stale.status, stale.stale) == (Health.DEGRADED, True)
    assert stale.reasons == ("stale: last run finished 11.1 min ago, runs every 5.0 min",)


def test_a_kinds_sources_are_those_its_newest_run_read() -> None:
    # old.csv failed in run 3 and was then taken out of the glob: run 4 read only new.csv
    states = [state("csv:old", 3, RunStatus.FAILED, 8, "refused"), state("csv:new", 4, RunStatus.SUCCESS, 1)]
    verdict = judge_kind("csv", FIVE, states, NOW)
    assert verdict.status is Health.HEALTHY
    assert [item.source for item in verdict.sources] == ["csv:new"]
    both = [state("csv:a", 4, RunStatus.SKIPPED, 1, "no file"), state("csv:b", 4, RunStatus.SUCCESS, 1)]
    assert judge_kind("csv", FIVE, both, NOW).last_status is RunStatus.SKIPPED  # skipped is not success


@given(st.lists(st.sampled_from(list(RunStatus)), min_size=1, max_size=6), st.floats(0, 30))
def test_healthy_implies_every_member_succeeded_and_is_fresh(
    statuses: list[RunStatus], minutes: float
) -> None:
    finished = [s for s in statuses if s is not RunStatus.RUNNING] or [RunStatus.SUCCESS]
    states = [state(f"csv:f{i}", 5, status, minutes) for i, status in enumerate(finished)]
    verdict = judge_kind("csv", FIVE, states, NOW)
    healthy = all(s is RunStatus.SUCCESS for s in finished) and minutes <= 11
    assert (verdict.status is Health.HEALTHY) == healthy


@pytest.fixture
def stack() -> tuple[InMemoryStore, falcon.testing.TestClient]:
    store = InMemoryStore()
    good = InMemorySourceReader(
        "coingecko", [[{"id": "c1", "symbol": "btc", "price": "1", "at": "2024-05-01T11:58:00Z"}]]
    )
    bad = InMemorySourceReader("coinpaprika", [[{"id": "x", "symbol": "btc"}]])  # no price: quarantined
    uow = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    run_etl([SourcePipeline(bad, InMemoryMarketNormalizer())], uow, lambda: NOW, RunTrigger.SCHEDULE)
    run_etl([SourcePipeline(good, InMemoryMarketNormalizer())], uow, lambda: NOW, RunTrigger.SCHEDULE)
    options = ApiOptions(
        source_kinds=tuple(KINDS),
        schedules={"coingecko": 5, "coinpaprika": 5},
        enabled_kinds=("coingecko", "coinpaprika"),
    )
    app = create_app(
        InMemoryRecordReader(store), InMemoryHealthProbe(), uow, options, lambda: NOW,
        ledger=InMemorySourceRunLedger(store),
    )  # fmt: skip
    return store, falcon.testing.TestClient(app)


def test_health_and_the_dashboard_headline_name_the_failing_source_above_a_successful_newest_run(
    stack: tuple[InMemoryStore, falcon.testing.TestClient],
) -> None:
    _, client = stack
    body = client.simulate_get("/health").json
    assert body["etl_last_status"] == "success"  # the newest run, kept for scripts that read it
    assert body["status"] == "degraded"
    assert body["sources"]["coingecko"]["status"] == "healthy"
    assert body["sources"]["coinpaprika"]["last_status"] == "failed"
    assert len(body["reasons"]) == 1
    assert body["reasons"][0].startswith(
        "coinpaprika: coinpaprika failed: coinpaprika: all 1 records read were quarantined"
    )
    page = client.simulate_get("/").text
    assert '<span class="status degraded" id="health">degraded</span>' in page
    assert "coinpaprika: coinpaprika failed" in page
