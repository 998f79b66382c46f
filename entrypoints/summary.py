"""A run's summary for people: one table on the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from domain.runs import EtlRun, RunStatus

STYLE = {
    RunStatus.SUCCESS: "green",
    RunStatus.PARTIAL: "yellow",
    RunStatus.FAILED: "red",
    RunStatus.SKIPPED: "yellow",
}


def print_summary(run: EtlRun) -> None:
    table = Table(title=f"run {run.id}: {run.status.value}", title_justify="left")
    for column in (
        "source",
        "status",
        "fetched",
        "inserted",
        "updated",
        "unchanged",
        "quarantined",
        "seconds",
    ):
        table.add_column(column, justify="left" if column in ("source", "status") else "right")
    for item in run.sources:
        c = item.counters
        table.add_row(
            escape(item.source),
            f"[{STYLE.get(item.status, 'white')}]{item.status.value}[/]",
            *(f"{value:,}" for value in (c.fetched, c.inserted, c.updated, c.unchanged, c.quarantined)),
            f"{c.duration_ms / 1000:.1f}",
        )
    console = Console()
    console.print(table)
    for item in run.sources:
        if item.error:
            console.print(f"[bold]{escape(item.source)}[/]: {escape(item.error)}", highlight=False)
