"""backfill: ten years of daily history of 100 assets from the loopback CoinGecko (limits off),
planned and worked by `kaspero backfill` in one process; bars per second against the CSV
loader's first load in the same `make bench` run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.harness import REPO, print_table, save, scratch_database, timed
from tests.support.provider import coin_name, loopback_provider

ASSETS = int(os.environ.get("BENCH_BACKFILL_ASSETS", "100"))
YEARS = int(os.environ.get("BENCH_BACKFILL_YEARS", "10"))

_PEAK_RSS_WRAPPER = (
    "import resource, subprocess, sys;"
    "done = subprocess.run(sys.argv[1:]);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def main(csv_rows_per_s: float | None = None) -> list[dict[str, Any]]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=365 * YEARS)
    symbols = [coin_name(i)[1].upper() for i in range(ASSETS)]
    rows: list[dict[str, Any]] = []
    with scratch_database() as url, loopback_provider() as provider:
        provider.state.coins, provider.state.now = ASSETS, today
        provider.state.listed_from = since
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "ETL_SOURCES": "coingecko",
            "COINGECKO_BASE_URL": f"{provider.url}/coingecko",
            "COINGECKO_MAX_PAGES": str(ASSETS // 250 + 2),
            "COINGECKO_RATE_LIMIT_PER_MINUTE": "1000000",
            "COINGECKO_HISTORY_DAYS": "0",
            "LOG_LEVEL": "WARNING",
        }
        subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "etl", "run", "--once"], cwd=REPO, env=env, check=True,
            capture_output=True,
        )  # fmt: skip
        for case in ("first backfill", "the same again (every bar stored)"):
            command = [sys.executable, "-m", "entrypoints.cli", "backfill", *symbols, "--source", "coingecko",
                       "--since", since.date().isoformat(), "--until", today.date().isoformat(), "--json"]  # fmt: skip
            with timed() as clock:
                done = subprocess.run(
                    [sys.executable, "-c", _PEAK_RSS_WRAPPER, *command], cwd=REPO, env=env, capture_output=True,
                    text=True, check=True,
                )  # fmt: skip
            lines = done.stdout.strip().splitlines()
            job = json.loads("\n".join(lines[:-1]))
            rate = job["bars"] / clock["seconds"]
            rows.append({
                "case": case, "state": job["state"], "windows": job["windows"]["total"], "bars": job["bars"],
                "requests": job["requests"], "seconds": clock["seconds"], "bars_per_s": rate,
                "vs_csv_first_load": rate / csv_rows_per_s if csv_rows_per_s else None,
                "peak_rss_mb": float(lines[-1]),
            })  # fmt: skip
    print_table(f"backfill ({YEARS} years daily x {ASSETS} assets, loopback CoinGecko, limits off)", rows)
    save("backfill", rows)
    return rows


if __name__ == "__main__":
    main()
