"""Runs asked for through the API, queued until a scheduler claims them."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs


class RequestStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # its scheduler died while running it


@attrs.frozen
class RunRequest:
    id: int
    sources: tuple[str, ...]
    status: RequestStatus
    requested_at: datetime
    claimed_at: datetime | None = None
    finished_at: datetime | None = None
    run_id: int | None = None
    error: str | None = None
    # a replay of the quarantine (`sources` then names sources, e.g. csv:prices, not kinds), of
    # the entries whose reason holds `replay_reason` (None: every entry)
    replay: bool = False
    replay_reason: str | None = None
