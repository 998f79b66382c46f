"""The in-memory store's state: what a unit of work copies, edits and swaps in on commit."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime
from typing import Any

import attrs

from domain.assets import Alias, Asset, HistoryPoint
from domain.checkpoints import Checkpoint
from domain.drift import StoredDrift
from domain.records import RawRecord, StoredRecord, UnifiedRecord
from domain.requests import RunRequest
from domain.runs import EtlRun, SourceRun


@attrs.define
class StoredRaw:
    id: int
    raw: RawRecord


@attrs.define
class Quarantined:
    raw: RawRecord
    reason: str
    first_run_id: int
    last_run_id: int
    id: int = 0  # kept while the entry is, as the table's identity


@attrs.define
class State:
    raws: dict[tuple[str, str, str], StoredRaw] = attrs.Factory(dict)
    records: dict[tuple[str, str], StoredRecord] = attrs.Factory(dict)
    quarantine: dict[tuple[str, str, str], Quarantined] = attrs.Factory(dict)
    checkpoints: dict[str, Checkpoint] = attrs.Factory(dict)
    runs: dict[int, EtlRun] = attrs.Factory(dict)
    source_runs: dict[tuple[int, str], SourceRun] = attrs.Factory(dict)
    # when each source of a run started and finished, as etl_run_sources keeps them
    source_times: dict[tuple[int, str], tuple[datetime, datetime | None]] = attrs.Factory(dict)
    drifts: dict[tuple[str, str, str, str], StoredDrift] = attrs.Factory(dict)
    requests: dict[int, RunRequest] = attrs.Factory(dict)
    schedule: dict[str, datetime] = attrs.Factory(dict)
    observations: dict[tuple[str, int], dict[str, UnifiedRecord]] = attrs.Factory(dict)
    responses: dict[tuple[int, str, str], int] = attrs.Factory(dict)
    ids: Any = attrs.Factory(lambda: itertools.count(1))
    assets: dict[int, Asset] = attrs.Factory(dict)
    aliases: dict[tuple[str, str], Alias] = attrs.Factory(dict)
    history: dict[tuple[int, str, datetime], HistoryPoint] = attrs.Factory(dict)  # (asset, source, observed)
    analyzed: list[int] = attrs.Factory(list)  # statistics refreshes asked for (rows written)


class InMemoryStore:
    def __init__(self) -> None:
        self.state = State()
        self.commits = 0
        # one unit of work at a time, as if serializable: the ETL writes a batch on one thread
        # while it prepares the next on another, and copy-and-swap would lose one's changes
        self.lock = threading.RLock()
