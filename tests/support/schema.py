"""Migrations rolled back by a test, as an operator's `yoyo rollback` would."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

from adapters.postgres.migrations import yoyo_url

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def roll_back(url: str, migration: str) -> None:
    """`migration` (its id: `0020.raw-csv-batches`) and every one applied after it, rolled back."""
    backend = get_backend(yoyo_url(url))
    with backend.lock():
        backend.rollback_migrations(
            backend.to_rollback(read_migrations(str(MIGRATIONS)).filter(lambda found: found.id == migration))
        )
