"""What a person sees is what is: the docs page lists the operations, the headline is `/health`'s
answer, a history-only asset's chart has its own candles (pixels included), a gap in a real file
is a gap on the chart, errors are pages, and a phone-sized window needs no sideways scrolling."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, timedelta
from typing import Any

import pytest
from PIL import Image

from tests.browser.conftest import screenshot
from tests.browser.test_dashboard import PAGES, api
from tests.support.processes import REPO

UP_CANDLE = (0x1A, 0x7F, 0x37)  # `.chart .candle.up rect` in kaspero.css
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def test_the_docs_page_renders_every_operation_of_the_document(site: str, page: Any) -> None:
    page.goto(f"{site}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    document = api(site, "/openapi.json")
    assert document["openapi"].startswith("3.1")
    operations = [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    ]
    shown = page.locator(".opblock").evaluate_all(
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent,"
        " b.querySelector('.opblock-summary-path').getAttribute('data-path')])"
    )
    assert sorted(map(tuple, shown)) == sorted(operations)
    body = page.inner_text("body")
    assert "Unable to render" not in body
    assert "Kaspero" in page.locator(".info .title").inner_text()
    screenshot(page, "docs")
    assert page.problems == []


def test_the_headline_is_the_health_answer_with_its_reasons(site: str, page: Any) -> None:
    health = api(site, "/health")
    page.goto(site)
    assert page.locator("#health").inner_text() == health["status"]
    shown = page.locator("#health-reasons li").all_inner_texts()
    assert shown == health["reasons"]
    assert set(health["sources"]) == {"coingecko", "coinpaprika", "csv", "rss"}  # every enabled kind judged
    # a card never says "stale" under a headline that judged its kind fresh: old *data* from
    # runs on schedule is its own, named badge
    badges = page.locator(".card h2 .status").all_inner_texts()
    assert "stale" not in badges
    assert "old data" in badges  # the fixtures' feeds and provider payloads are years old
    screenshot(page, "overview-health")


def _chart_has_candle_pixels(page: Any) -> bool:
    image = Image.open(io.BytesIO(page.locator("svg.chart").screenshot())).convert("RGB")
    return any(color == UP_CANDLE for _, color in image.getcolors(maxcolors=1 << 24) or [])


def test_a_history_only_asset_shows_its_own_candles_ending_at_its_own_newest_bar(
    site: str, page: Any
) -> None:
    avax = api(site, "/assets?symbol=AVAX")["data"][0]["id"]
    page.goto(f"{site}/ui/assets/{avax}?interval=5m")
    served = api(site, f"/assets/{avax}/history?interval=5m&source=consensus")["data"]
    drawn = page.locator("svg.chart g.candle")
    assert drawn.count() == len(served) > 1  # the file's bars: 40 minutes of February 2025
    assert drawn.evaluate_all("gs => gs.map(g => g.dataset.close)") == [c["close"] for c in served]
    assert _chart_has_candle_pixels(page) or drawn.evaluate_all(
        "gs => gs.every(g => g.classList.contains('down'))"
    )
    caption = page.locator("#chart-caption").inner_text()
    assert "2025-02-" in caption  # the range ends at this series' newest bar, not at today's quotes
    consensus = page.locator("#consensus-at").inner_text()
    assert "as of 2025-02-" in consensus
    assert "ago" in consensus  # the age of a price is always said
    screenshot(page, "asset-history-only")
    # asked for hourly candles of minute bars, over the default range: still its own data
    page.goto(f"{site}/ui/assets/{avax}?interval=1h")
    assert page.locator("svg.chart g.candle").count() >= 1
    assert page.problems == []


def test_a_gap_in_a_real_file_is_a_gap_on_the_chart_and_daily_bars_are_said_to_be_daily(
    site: str, page: Any
) -> None:
    with (REPO / "tests" / "fixtures" / "csv" / "btc-usd-max.csv").open() as handle:
        days = sorted(date.fromisoformat(row["snapped_at"][:10]) for row in csv.DictReader(handle))
    missing = [
        (earlier + timedelta(days=1), later)
        for earlier, later in itertools.pairwise(days)
        if later - earlier > timedelta(days=1)
    ]
    assert missing  # the file itself skips a day
    bitcoin = api(site, "/assets?symbol=BTC")["data"][0]["id"]
    page.goto(f"{site}/ui/assets/{bitcoin}?interval=1h&range=all&series=csv%3Abtc-usd-max")
    drawn = page.locator("svg.chart g.candle")
    assert drawn.count() == len(days)
    gaps = page.locator("svg.chart rect.gap").evaluate_all(
        "rs => rs.map(r => [r.dataset.from, r.dataset.to])"
    )
    assert sorted(gaps) == [[f"{start} 00:00", f"{stop} 00:00"] for start, stop in missing]
    # the coverage band under the chart marks the same days missing for that file's source
    band = page.locator('svg.coverage g[data-source="csv:btc-usd-max"]')
    marked = band.locator("rect.missing").evaluate_all("rs => rs.map(r => [r.dataset.from, r.dataset.to])")
    assert sorted(marked) == sorted(gaps)
    assert int(band.get_attribute("data-missing") or 0) == 24 * sum(
        (stop - start).days for start, stop in missing
    )
    assert band.locator("rect.covered").count() == len(missing) + 1
    xs = drawn.evaluate_all("gs => gs.map(g => g.getBBox().x)")
    steps = sorted(later - earlier for earlier, later in itertools.pairwise(xs))
    assert steps[-1] > 1.8 * steps[len(steps) // 2]  # the missing day takes its room on the time axis
    assert "one bar per 1.0 d" in page.locator("#chart-caption").inner_text()  # not "1h candles"
    assert _chart_has_candle_pixels(page)
    screenshot(page, "asset-gap")


def test_errors_of_the_dashboard_are_pages(site: str, page: Any) -> None:
    answer = page.goto(f"{site}/ui/assets/999999999")
    assert answer.status == 404
    assert "text/html" in answer.headers["content-type"]
    assert page.locator("h1").inner_text().startswith("404")
    assert "no asset with id 999999999" in page.locator("#problem").inner_text()
    page.get_by_role("link", name="Back to the overview").click()
    page.wait_for_url(f"{site}/")
    answer = page.goto(f"{site}/ui/runs?status=sideways")
    assert answer.status == 400
    assert "status" in page.locator("#problem").inner_text()


@pytest.fixture
def narrow(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 420, "height": 860})
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("name", [*PAGES, "asset"])
def test_a_420_pixel_window_needs_no_horizontal_scroll(site: str, narrow: Any, name: str) -> None:
    if name == "asset":
        path = f"/ui/assets/{api(site, '/assets?symbol=BTC')['data'][0]['id']}"
    else:
        path = PAGES[name]
    narrow.goto(f"{site}{path}")
    overflow = narrow.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than a 420px window"
