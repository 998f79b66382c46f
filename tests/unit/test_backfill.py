"""Backfill planning and working, over the in-memory store and a fake provider: windows cut to the
provider's page, plan limits, refusals, failures, windows that never settle, resuming a job."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs
import pytest

from adapters.memory.assets import InMemoryCoverage
from adapters.memory.backfill import InMemoryBackfillQueue
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from application.backfill import plan_backfill, unfinished_job, work_backfill
from application.errors import InvalidQuery, RangeRefused, SourceUnavailable
from application.pipeline import IngestOptions
from application.ports import HistoryPage
from domain.assets import Asset, CrossReference, Interval
from domain.backfill import BackfillRequest, HistoryTarget, JobState, Window, cut, plan_windows
from domain.coverage import Span
from domain.records import RawRecord, SourceType, UnifiedRecord, market_record

NOW = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@attrs.define
class FakeHistory:
    """A provider answering one sample a day, refusing before `reach`, failing `failures` times."""

    kind: str = "fake"
    intervals: tuple[Interval, ...] = (Interval.DAY,)
    span: timedelta = timedelta(days=100)
    refuse_before: datetime | None = None
    failures: int = 0
    asked: list[tuple[datetime, datetime]] = attrs.Factory(list)

    @property
    def normalizer(self) -> FakeHistory:
        return self

    def window(self, interval: Interval) -> timedelta:
        return self.span

    def reach(self) -> tuple[timedelta | None, str]:
        return None, "FAKE_HISTORY_DAYS"

    def provider_id(self, symbol: str, names: Mapping[str, str]) -> str | None:
        return names.get("fake") or (None if symbol == "NOID" else symbol.lower())

    def fetch(self, window: Window, run_id: int) -> HistoryPage:
        self.asked.append((window.start, window.end))
        if self.failures:
            self.failures -= 1
            raise SourceUnavailable("fake: down")
        if self.refuse_before and window.start < self.refuse_before:
            raise RangeRefused("fake refused: the plan reaches 30 days (FAKE_HISTORY_DAYS)")
        moments = []
        moment = window.start
        while moment < window.end:
            moments.append(moment)
            moment += DAY
        return HistoryPage(
            tuple(
                RawRecord.of(
                    source=window.source,
                    source_record_id=f"{window.provider_id}@{moment.isoformat()}",
                    payload={"symbol": window.symbol, "t": moment.isoformat(), "price": "10"},
                    fetched_at=NOW,
                    run_id=run_id,
                )
                for moment in moments
            )
        )

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        return market_record(
            raw, SourceType.API, symbol=raw.payload["symbol"], asset_name=None,
            price_usd=Decimal(raw.payload["price"]),
            observed_at=datetime.fromisoformat(raw.payload["t"]),
        )  # fmt: skip


@attrs.define
class World:
    store: InMemoryStore = attrs.Factory(InMemoryStore)
    provider: FakeHistory = attrs.Factory(FakeHistory)
    queue: InMemoryBackfillQueue = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        with self.uow() as uow:
            uow.assets.create([Asset(-1, "BTC", "Bitcoin"), Asset(-2, "NOID", "No id")])
            uow.commit()
        self.queue = InMemoryBackfillQueue(self.store)

    def uow(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store)

    def plan(
        self, symbols: tuple[str, ...] = ("BTC",), since: datetime = NOW - 250 * DAY, **more: object
    ) -> int:
        request = BackfillRequest(symbols, ("fake",), Interval.DAY, since, NOW, **more)  # type: ignore[arg-type]
        return plan_backfill(
            request,
            {"fake": self.provider},
            self.queue,
            InMemoryCoverage(self.store),
            self.uow,
            (),
            lambda: NOW,
        )

    def work(self) -> None:
        while work_backfill({"fake": self.provider}, self.queue, self.uow, lambda: NOW, IngestOptions()):
            pass


def test_a_range_is_cut_on_bucket_boundaries_into_the_providers_pages() -> None:
    start = datetime(2023, 1, 1, 13, tzinfo=UTC)
    windows = cut(start, datetime(2023, 1, 10, 1, tzinfo=UTC), timedelta(days=4), DAY)
    assert [(a.day, b.day) for a, b in windows] == [(1, 5), (5, 9), (9, 11)]
    target = HistoryTarget(1, "BTC", "fake", "btc")
    empty = [Span(datetime(2023, 1, 5, tzinfo=UTC), datetime(2023, 1, 9, tzinfo=UTC), 4)]
    planned = plan_windows(
        target, Interval.DAY, [(start, datetime(2023, 1, 11, tzinfo=UTC))], timedelta(days=4), empty
    )
    assert [(w.start.day, w.end.day) for w in planned] == [(1, 5), (9, 11)]


def test_a_job_is_worked_to_its_end_and_its_bars_carry_their_asset() -> None:
    world = World()
    job_id = world.plan()
    assert world.queue.job(job_id).windows.total == 3  # type: ignore[union-attr]
    world.work()
    job = world.queue.job(job_id)
    assert job is not None
    assert (job.state, job.bars, job.windows.done) == (JobState.SUCCESS, 250, 3)
    history = [key for key in world.store.state.history if key[1] == "fake:1d"]
    assert len(history) == 250
    assert {asset_id for asset_id, _, _ in history} == {1}


def test_what_cannot_be_planned_is_said_and_the_rest_goes_on() -> None:
    world = World()
    job = world.queue.job(world.plan(("BTC", "NOID", "ZZZ")))
    assert job is not None
    assert job.windows.total == 3
    assert job.problems == (
        "fake NOID: no fake id is known for asset 2 (a fake snapshot run, or its column in the cross-reference "
        "file, gives it)",
        "ZZZ: no asset has this symbol yet (a provider's snapshot or a file brings it)",
    )


def test_a_refused_window_is_settled_with_the_reason_and_the_allowed_part_loads() -> None:
    world = World(provider=FakeHistory(refuse_before=NOW - 120 * DAY))
    job_id = world.plan()
    world.work()
    job = world.queue.job(job_id)
    assert job is not None
    assert (job.state, job.windows.refused, job.windows.done) == (JobState.PARTIAL, 2, 1)
    assert job.errors == ("fake refused: the plan reaches 30 days (FAKE_HISTORY_DAYS)",)


def test_a_window_that_keeps_failing_is_failed_after_its_attempts() -> None:
    world = World(provider=FakeHistory(failures=100))
    job_id = world.plan(since=NOW - 50 * DAY)
    for _ in range(5):
        work_backfill({"fake": world.provider}, world.queue, world.uow, lambda: NOW, IngestOptions())
    job = world.queue.job(job_id)
    assert job is not None
    assert (job.state, job.windows.failed, len(world.provider.asked)) == (JobState.FAILED, 1, 3)
    assert job.errors == ("fake: down",)


def test_a_window_whose_batch_never_commits_is_failed_instead_of_taken_for_ever() -> None:
    world = World()
    job_id = world.plan(since=NOW - 50 * DAY)
    window = world.queue.claim("fake", Interval.DAY, 1)
    assert window is not None
    for run in range(2, 6):  # its runs died (no such run is running): taken again each time
        again = world.queue.claim("fake", Interval.DAY, run)
        assert again is not None
        assert again.id == window.id
    world.work()
    job = world.queue.job(job_id)
    assert job is not None
    assert job.windows.failed == 1
    assert "taken 5 times without its bars being stored" in job.errors[0]


def test_the_same_backfill_again_goes_on_with_the_unfinished_job() -> None:
    world = World()
    job_id = world.plan()
    request = BackfillRequest(("BTC",), ("fake",), Interval.DAY, NOW - 250 * DAY, NOW)
    assert unfinished_job(world.queue, request, (True, True)) == job_id
    assert unfinished_job(world.queue, attrs.evolve(request, interval=Interval.HOUR), (True, True)) is None
    world.work()
    assert unfinished_job(world.queue, request, (True, True)) is None


def test_a_request_the_providers_cannot_answer_is_refused_whole() -> None:
    world = World()
    request = BackfillRequest(("BTC",), ("fake",), Interval.HOUR, NOW - DAY, NOW)
    with pytest.raises(InvalidQuery, match="fake has no 1h history"):
        plan_backfill(request, {"fake": world.provider}, world.queue, InMemoryCoverage(world.store), world.uow,
                      (CrossReference("BTC", "Bitcoin", {}),), lambda: NOW)  # fmt: skip
    with pytest.raises(InvalidQuery, match="the range is empty"):
        world.plan(since=NOW)
