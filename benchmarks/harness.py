"""What every benchmark shares: a scratch database, timing, peak memory, and the results table."""

from __future__ import annotations

import json
import os
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters.postgres.admin import create_database, database_url_for, drop_database
from adapters.postgres.embedded import EmbeddedPostgres
from entrypoints.bootstrap import migrate

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


@contextmanager
def scratch_database() -> Iterator[str]:
    """A migrated database of its own on DATABASE_URL's server, or on the embedded one."""
    given = os.environ.get("DATABASE_URL", "").strip()
    embedded = None if given else EmbeddedPostgres(REPO / ".kaspero" / "bench")
    server = database_url_for(given, "postgres") if given else embedded.start()  # type: ignore[union-attr]
    name = f"kaspero_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(server, name)
    try:
        migrate(url)
        yield url
    finally:
        drop_database(server, name)
        if embedded is not None:
            embedded.stop()


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    result: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - started


def peak_rss_mb(children: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024


def save(name: str, rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2, default=str))


def _cpu_of(pid: int, children: bool = False) -> float:
    """A process's CPU seconds from /proc (with its reaped children's when `children`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(database_url: str) -> float | None:
    """The CPU seconds the PostgreSQL server behind `database_url` has used so far, when it runs
    on this machine (None otherwise): its postmaster's own and its exited backends' (reaped into
    the postmaster's children time), plus each live server process's. Two readings around a
    command give the database's share of that command's work."""
    import psycopg

    try:
        with psycopg.connect(database_url) as connection:
            backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None  # a server elsewhere: /proc does not show it
    total = _cpu_of(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == backend:
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == postmaster:
                total += _cpu_of(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(column for row in rows for column in row))
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print(f"\n{title}")
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)
