"""History backfill as a user runs it: `kaspero backfill` killed with SIGKILL and run again, the
API over real gunicorn, scheduler processes sharing one job and one rate budget per provider,
and three providers' history judging a bar that is 30 % off. The loopback provider is the only
provider; every answer is real HTTP."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from tests.e2e.test_schedulers import scheduler, stop
from tests.support.processes import REPO, environment, get, gunicorn, kaspero
from tests.support.provider import LoopbackProvider, loopback_provider

KEY = "backfill-key"
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = 3 * 365


def provider_env(database_url: str, provider: LoopbackProvider, **more: str) -> dict[str, str]:
    values = {
        "DATABASE_URL": database_url,
        "COINGECKO_BASE_URL": f"{provider.url}/coingecko",
        "COINPAPRIKA_BASE_URL": f"{provider.url}/coinpaprika",
        "BINANCE_BASE_URL": f"{provider.url}/binance",
        "COINGECKO_RATE_LIMIT_PER_MINUTE": "60000",
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "60000",
        "BINANCE_RATE_LIMIT_PER_MINUTE": "60000",
        "COINGECKO_HISTORY_DAYS": "0",
        "COINPAPRIKA_HISTORY_DAYS": "0",
        "RUN_ABANDON_GRACE_SECONDS": "0",
        "ETL_SOURCES": "coingecko,coinpaprika,binance",
        "API_KEYS": KEY,
    }
    return environment(**{**values, **more})


def truncate(database_url: str) -> None:
    from tests.conftest import TABLES

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


def scalar(database_url: str, query: str) -> object:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(query).fetchone()
    return row[0] if row else None


def test_a_backfill_killed_midway_goes_on_exactly_once_and_the_api_follows_it(database_url: str) -> None:
    truncate(database_url)
    since, until = (TODAY - timedelta(days=DAYS)).date().isoformat(), TODAY.date().isoformat()
    command = ["backfill", "BTC", "ETH", "SOL", "--since", since, "--until", until, "--json"]
    with loopback_provider() as provider:
        provider.state.coins, provider.state.now = 8, TODAY
        env = provider_env(database_url, provider)
        assert kaspero("etl", "run", "--once", env=env).returncode == 0  # the assets and their ids
        provider.state.history_delay = 0.15
        worker = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", *command],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _settled(database_url) < 6:
                time.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        settled_before = _settled(database_url)
        assert 6 <= settled_before < 24  # killed in the middle: 3 assets × (3 + 3 + 2) windows
        asked_before = len(_history_requests(provider))
        provider.state.history_delay = 0
        again = kaspero(*command, env=env)  # the same request: its unfinished job goes on
        assert again.returncode == 0, again.stderr
        assert scalar(database_url, "SELECT count(*) FROM backfill_jobs") == 1
        # the windows settled before the kill were not asked again; the one in flight was
        asked_after = len(_history_requests(provider)) - asked_before
        assert asked_after <= 24 - settled_before + 1
        for source in ("coingecko:1d", "coinpaprika:1d", "binance:1d"):
            count = scalar(database_url, f"SELECT count(*) FROM market_history WHERE source = '{source}'")
            assert count == 3 * DAYS, source  # every bar once
        with gunicorn(env) as api:
            status, _, body = get(f"{api}/backfills/1")
            assert status == 200
            job = body["data"]
            assert (job["state"], job["windows"]["done"], job["windows"]["total"]) == ("success", 24, 24)
            assert job["bars"] == 3 * 3 * DAYS
            # a plan-limited range, asked over HTTP: refused with the limit named, the rest planned
            request = _post(f"{api}/backfills", {"symbols": ["ETH"], "sources": ["coingecko"],
                                                  "since": since, "until": until})  # fmt: skip
            assert request[0] == 202
            assert request[1].startswith("/backfills/")
    with loopback_provider() as provider:
        provider.state.coins, provider.state.now, provider.state.history_days = 8, TODAY, 365
        env = provider_env(database_url, provider, COINGECKO_HISTORY_DAYS="365")
        with gunicorn(env) as api:
            # SOL: an unfinished job asking the same (ETH's, above) would be answered instead
            status, location = _post(f"{api}/backfills", {"symbols": ["SOL"], "sources": ["coingecko"],
                                                           "since": since, "until": until})  # fmt: skip
            assert status == 202
            job = get(f"{api}{location}")[2]["data"]
            assert job["state"] == "queued"
            assert job["windows"]["total"] == 1
            (problem,) = job["problems"]
            assert "the plan reaches 365 days back (COINGECKO_HISTORY_DAYS)" in problem


def test_two_schedulers_share_a_backfill_and_each_providers_rate_budget(database_url: str) -> None:
    truncate(database_url)
    per_minute, burst = 600, 10  # 10 a second, as `TokenBucket` sizes its burst
    with loopback_provider() as provider:
        provider.state.coins, provider.state.now = 8, TODAY
        env = provider_env(
            database_url, provider, ETL_SOURCES="coingecko", COINGECKO_RATE_LIMIT_PER_MINUTE=str(per_minute),
            ETL_SCHEDULE_MINUTES="0.05", ETL_SCHEDULE_JITTER_SECONDS="0",
        )  # fmt: skip
        assert (
            kaspero(
                "etl", "run", "--once", "--source", "coingecko", "--source", "coinpaprika", env=env
            ).returncode
            == 0
        )
        symbols = ["BTC", "ETH", "USDT", "SOL", "ADA", "DOGE", "DOT", "LTC"]
        planned = kaspero("backfill", *symbols, "--source", "coingecko", "--since", "2015-01-01",
                          "--until", TODAY.date().isoformat(), "--queue-only", "--json", env=env)  # fmt: skip
        assert planned.returncode == 0, planned.stderr
        windows = int(scalar(database_url, "SELECT count(*) FROM backfill_windows"))  # type: ignore[arg-type]
        assert windows >= 8 * 10
        provider.state.requests.clear()
        provider.state.request_times.clear()
        replicas = [scheduler(env) for _ in range(2)]
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and _settled(database_url) < windows:
                time.sleep(0.2)
        finally:
            stop(replicas)
        with provider.state.lock:
            times = sorted(
                moment
                for (path, _, _), moment in zip(
                    provider.state.requests, provider.state.request_times, strict=True
                )
                if path.startswith("/coingecko/")
            )
    assert _settled(database_url) == windows
    with psycopg.connect(database_url) as connection:
        runs = connection.execute("SELECT count(DISTINCT run_id) FROM backfill_windows").fetchone()
        twice = connection.execute("SELECT count(*) FROM backfill_windows WHERE attempts > 1").fetchone()
        stored = connection.execute(
            "SELECT count(*), count(DISTINCT (asset_id, observed_at)) FROM market_history WHERE source = 'coingecko:1d'"
        ).fetchone()
    assert runs is not None
    assert runs[0] >= 2
    assert twice == (0,)  # none twice
    assert stored is not None
    assert stored[0] == stored[1]
    # the two processes together kept to the budget: in any stretch of time T, at most the
    # burst and T's worth of the rate (and a request of slack for the clocks' grain)
    rate = per_minute / 60
    for first, last in itertools.combinations(range(len(times)), 2):
        span = times[last] - times[first]
        assert last - first + 1 <= burst + rate * span + 1, (last - first + 1, span)
    assert len(times) >= windows  # every window asked (and the scheduled snapshots beside them)


def test_three_providers_judge_a_bar_thirty_percent_off(database_url: str) -> None:
    truncate(database_url)
    off = TODAY - timedelta(days=10)
    with loopback_provider() as provider:
        provider.state.coins, provider.state.now = 8, TODAY
        provider.state.skewed[("binance", 0, off)] = 1.3
        env = provider_env(database_url, provider)
        assert kaspero("etl", "run", "--once", env=env).returncode == 0
        since = (TODAY - timedelta(days=30)).date().isoformat()
        for source in ("coingecko", "coinpaprika", "binance"):  # the last one against the first two
            done = kaspero("backfill", "BTC", "--source", source, "--since", since, "--json", env=env)
            assert done.returncode == 0, done.stderr
        with gunicorn(env) as api:
            btc = get(f"{api}/assets?symbol=BTC")[2]["data"][0]["id"]
            day = off.date().isoformat()
            judged = {
                candle["source"]: (candle["flag"], candle["deviation_pct"])
                for candle in get(f"{api}/assets/{btc}/history?start={day}&end={day}&interval=1d")[2]["data"]
                if candle["source"].endswith(":1d")
            }
            assert judged == {
                "coingecko:1d": (None, "0.00"),
                "coinpaprika:1d": (None, "0.00"),
                "binance:1d": ("suspect", "30.00"),
            }
            (consensus,) = get(f"{api}/assets/{btc}/history?start={day}&end={day}&source=consensus")[2][
                "data"
            ]
            assert Decimal(consensus["close"]) == Decimal(str(provider.state.price(0, off)))
            runs = get(f"{api}/runs?source=binance:1d")[2]["data"]
            (binance_run,) = [run for run in runs if run["trigger"] == "backfill"]
            sources = {
                item["source"]: item for item in get(f"{api}/runs/{binance_run['id']}")[2]["data"]["sources"]
            }
            assert sources["binance:1d"]["suspect_bars"] == 1
            anomalies = get(f"{api}/runs/{binance_run['id']}/anomalies")[2]["data"]
            assert [
                (a["source"], a["metric"], a["observed"]) for a in anomalies if a["metric"] == "suspect_bars"
            ] == [("binance:1d", "suspect_bars", 1)]


def _settled(database_url: str) -> int:
    return int(
        scalar(
            database_url, "SELECT count(*) FROM backfill_windows WHERE state NOT IN ('pending', 'running')"
        )  # type: ignore[arg-type]
    )


def _history_requests(provider: LoopbackProvider) -> list[str]:
    with provider.state.lock:
        return [
            path
            for path, query, _ in provider.state.requests
            if "/market_chart/" in path or path.endswith("/historical") or "startTime" in query
        ]


def _post(url: str, body: dict[str, object]) -> tuple[int, str]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": KEY},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers.get("Location", "")
    except urllib.error.HTTPError as ex:
        return ex.code, ex.read().decode()


def test_a_backfill_against_a_provider_that_is_down_stops_with_a_message(database_url: str) -> None:
    from tests.support.provider import Fault

    truncate(database_url)
    with loopback_provider() as provider:
        provider.state.coins, provider.state.now = 8, TODAY
        env = provider_env(database_url, provider, HTTP_RETRY_ATTEMPTS="1")
        assert kaspero("etl", "run", "--once", env=env).returncode == 0
        provider.queue("/coingecko/coins/bitcoin/market_chart/range", *[Fault(status=503)] * 50)
        done = kaspero(
            "backfill", "BTC", "--source", "coingecko", "--since", "2020-01-01", env=env, timeout=120
        )
    assert done.returncode == 1
    assert (
        "made no progress this pass: coingecko:1d: GET /coingecko/coins/bitcoin/market_chart/range answered 503"
        in (done.stderr)
    )
    assert "Traceback" not in done.stderr
