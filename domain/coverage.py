"""Coverage of an asset's history: for a source and an interval, the runs of consecutive buckets
that hold data (covered ranges) and the expected buckets missing between them, and between a
requested start or end and the data (gaps). A bucket is covered when a bar or snapshot falls in
it, or a bar longer than the bucket spans it (a daily bar covers 24 hourly buckets)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from domain.assets import bucket_of


@attrs.frozen
class Span:
    """Buckets `[start, end)`: `buckets` of them."""

    start: datetime
    end: datetime
    buckets: int


@attrs.frozen
class SourceCoverage:
    source: str
    covered: tuple[Span, ...]
    gaps: tuple[Span, ...]
    # ranges the provider confirmed empty (a backfill window it answered with nothing: before the
    # listing, downtime): neither covered nor missing, never asked again
    empty: tuple[Span, ...] = ()

    @property
    def buckets(self) -> int:
        return sum(span.buckets for span in self.covered)

    @property
    def missing(self) -> int:
        return sum(span.buckets for span in self.gaps)


def gaps_between(
    covered: Sequence[Span], step: timedelta, start: datetime | None = None, end: datetime | None = None
) -> tuple[Span, ...]:
    """The missing buckets around `covered` (sorted, not overlapping): between each two covered
    ranges, from the bucket of `start` to the first, and from the last to the bucket of `end`
    (both included). Without `start`/`end` only the holes in the middle count."""
    gaps: list[Span] = []

    def gap(first: datetime, stop: datetime) -> None:
        if stop > first:
            gaps.append(Span(first, stop, (stop - first) // step))

    if start is not None and covered:
        gap(bucket_of(start, step), covered[0].start)
    elif start is not None and end is not None:  # nothing in the range: all of it is missing
        gap(bucket_of(start, step), _after(bucket_of(end, step), step))
    for before, after in itertools.pairwise(covered):
        gap(before.end, after.start)
    if end is not None and covered:
        gap(covered[-1].end, _after(bucket_of(end, step), step))
    return tuple(gaps)


def _after(bucket: datetime, step: timedelta) -> datetime:
    """The end of a bucket (the last moment a datetime holds, for the year 9999's last one)."""
    return (
        bucket + step
        if bucket <= datetime.max.replace(tzinfo=bucket.tzinfo) - step
        else datetime.max.replace(tzinfo=bucket.tzinfo)
    )


def without(
    ranges: Sequence[tuple[datetime, datetime]], holes: Sequence[Span]
) -> list[tuple[datetime, datetime]]:
    """`ranges` less the parts `holes` cover (both sorted by start)."""
    kept: list[tuple[datetime, datetime]] = []
    for start, end in ranges:
        pieces = [(start, end)]
        for hole in holes:
            if hole.end <= start or hole.start >= end:
                continue
            next_pieces = []
            for a, b in pieces:
                if hole.start > a:
                    next_pieces.append((a, min(b, hole.start)))
                if hole.end < b:
                    next_pieces.append((max(a, hole.end), b))
            pieces = [(a, b) for a, b in next_pieces if b > a]
        kept.extend(pieces)
    return kept


def less_empty(gaps: Sequence[Span], empty: Sequence[Span], step: timedelta) -> tuple[Span, ...]:
    """The gaps less what the provider confirmed empty: those buckets are not missing."""
    return tuple(
        Span(start, end, (end - start) // step)
        for start, end in without([(g.start, g.end) for g in gaps], empty)
    )
