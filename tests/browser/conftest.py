"""A real Chromium (Debian's `chromium`, driven by Playwright for Python) against a real running
Kaspero: gunicorn over PostgreSQL, data loaded by real ETL passes from the loopback provider and
the bundled files, with untrusted text planted where sources put it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.processes import REPO, environment, gunicorn, kaspero
from tests.support.provider import loopback_provider

SCREENSHOTS = REPO / "tests" / "browser" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip
PLANTED_CSV = "<script>alert('csv')</script>"
PLANTED_TITLE = "<script>alert('feed')</script> Bitcoin rallies"
PLANTED_FIELD = "<script>alert('drift')</script>"


def chromium_path() -> str:
    found = os.environ.get("KASPERO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.exit(
            "browser tests need Chromium: `apt-get install chromium` (Debian), or set KASPERO_CHROMIUM to a "
            "Chromium binary (`make test` installs it itself where apt-get can)",
            returncode=1,
        )
    return found


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _feed() -> bytes:
    title = PLANTED_TITLE.replace("<", "&amp;lt;").replace(">", "&amp;gt;")
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Planted</title>
<item><title>{title}</title><guid>planted-1</guid><link>https://news.example.com/planted</link>
<pubDate>Mon, 01 Jan 2024 10:00:00 +0000</pubDate><description>BTC up.</description></item>
</channel></rss>""".encode()


@pytest.fixture(scope="module")
def site(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stack with three runs: a clean one, one where CoinGecko renamed a field (every coin
    quarantined: the source failed), and a clean one again."""
    from tests.conftest import TABLES

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    files = tmp_path_factory.mktemp("data")
    shutil.copyfile(REPO / "data" / "market_history.csv", files / "market_history.csv")
    # real exports: minute bars of an asset no provider has (history only), daily bars with a gap
    for name in ("AVAXUSDT-1m-2025-02.csv", "btc-usd-max.csv"):
        shutil.copyfile(REPO / "tests" / "fixtures" / "csv" / name, files / name)
    (files / "evil.csv").write_text(f'date,symbol,name,close\n2024-01-01,EVL,"{PLANTED_CSV}",1.5\n')
    (files / "planted.xml").write_bytes(_feed())
    with loopback_provider() as provider:
        provider.state.coins = 40
        env = environment(
            DATABASE_URL=database_url, CSV_SOURCE_PATH=str(files / "*.csv"),
            RSS_SOURCE_URL=f"{REPO / 'data' / 'crypto_news.xml'},{files / 'planted.xml'}",
            ETL_SOURCES="coingecko,coinpaprika,csv,rss",
            COINGECKO_BASE_URL=f"{provider.url}/coingecko", COINPAPRIKA_BASE_URL=f"{provider.url}/coinpaprika",
            COINGECKO_RATE_LIMIT_PER_MINUTE="6000", RATE_LIMIT_REQUESTS_PER_MINUTE="6000",
        )  # fmt: skip
        first = kaspero("etl", "run", "--once", env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        provider.state.renamed = {"current_price": PLANTED_FIELD}
        provider.state.price_factor = 3.0  # values no longer agree either: the rename is not mapped
        assert kaspero("etl", "run", "--once", env=env).returncode == 1  # coingecko failed
        provider.state.renamed = {}
        provider.state.price_factor = 1.02
        assert kaspero("etl", "run", "--once", env=env).returncode == 0
        # a history backfill reaching past the plan's year: one window stored, a line on the rest
        since = (datetime.now(UTC) - timedelta(days=700)).date().isoformat()
        backfill = kaspero("backfill", "BTC", "--source", "coingecko", "--since", since, env=env)
        assert backfill.returncode == 1, backfill.stderr[-3000:]  # partial
        with gunicorn(env) as base:
            yield base


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records console errors, failed requests and any dialog (an XSS firing)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}") if message.type == "error" else None
        ),
    )
    # a request the page itself gave up as it moved on (net::ERR_ABORTED) is not a failure
    opened.on(
        "requestfailed",
        lambda request: (
            None
            if "ERR_ABORTED" in (request.failure or "")
            else problems.append(f"failed request: {request.url} ({request.failure})")
        ),
    )
    opened.on(
        "response",
        lambda response: (
            problems.append(f"{response.status}: {response.url}") if response.status >= 400 else None
        ),
    )
    opened.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    opened.problems = problems
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
