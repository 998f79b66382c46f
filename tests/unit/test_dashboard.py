"""The dashboard's pieces on their own: colours that meet WCAG AA, charts that draw what they
are given, sign-in redirects that stay on the site, pages over the in-memory store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import falcon.testing
import pytest

from domain.assets import Candle
from entrypoints.web.charts import bar_size, candles, sparkline
from entrypoints.web.pages import _local

CSS = (Path(__file__).resolve().parents[2] / "entrypoints" / "web" / "static" / "kaspero.css").read_text()


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    ("text", "background"),
    [("ink", "bg"), ("muted", "bg"), ("link", "bg"), ("ink", "panel"), ("muted", "panel"), ("link", "panel"),
     ("ok", "ok-bg"), ("bad", "bad-bg"), ("warn", "warn-bg"), ("bad", "bg")],
)  # fmt: skip
def test_text_colours_meet_wcag_aa_on_their_backgrounds(text: str, background: str) -> None:
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS))
    assert contrast(colours[text], colours[background]) >= 4.5


def test_candles_draw_one_group_per_candle_with_its_values() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    series = [
        Candle(
            start + timedelta(days=i),
            "consensus",
            Decimal(100 + i),
            Decimal(110 + i),
            Decimal(95 + i),
            Decimal(105 - i),
            1,
            asset_id=1,
        )
        for i in range(7)
    ]
    svg = str(candles(series, "BTC <consensus>", timedelta(days=1)))
    assert svg.count('<g class="candle') == 7
    assert 'data-close="99"' in svg
    assert 'data-open="106"' in svg
    assert "BTC &lt;consensus&gt;" in svg  # titles are escaped
    assert "<consensus>" not in svg
    assert 'class="gap"' not in svg  # seven days in a row: nothing missing
    assert "No candles" in str(candles([], "x", timedelta(days=1)))


def test_candles_sit_on_a_time_axis_with_gaps_marked_and_their_real_bar_size() -> None:
    def day(number: int) -> Candle:
        return Candle(
            datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=number),
            "csv:x",
            *[Decimal(1)] * 4,
            1,
            asset_id=1,
        )

    series = [day(0), day(1), day(2), day(1000), day(1001)]  # 997 days missing in the middle
    svg = str(candles(series, "x", timedelta(hours=1)))  # hourly candles asked of daily bars
    xs = [
        float(re.search(r'<line x1="([\d.]+)"', group).group(1))
        for group in svg.split('<g class="candle')[1:]
    ]
    assert xs == sorted(xs)
    assert (xs[3] - xs[2]) > 900 * (xs[1] - xs[0])  # the gap takes the room its time takes
    gaps = re.findall(r'<rect class="gap"[^>]*data-from="([^"]+)" data-to="([^"]+)"', svg)
    assert gaps == [("2020-01-04 00:00", "2022-09-27 00:00")]
    assert bar_size(series, timedelta(hours=1)) == timedelta(days=1)
    assert bar_size(series[:1], timedelta(hours=1)) == timedelta(hours=1)


def test_sparkline_marks_the_newest_value() -> None:
    svg = str(sparkline([1, 5, 3], label="a<b"))
    assert "polyline" in svg
    assert "newest 3 records" in svg
    assert "a&lt;b" in svg


@pytest.mark.parametrize(
    ("given", "kept"),
    [("/ui/runs?status=failed", "/ui/runs?status=failed"), ("//evil.example", "/"), ("https://evil.example", "/"),
     ("/\\\\evil", "/"), (None, "/"), ("ui/runs", "/")],
)  # fmt: skip
def test_sign_in_sends_back_only_to_this_site(given: str | None, kept: str) -> None:
    assert _local(given) == kept


def test_pages_render_over_an_empty_store_and_ask_for_no_unknown_parameter(
    client: falcon.testing.TestClient,
) -> None:
    for path in ("/", "/ui/runs", "/ui/drift", "/ui/quarantine", "/ui/assets"):
        answer = client.simulate_get(path)
        assert answer.status_code == 200, path
        assert "text/html" in answer.headers["Content-Type"]
    assert client.simulate_get("/ui/runs", params={"colour": "red"}).status_code == 400
    assert client.simulate_get("/ui/runs/999").status_code == 404
    assert client.simulate_post("/ui/runs").status_code == 405  # nothing here changes data
