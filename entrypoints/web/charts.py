"""Charts drawn on the server as SVG: a sparkline of records per run, and candles.

Every value that reaches the markup is a number or escaped text; each candle carries its data
in `data-*` attributes, so a reader (or a test) can read what is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from html import escape

from markupsafe import Markup

from domain.assets import Candle


def sparkline(values: Sequence[int], width: int = 160, height: int = 32, label: str = "") -> Markup:
    """A polyline of `values` (oldest first), with a dot on the newest."""
    if not values:
        return Markup(
            f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="{escape(label)}: no runs yet"></svg>'
        )
    top = max(values) or 1
    step = width / max(1, len(values) - 1)
    points = [
        (round(i * step, 1), round(height - 2 - (value / top) * (height - 4), 1))
        for i, value in enumerate(values)
    ]
    path = " ".join(f"{x},{y}" for x, y in points)
    last_x, last_y = points[-1]
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}: {len(values)} runs, newest {values[-1]:,} records">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{path}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.5" fill="currentColor"/></svg>'
    )


def candles(series: Sequence[Candle], title: str, width: int = 900, height: int = 320) -> Markup:
    """Candlesticks of one series: a body from open to close (rising filled, falling hollow),
    a wick from low to high; axes with the price range and the first and last bucket."""
    if not series:
        return Markup(f'<p class="empty">No candles for {escape(title)} in this range.</p>')
    pad_left, pad_right, pad_y = 70, 10, 16
    lows = min(candle.low for candle in series)
    highs = max(candle.high for candle in series)
    span = (highs - lows) or Decimal(1)
    slot = (width - pad_left - pad_right) / len(series)
    body = max(1.0, slot * 0.7)

    def y(price: Decimal) -> float:
        return round(pad_y + float((highs - price) / span) * (height - 2 * pad_y), 2)

    parts = [
        f'<svg class="chart" width="100%" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}: {len(series)} candles">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{pad_left}" y1="{pad_y}" x2="{pad_left}" y2="{height - pad_y}"/>',
        f'<text class="tick" x="{pad_left - 6}" y="{pad_y + 4}" text-anchor="end">{_money(highs)}</text>',
        f'<text class="tick" x="{pad_left - 6}" y="{height - pad_y}" text-anchor="end">{_money(lows)}</text>',
    ]
    for index, candle in enumerate(series):
        center = round(pad_left + slot * index + slot / 2, 2)
        rising = candle.close >= candle.open
        top, bottom = y(max(candle.open, candle.close)), y(min(candle.open, candle.close))
        parts.append(
            f'<g class="candle {"up" if rising else "down"}" data-bucket="{_moment(candle.bucket)}" '
            f'data-open="{candle.open}" data-high="{candle.high}" data-low="{candle.low}" '
            f'data-close="{candle.close}" data-observations="{candle.observations}">'
            f"<title>{_moment(candle.bucket)}: open {_money(candle.open)}, high {_money(candle.high)}, "
            f"low {_money(candle.low)}, close {_money(candle.close)}</title>"
            f'<line x1="{center}" y1="{y(candle.high)}" x2="{center}" y2="{y(candle.low)}"/>'
            f'<rect x="{round(center - body / 2, 2)}" y="{top}" width="{round(body, 2)}" '
            f'height="{max(1.0, round(bottom - top, 2))}"/></g>'
        )
    parts.append(
        f'<text class="tick" x="{pad_left}" y="{height - 2}">{_moment(series[0].bucket)}</text>'
        f'<text class="tick" x="{width - pad_right}" y="{height - 2}" text-anchor="end">{_moment(series[-1].bucket)}</text>'
        "</svg>"
    )
    return Markup("".join(parts))


def _money(value: Decimal) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.6g}"


def _moment(moment: datetime) -> str:
    return escape(moment.strftime("%Y-%m-%d %H:%M"))
