"""Schema migrations with yoyo, from the SQL files in `migrations/`."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations


def yoyo_url(database_url: str) -> str:
    """yoyo picks its psycopg 3 backend by the `postgresql+psycopg` scheme."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    return f"postgresql+psycopg://{rest}"


def migration_ids(directory: Path) -> list[str]:
    return sorted(
        path.name.removesuffix(".sql")
        for path in directory.glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )


def apply_migrations(database_url: str, directory: Path) -> list[str]:
    """Apply what is pending, under yoyo's lock, and return the ids applied."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(directory))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [migration.id for migration in pending]
