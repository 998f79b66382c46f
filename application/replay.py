"""Quarantined records read again through the current rules and options.

A replay is a run of its own (trigger `replay`) over each source's quarantined entries instead of
the source itself: the same normalizer, checks, asset resolution and write path as a load, so a
record that passes now is stored exactly as a load would store it, with its lineage to the raw
row it was first read from (an entry carries the id its payload is stored under: not stored
again). The store releases an entry
whose payload loads (`BatchWrites.write_prepared`); one that fails again stays, with the new
reason. The source's checkpoint is not touched (replay batches have no position), and health
does not count a replay as the source's newest run.

An entry whose record a later run stored is not read again: the stored version is newer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from application.ingest import run_etl
from application.pipeline import IngestOptions, SourcePipeline
from application.ports import Batch, Clock, IngestUnits, Normalizer, QuarantineBacklog, SourceLocks
from domain.records import Source
from domain.runs import EtlRun, RunTrigger

REPLAY_BATCH = 1000


@runtime_checkable
class UnderstandsItsInput(Protocol):
    """A normalizer that needs what only its input tells (a file's layout) before it can read a
    payload: `understand` reads that now, under the current options, or raises the source's
    refusal (`FileRefused`, `SourceUnavailable`)."""

    def understand(self) -> None: ...


class QuarantinedReader:
    """A source's quarantined entries as batches of the raw records they were, oldest first."""

    def __init__(
        self,
        source: Source,
        backlog: QuarantineBacklog,
        normalizer: Normalizer,
        reason: str | None = None,
        batch_size: int = REPLAY_BATCH,
    ) -> None:
        self.source = source
        self._backlog, self._normalizer = backlog, normalizer
        self._reason, self._batch_size = reason, batch_size

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        if isinstance(self._normalizer, UnderstandsItsInput):
            self._normalizer.understand()
        after = 0
        while entries := self._backlog.replayable(self.source.name, self._reason, after, self._batch_size):
            after = entries[-1][0]  # an entry failing again keeps its id: each is read once
            yield Batch(raws=tuple(raw for _, raw in entries), cursor=None)


def replay_quarantine(
    pipelines: Sequence[SourcePipeline],
    backlog: QuarantineBacklog,
    uow_factory: IngestUnits,
    clock: Clock,
    options: IngestOptions,
    locks: SourceLocks | None = None,
    reason: str | None = None,
) -> EtlRun:
    """One replay run over the pipelines' sources (their quarantined entries whose reason holds
    `reason`, any case)."""
    replays = [
        SourcePipeline(
            QuarantinedReader(pipeline.reader.source, backlog, pipeline.normalizer, reason),
            pipeline.normalizer,
            pipeline.contract,
        )
        for pipeline in pipelines
    ]
    return run_etl(replays, uow_factory, clock, RunTrigger.REPLAY, options, locks)
