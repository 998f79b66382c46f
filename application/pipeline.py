"""What a run is given: each source's pipeline, the options it ingests with, and the counters a
run keeps across its sources (the failure drill's and the rows written)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import attrs

from application.errors import InjectedFailure
from application.ports import EtlObserver, Normalizer, NullObserver, SourceFanOut, SourceReader
from domain.assets import CrossReference
from domain.drift import Contract
from domain.pairs import UsdQuotes
from domain.plausibility import Bounds

DEFAULT_AUTO_MAP_CONFIDENCE = 0.8


@attrs.frozen
class SourcePipeline:
    """A source's reader, the normalizer for what it reads, and the contract its payloads keep."""

    reader: SourceReader
    normalizer: Normalizer
    contract: Contract | None = None

    @property
    def name(self) -> str:
        return self.reader.source.name


def _never() -> bool:
    return False


@attrs.frozen
class IngestOptions:
    """`should_stop` is asked after each committed batch: a graceful stop (SIGTERM) ends the run there."""

    fail_after: int | None = None
    # how the user set `fail_after`, for its message (the entrypoint names its own setting)
    fail_after_named: str = "the failure drill"
    auto_map_confidence: float = DEFAULT_AUTO_MAP_CONFIDENCE
    drift_removal_share: float = 0.5
    observer: EtlObserver = attrs.field(factory=NullObserver)
    should_stop: Callable[[], bool] = _never
    observation_runs_kept: int = 20
    crossref: tuple[CrossReference, ...] = ()
    usd: UsdQuotes = attrs.Factory(UsdQuotes)
    history_retention: timedelta | None = None  # older history is dropped after a run
    # several sources at once elsewhere (as many as the entrypoint allows); not with `fail_after`, a drill in line
    fan_out: SourceFanOut | None = None
    bounds: Bounds = attrs.Factory(Bounds)  # PLAUSIBLE_*: what a stored number may be


@attrs.define
class FailureInjector:
    """Raises `InjectedFailure` once a run has processed more than `after` records.

    Controlled failure for resilience tests and drills: the batch in flight is not committed,
    exactly as if the process had died there.
    """

    after: int | None = None
    named: str = "the failure drill"
    seen: int = 0

    def check(self, batch_size: int) -> None:
        if self.after is None:
            return
        self.seen += batch_size
        if self.seen > self.after:
            raise InjectedFailure(f"failure injected after {self.after} records ({self.named})")


@attrs.define
class RunTotals:
    """What a whole run wrote, across its sources."""

    written: int = 0
