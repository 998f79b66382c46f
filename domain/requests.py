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
