"""ingest-api: CoinGecko (10,000 coins in pages of 250) and CoinPaprika (one array of 10,000)
from the loopback provider: a first run, an unchanged rerun, a run where 10% of prices moved.
Rows/s and the peak memory (RSS) of the ETL process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.harness import REPO, print_table, save, scratch_database, timed
from tests.support.provider import loopback_provider

COINS = int(os.environ.get("BENCH_API_COINS", "10000"))

# runs the CLI as a child and prints its peak RSS after its output
_PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys;"
    "subprocess.run(sys.argv[1:]);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def etl_pass(env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once"]
    with timed() as clock:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS_WRAPPER, *command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-2])
    return {
        "seconds": clock["seconds"],
        "peak_rss_mb": float(lines[-1]),
        "sources": summary["sources"],
        "status": summary["status"],
    }


def main() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with scratch_database() as url, loopback_provider() as provider:
        provider.state.coins = COINS
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "ETL_SOURCES": "coingecko,coinpaprika",
            "COINGECKO_BASE_URL": f"{provider.url}/coingecko",
            "COINPAPRIKA_BASE_URL": f"{provider.url}/coinpaprika",
            "COINGECKO_MAX_PAGES": str(COINS // 250 + 2),
            "COINGECKO_RATE_LIMIT_PER_MINUTE": "100000",
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "100000",
            "LOG_LEVEL": "WARNING",
        }
        first = etl_pass(env)
        rows.append(_row("first run", first))
        rows.append(_row("unchanged rerun", etl_pass(env), first))
        provider.state.price_factor, provider.state.moved_every = 1.1, 10
        rows.append(_row("10% of prices moved", etl_pass(env), first))
    print_table(
        f"ingest-api ({COINS:,} CoinGecko coins in pages of 250 + {COINS:,} CoinPaprika tickers)", rows
    )
    save("ingest_api", rows)
    return rows


def _row(case: str, result: dict[str, Any], first: dict[str, Any] | None = None) -> dict[str, Any]:
    totals = {
        key: sum(source[key] for source in result["sources"].values())
        for key in ("fetched", "inserted", "updated", "unchanged")
    }
    row = {
        "case": case,
        "status": result["status"],
        **totals,
        "seconds": result["seconds"],
        "rows_per_s": totals["fetched"] / result["seconds"],
        "peak_rss_mb": result["peak_rss_mb"],
    }
    if first is not None:
        row["speedup_vs_first"] = first["seconds"] / result["seconds"]
    return row


if __name__ == "__main__":
    main()
