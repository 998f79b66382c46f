"""Run comparison and anomaly scoring: the use cases behind `/compare-runs` and `/runs/{id}/anomalies`."""

from __future__ import annotations

from datetime import timedelta

import attrs

from application.errors import NotFound
from application.ports import ReportingUnits
from application.runs import previous_sharing_a_source
from domain.comparison import Anomaly, RunComparison, compare_runs, price_divergence, score_run
from domain.records import is_snapshot_source
from domain.runs import EtlRun

DEFAULT_BASELINE_RUNS = 10
DEFAULT_PRICE_MOVE_PCT = 10.0
# price divergence between providers: only their top ranks, where a symbol names one asset
DIVERGENCE_MAX_RANK = 100
DIVERGENCE_THRESHOLD_PCT = 5.0
DEFAULT_CONSENSUS_WINDOW = timedelta(minutes=15)


def compare(
    uow_factory: ReportingUnits,
    run_a: int | None = None,
    run_b: int | None = None,
    price_move_pct: float = DEFAULT_PRICE_MOVE_PCT,
) -> RunComparison:
    """Compare two runs: counters, data where kept, anomalies. Without ids, the newest run and
    the newest one before it that read one of its sources (runs per source kind alternate: the
    run just before may share nothing with it)."""
    with uow_factory() as uow:
        if run_a is None and run_b is None:
            latest = uow.runs.recent(1)
            if not latest:
                raise NotFound("there is no run yet: nothing to compare")
            second = latest[0]
            earlier = previous_sharing_a_source(uow.runs, second)
            if earlier is None:
                raise NotFound(
                    f"run {second.id} is the first run of its sources: nothing to compare it with yet"
                )
            first = earlier
        elif run_a is None or run_b is None:
            raise NotFound("give both runs to compare, or neither for the last two")
        else:
            first, second = _run(uow.runs.get(run_a), run_a), _run(uow.runs.get(run_b), run_b)
        comparison = compare_runs(first, second)
        sources = tuple(
            attrs.evolve(
                delta,
                data=uow.observations.observation_delta(delta.source, first.id, second.id, price_move_pct)
                if delta.in_a is not None and delta.in_b is not None
                else None,
            )
            for delta in comparison.sources
        )
    return attrs.evolve(comparison, sources=sources)


def anomalies(
    uow_factory: ReportingUnits,
    run_id: int,
    baseline_runs: int = DEFAULT_BASELINE_RUNS,
    divergence_pct: float = DIVERGENCE_THRESHOLD_PCT,
    window: timedelta | None = DEFAULT_CONSENSUS_WINDOW,
) -> list[Anomaly]:
    """The run's anomalies against the last `baseline_runs` earlier runs of each of its sources;
    prices are compared across sources only when observed within `window` of each other."""
    with uow_factory() as uow:
        run = _run(uow.runs.get(run_id), run_id)
        history: dict[int, EtlRun] = {}
        for item in run.sources:
            for past in uow.runs.recent(baseline_runs + 1, source=item.source, before=run_id):
                history[past.id] = past
        divergence = (
            price_divergence(
                uow.observations.quotes_as_of(run_id, DIVERGENCE_MAX_RANK), divergence_pct, window
            )
            if any(is_snapshot_source(item.source) for item in run.sources)
            else []
        )
    return score_run(run, sorted(history.values(), key=lambda past: past.id)) + divergence


def _run(run: EtlRun | None, run_id: int) -> EtlRun:
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return run
