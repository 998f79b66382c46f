"""Charts drawn on the server as SVG: a sparkline of records per run, and candles.

Every value that reaches the markup is a number or escaped text; each candle carries its data
in `data-*` attributes, so a reader (or a test) can read what is drawn.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from html import escape

from markupsafe import Markup

from domain.assets import Candle
from domain.coverage import SourceCoverage


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


MAX_GAPS_DRAWN = 60


def bar_size(series: Sequence[Candle], interval: timedelta) -> timedelta:
    """The size of the bars the candles are made of, from the data: the closest two candles'
    distance when every candle is further from the next than the interval (a daily file asked
    for hourly candles has one candle a day), else the interval."""
    if len(series) < 2:
        return interval
    closest = min(later.bucket - earlier.bucket for earlier, later in itertools.pairwise(series))
    return max(closest, interval)


def candles(
    series: Sequence[Candle], title: str, interval: timedelta, width: int = 900, height: int = 320
) -> Markup:
    """Candlesticks of one series on a time axis: a body from open to close (rising filled,
    falling hollow), a wick from low to high, placed by their time, so missing data is empty
    space, and each gap longer than a bar is marked with its dates."""
    if not series:
        return Markup(f'<p class="empty">No candles for {escape(title)} in this range.</p>')
    pad_left, pad_right, pad_y, axis = 70, 10, 16, 18
    plot_bottom = height - pad_y - axis
    lows = min(candle.low for candle in series)
    highs = max(candle.high for candle in series)
    span = (highs - lows) or Decimal(1)
    bar = bar_size(series, interval)
    first, last = series[0].bucket, series[-1].bucket + bar
    seconds = max((last - first).total_seconds(), 1.0)
    plot = width - pad_left - pad_right
    body = max(1.0, bar.total_seconds() / seconds * plot * 0.7)

    def x(moment: datetime) -> float:
        return round(pad_left + (moment - first).total_seconds() / seconds * plot, 2)

    def y(price: Decimal) -> float:
        return round(pad_y + float((highs - price) / span) * (plot_bottom - pad_y), 2)

    parts = [
        f'<svg class="chart" width="100%" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}: {len(series)} candles from {_moment(series[0].bucket)} to '
        f'{_moment(series[-1].bucket)}">',
        f"<title>{escape(title)}</title>",
    ]
    gaps = sorted(
        ((later.bucket - earlier.bucket, earlier, later) for earlier, later in itertools.pairwise(series)),
        key=lambda gap: gap[0],
        reverse=True,
    )
    for distance, earlier, later in gaps[:MAX_GAPS_DRAWN]:
        if distance <= bar:
            break
        start, stop = earlier.bucket + bar, later.bucket
        parts.append(
            f'<rect class="gap" x="{x(start)}" y="{pad_y}" width="{max(0.5, round(x(stop) - x(start), 2))}" '
            f'height="{plot_bottom - pad_y}" data-from="{_moment(start)}" data-to="{_moment(stop)}">'
            f"<title>no data from {_moment(start)} to {_moment(stop)}</title></rect>"
        )
    parts += [
        f'<line class="axis" x1="{pad_left}" y1="{pad_y}" x2="{pad_left}" y2="{plot_bottom}"/>',
        f'<line class="axis" x1="{pad_left}" y1="{plot_bottom}" x2="{width - pad_right}" y2="{plot_bottom}"/>',
        f'<text class="tick" x="{pad_left - 6}" y="{pad_y + 4}" text-anchor="end">{_money(highs)}</text>',
        f'<text class="tick" x="{pad_left - 6}" y="{plot_bottom}" text-anchor="end">{_money(lows)}</text>',
    ]
    for index, candle in enumerate(series):
        center = round(x(candle.bucket) + body / 0.7 / 2, 2)
        rising = candle.close >= candle.open
        top, bottom = y(max(candle.open, candle.close)), y(min(candle.open, candle.close))
        parts.append(
            f'<g class="candle {"up" if rising else "down"}" data-bucket="{_moment(candle.bucket)}" '
            f'data-open="{candle.open}" data-high="{candle.high}" data-low="{candle.low}" '
            f'data-close="{candle.close}" data-observations="{candle.observations}" data-index="{index}">'
            f"<title>{_moment(candle.bucket)}: open {_money(candle.open)}, high {_money(candle.high)}, "
            f"low {_money(candle.low)}, close {_money(candle.close)}</title>"
            f'<line x1="{center}" y1="{y(candle.high)}" x2="{center}" y2="{y(candle.low)}"/>'
            f'<rect x="{round(center - body / 2, 2)}" y="{top}" width="{round(body, 2)}" '
            f'height="{max(1.0, round(bottom - top, 2))}"/></g>'
        )
    ticks = 5
    for tick in range(ticks):
        moment = first + (last - first) * tick / (ticks - 1)
        anchor = "start" if tick == 0 else "end" if tick == ticks - 1 else "middle"
        parts.append(
            f'<text class="tick time" x="{x(moment)}" y="{height - 2}" text-anchor="{anchor}">{_moment(moment)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _money(value: Decimal) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.6g}"


def _moment(moment: datetime) -> str:
    return escape(moment.strftime("%Y-%m-%d %H:%M"))


def coverage_band(
    sources: Sequence[SourceCoverage], first: datetime, last: datetime, width: int = 900, row: int = 14
) -> Markup:
    """Under the chart, on its time axis (the same left and right margins): a row per source,
    its covered ranges filled and its gaps marked, each gap with its dates and missing buckets."""
    if not sources:
        return Markup("")
    pad_left, pad_right, gap_y = 70, 10, 4
    seconds = max((last - first).total_seconds(), 1.0)
    plot = width - pad_left - pad_right
    height = len(sources) * (row + gap_y) + gap_y

    def x(moment: datetime) -> float:
        clipped = min(max(moment, first), last)
        return round(pad_left + (clipped - first).total_seconds() / seconds * plot, 2)

    parts = [
        f'<svg class="coverage" width="100%" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="coverage per source from {_moment(first)} to {_moment(last)}">'
    ]
    for index, source in enumerate(sources):
        top = gap_y + index * (row + gap_y)
        parts.append(
            f'<g class="source" data-source="{escape(source.source)}" data-buckets="{source.buckets}" '
            f'data-missing="{source.missing}">'
            f'<text class="tick" x="{pad_left - 6}" y="{top + row - 3}" text-anchor="end">'
            f"<title>{escape(source.source)}</title>{escape(_short(source.source))}</text>"
        )
        for kind, spans in (("covered", source.covered), ("missing", source.gaps)):
            for span in spans:
                if span.end <= first or span.start >= last:
                    continue
                parts.append(
                    f'<rect class="{kind}" x="{x(span.start)}" y="{top}" '
                    f'width="{max(0.8, round(x(span.end) - x(span.start), 2))}" height="{row}" '
                    f'data-from="{_moment(span.start)}" data-to="{_moment(span.end)}" data-buckets="{span.buckets}">'
                    f"<title>{escape(source.source)}: {'held' if kind == 'covered' else 'missing'} "
                    f"{span.buckets:,} from {_moment(span.start)} to {_moment(span.end)}</title></rect>"
                )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _short(name: str, room: int = 10) -> str:
    """A source's name in the band's margin: whole when it fits, else cut with an ellipsis."""
    return name if len(name) <= room else name[: room - 1] + "…"
