"""The dashboard in a real browser: every page loads clean, the links lead from the overview to
a failed run, its anomalies, an asset and its chart, untrusted text stays text, the keyboard
works, and with reads keyed the pages ask for the key."""

from __future__ import annotations

import csv
import io
import json
import shlex
import urllib.request
from typing import Any

import pytest

from tests.browser.conftest import PLANTED_CSV, PLANTED_FIELD, PLANTED_TITLE, screenshot
from tests.support.processes import environment, gunicorn

PAGES = {
    "overview": "/",
    "runs": "/ui/runs",
    "run": "/ui/runs/2",
    "drift": "/ui/drift",
    "quarantine": "/ui/quarantine",
    "assets": "/ui/assets?q=bit",
}


def api(site: str, path: str) -> Any:
    with urllib.request.urlopen(f"{site}{path}", timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_loads_with_no_console_error_and_no_failed_request(site: str, page: Any, name: str) -> None:
    answer = page.goto(f"{site}{PAGES[name]}")
    assert answer.status == 200
    assert page.title().endswith("· Kaspero")
    assert page.locator("h1").count() == 1
    screenshot(page, name)
    assert page.problems == []


def test_from_the_overview_to_a_failed_run_its_anomalies_an_asset_and_its_chart(site: str, page: Any) -> None:
    page.goto(site)
    card = page.locator("article.card[data-source='coingecko']")
    assert card.locator(".status").first.inner_text() == "success"  # the last run recovered
    assert "all 40 records read were quarantined" in card.inner_text()  # the last failure, with its error
    card.get_by_role("link", name="coingecko").click()
    page.wait_for_url("**/ui/runs?source=coingecko")
    failed = page.locator("tr.run[data-status='partial'] a").first
    failed.click()
    page.wait_for_url("**/ui/runs/2")
    assert "partial" in page.locator("h1").inner_text()
    anomalies = page.locator("#anomalies + table tr.anomaly")
    assert anomalies.count() >= 1
    rows = anomalies.all_inner_texts()
    assert any("critical" in row and "coingecko" in row and "quarantine_rate" in row for row in rows)
    screenshot(page, "failed-run")

    page.get_by_role("link", name="Assets").click()
    page.get_by_label("Symbol or name").fill("bitcoin")
    page.get_by_label("Symbol or name").press("Enter")
    page.wait_for_url("**/ui/assets?q=bitcoin")
    page.locator("tr.asset a", has_text="BTC").first.click()
    page.wait_for_url("**/ui/assets/*")
    asset_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
    drawn = page.locator("svg.chart g.candle")
    served = api(site, f"/assets/{asset_id}/history?interval=1d&source=consensus&limit=10000")["data"]
    newest = max(candle["bucket"] for candle in served)
    in_range = [candle for candle in served if candle["bucket"] >= _year_before(newest)]
    assert drawn.count() == len(in_range) > 0
    last = drawn.last
    assert last.get_attribute("data-close") == in_range[-1]["close"]
    assert last.get_attribute("data-bucket")[:10] == in_range[-1]["bucket"][:10]
    screenshot(page, "asset")

    page.get_by_label("Candles", exact=True).select_option("1h")
    page.get_by_label("Series").select_option("csv:market_history")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**interval=1h**")
    assert "series=csv%3Amarket_history" in page.url or "series=csv:market_history" in page.url
    assert page.problems == []


def _year_before(bucket: str) -> str:
    return f"{int(bucket[:4]) - 1}{bucket[4:]}"


def test_untrusted_text_from_sources_stays_text(site: str, page: Any) -> None:
    page.goto(f"{site}/ui/assets?q=EVL")
    assert page.get_by_text(PLANTED_CSV).count() >= 1
    page.goto(f"{site}/ui/drift")
    assert page.get_by_text(PLANTED_FIELD).count() >= 1
    page.goto(f"{site}/ui/quarantine?source=coingecko")
    assert page.locator("pre", has_text=PLANTED_FIELD).count() >= 1
    bitcoin = api(site, "/assets?symbol=BTC")["data"][0]["id"]
    page.goto(f"{site}/ui/assets/{bitcoin}")
    assert page.get_by_text(PLANTED_TITLE).count() == 1
    assert page.locator("script").count() == 0  # not one script element on a page made of sources' text
    assert page.problems == []  # and no dialog opened


def test_the_quarantine_page_gives_the_replay_command_and_the_file_of_each_reason(
    site: str, page: Any
) -> None:
    page.goto(f"{site}/ui/quarantine?source=coingecko")
    group = page.locator("section.group").first
    heading = group.locator("h2").inner_text()
    words = shlex.split(group.locator("code.replay-command").inner_text())
    assert words[:6] == ["kaspero", "quarantine", "replay", "--source", "coingecko", "--reason"]
    reason = words[6]
    assert heading.startswith(reason)  # the group's own reason, quoted for a shell
    shown = int(heading.rsplit("(", 1)[1].rstrip(")"))
    link = group.get_by_role("link", name="Download these as CSV").get_attribute("href")
    with urllib.request.urlopen(f"{site}{link}", timeout=10) as response:
        rows = list(csv.DictReader(io.StringIO(response.read().decode("utf-8"))))
    assert len(rows) >= shown
    assert {(row["source"], row["reason"]) for row in rows} == {("coingecko", reason)}
    assert page.problems == []


def test_pages_work_with_the_keyboard(site: str, page: Any) -> None:
    page.goto(site)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Kaspero"
    page.keyboard.press("Tab")  # Overview
    page.keyboard.press("Tab")  # Runs
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site}/ui/runs")
    page.get_by_label("Status").focus()
    page.keyboard.press("End")  # the last status in the list
    page.get_by_role("button", name="Filter").press("Enter")
    page.wait_for_url("**status=**")
    assert page.problems == []


def test_with_reads_keyed_the_dashboard_asks_for_the_key_and_then_shows(
    site: str, page: Any, database_url: str
) -> None:
    env = environment(DATABASE_URL=database_url, API_KEYS="right-key", API_READ_REQUIRES_KEY="true")
    with gunicorn(env) as keyed:
        page.goto(f"{keyed}/ui/runs")
        page.wait_for_url("**/ui/login?next=**")
        page.get_by_label("API key").fill("wrong-key")
        page.get_by_role("button", name="Sign in").click()
        assert "not one of API_KEYS" in page.locator("[role=alert]").inner_text()
        page.get_by_label("API key").fill("right-key")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{keyed}/ui/runs")
        assert page.locator("tr.run").count() == 4  # three ETL runs and the backfill's
        cookie = next(item for item in page.context.cookies() if item["name"] == "kaspero_session")
        assert cookie["httpOnly"]
        screenshot(page, "signed-in-runs")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{keyed}/data", timeout=10)
        assert refused.value.code == 401


def test_the_runs_page_lists_backfill_jobs_with_their_progress_and_problems(site: str, page: Any) -> None:
    page.goto(f"{site}/ui/runs")
    row = page.locator("table.backfills tr.backfill").first
    row.wait_for()
    assert row.get_attribute("data-state") == "partial"
    cells = [cell.inner_text() for cell in row.locator("td").all()]
    assert cells[2:5] == ["BTC", "coingecko", "1d"]
    settled, total = cells[6].split()[0].split("/")
    assert settled == total  # every window settled
    assert "the plan reaches 365 days back (COINGECKO_HISTORY_DAYS)" in cells[9]
    assert int(cells[7].replace(",", "")) >= 365
    screenshot(page, "runs-backfills")
    # on the overview, the backfilled history is a source of its own, with no schedule to be late for
    page.goto(site)
    card = page.locator("article.card[data-source='coingecko:1d']")
    card.wait_for()
    assert card.locator(".status.stale").count() == 0
    assert page.problems == []
