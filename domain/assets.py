"""Canonical assets: one Bitcoin across every source.

A source's asset (CoinGecko's `bitcoin`, CoinPaprika's `btc-bitcoin`, a CSV's `BTC`) is
resolved to a canonical asset, in order: a curated cross-reference of the top coins, then the
same symbol with the same name, then the same symbol with a similar name (rapidfuzz), rank
agreeing where both sides have one. Symbols are not identities: a token that shares Bitcoin's
symbol but not its name is a separate asset, and one that shares the symbol with a doubtful
name is created apart and flagged for review rather than merged.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import attrs
from rapidfuzz import fuzz

FUZZY_NAME_SIMILARITY = 0.85
RANK_TOLERANCE = 25  # ranks of one asset differ a little between providers; far apart is evidence against


class Method(enum.StrEnum):
    CROSSREF = "crossref"
    EXACT = "exact"
    FUZZY = "fuzzy"
    NEW = "new"


@attrs.frozen
class Asset:
    id: int
    symbol: str
    name: str | None
    needs_review: bool = False


@attrs.frozen
class Alias:
    """A source's name for a canonical asset, and how it was matched."""

    source: str
    source_asset_id: str
    asset_id: int
    method: Method
    confidence: float


@attrs.frozen
class SourceQuote:
    source: str
    price_usd: Decimal
    observed_at: datetime | None


@attrs.frozen
class Candle:
    """Open, high, low and close of one time bucket, per source (or `consensus`: all together)."""

    bucket: datetime
    source: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    observations: int
    asset_id: int = attrs.field(kw_only=True)
    # judged against the other sources' candles of the bucket (`judge_bars`); none for consensus
    flag: str | None = attrs.field(default=None, kw_only=True)  # "suspect" or "disputed"
    deviation_pct: Decimal | None = attrs.field(default=None, kw_only=True)


class Interval(enum.StrEnum):
    FIVE_MINUTES = "5m"
    HOUR = "1h"
    DAY = "1d"

    @property
    def step(self) -> timedelta:
        return {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}[self.value]


# buckets of every length are aligned on this moment, so a UTC day (and year) starts a bucket
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
RESOLUTION = timedelta(microseconds=1)  # of the stored moments


def bucket_of(moment: datetime, step: timedelta) -> datetime:
    """The start of the `step`-long bucket `moment` falls in."""
    return BUCKET_ORIGIN + (moment - BUCKET_ORIGIN) // step * step


def whole_buckets(
    start: datetime | None, end: datetime | None, step: timedelta
) -> tuple[datetime | None, datetime | None]:
    """The bucket starts `[first, stop)` whose whole bucket lies inside `[start, end]` (both
    inclusive, None unbounded): a stored candle of those buckets is the answer for them, and only
    the bars between `start` and `first` and between `stop` and `end` need reading one by one."""
    first = None
    if start is not None:
        first = bucket_of(start, step)
        if first < start:
            first += step
    stop = None if end is None else bucket_of(end + RESOLUTION, step)
    return first, stop


@attrs.frozen
class HistoryPoint:
    """One observation of an asset's USD price: a snapshot (close alone) or a bar of a file."""

    observed_at: datetime
    close: Decimal
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None


def candle_of(asset_id: int, bucket: datetime, series: str, points: Sequence[HistoryPoint]) -> Candle:
    """The candle of a bucket from the bars in it: the first one's open, the highest high, the
    lowest low, the last one's close. A snapshot counts its price as all four."""
    ordered = sorted(points, key=lambda point: point.observed_at)
    first, last = ordered[0], ordered[-1]
    return Candle(
        bucket=bucket,
        source=series,
        open=first.close if first.open is None else first.open,
        high=max(point.close if point.high is None else point.high for point in ordered),
        low=min(point.close if point.low is None else point.low for point in ordered),
        close=last.close,
        observations=len(ordered),
        asset_id=asset_id,
    )


SUSPECT = "suspect"
DISPUTED = "disputed"


def judge_bars(
    closes: Mapping[str, Decimal], suspect: Decimal
) -> dict[str, tuple[str | None, Decimal | None]]:
    """Each source's candle of one bucket judged by its close against the others': with three
    sources or more, one further than `suspect` (a fraction) from the median close of all of
    them is `suspect` (the median of all, not of the others: of three, the others of a good
    bar hold the bad one, whose pull would flag the good bar too); of two that far apart, both
    are `disputed` (which is right cannot be told). With the deviation in percent."""
    count = len(closes)
    if count >= 3:
        ordered = sorted(closes.values())
        middle = count // 2
        median = ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        if median <= 0:
            return dict.fromkeys(closes, (None, None))
        return {
            source: (
                SUSPECT if abs(close - median) > median * suspect else None,
                _percent(abs(close - median) / median),
            )
            for source, close in closes.items()
        }
    if count == 2:
        lowest, highest = min(closes.values()), max(closes.values())
        if lowest <= 0:
            return dict.fromkeys(closes, (None, None))
        flag = DISPUTED if highest - lowest > lowest * suspect else None
        return dict.fromkeys(closes, (flag, _percent((highest - lowest) / lowest)))
    return dict.fromkeys(closes, (None, None))


def _percent(fraction: Decimal) -> Decimal:
    """A fraction as a percentage to two places, halves away from zero (as PostgreSQL rounds)."""
    return (fraction * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@attrs.frozen
class HistoryQuery:
    interval: Interval = Interval.DAY
    start: datetime | None = None
    end: datetime | None = None
    source: str | None = None  # None: per source; "consensus": every source's observations together
    # the most candles to answer, the first ones in (bucket, asset, series) order; None: all
    limit: int | None = None
    # how far (a fraction) a source's close may stray from the bucket's median before it is
    # `suspect` (SUSPECT_BAR_PCT / 100)
    suspect: Decimal = Decimal("0.10")


def history_page(candles: Sequence[Candle], limit: int) -> tuple[list[Candle], datetime | None]:
    """A page of at most `limit` candles out of the first `limit + 1` of a history in bucket
    order, cut between buckets so a bucket's candles (one per asset and series) come together,
    and the bucket the next page starts at (None: no more). A page never splits a bucket: when
    the first bucket alone holds more than `limit` candles, the page is empty and says so by
    starting the next page where it started (the caller asks that bucket whole)."""
    if len(candles) <= limit:
        return list(candles), None
    cut = candles[limit].bucket
    return [candle for candle in candles[:limit] if candle.bucket < cut], cut


@attrs.frozen
class AssetView:
    """An asset as `/assets/{id}` shows it: aliases, each source's latest price, the consensus."""

    asset: Asset
    aliases: tuple[Alias, ...]
    quotes: tuple[SourceQuote, ...]
    # sources agree or not only about prices observed close in time: a quote observed more than
    # `window` before the newest one is shown with its age and left out of the consensus
    window: timedelta | None = None

    @property
    def current(self) -> tuple[SourceQuote, ...]:
        """The quotes the consensus is made of: the most sources observed within `window` of
        each other (of equal groups, the newest). A quote without an observation time cannot be
        placed: it counts only when no quote has one."""
        timed = sorted(
            ((quote.observed_at, index) for index, quote in enumerate(self.quotes) if quote.observed_at),
        )
        if not timed:
            return self.quotes
        if self.window is None:
            return tuple(self.quotes[index] for _, index in timed)
        best: list[int] = []
        first = 0
        for last, (moment, _) in enumerate(timed):
            while timed[first][0] < moment - self.window:
                first += 1
            if last + 1 - first >= len(best):  # a later group as large wins: the newest
                best = [index for _, index in timed[first : last + 1]]
        return tuple(self.quotes[index] for index in sorted(best))

    @property
    def consensus_at(self) -> datetime | None:
        """When the consensus was observed: the newest observation it is made of."""
        return max((quote.observed_at for quote in self.current if quote.observed_at), default=None)

    @property
    def consensus_price(self) -> Decimal | None:
        prices = sorted(quote.price_usd for quote in self.current)
        if not prices:
            return None
        middle = len(prices) // 2
        return prices[middle] if len(prices) % 2 else (prices[middle - 1] + prices[middle]) / 2

    @property
    def spread_pct(self) -> Decimal | None:
        """(highest − lowest) / consensus, in percent: how far the sources disagree."""
        consensus = self.consensus_price
        current = self.current
        if consensus is None or consensus <= 0 or len(current) < 2:
            return None
        prices = [quote.price_usd for quote in current]
        return round((max(prices) - min(prices)) / consensus * 100, 4)


@attrs.frozen
class Candidate:
    """A source's view of one asset."""

    source: str
    source_asset_id: str
    symbol: str
    name: str | None
    rank: int | None = None


@attrs.frozen
class CrossReference:
    """The curated list: for each top coin, its symbol, name, and id at each provider."""

    symbol: str
    name: str
    ids: Mapping[str, str]  # source → that source's id of the asset


def names_to_symbols(crossref: Sequence[CrossReference]) -> dict[str, str]:
    """Every way a file may name a curated asset, lower case: its name (`ethereum classic`) and
    its CoinGecko slug (`ethereum-classic`, `ripple` for XRP)."""
    names: dict[str, str] = {}
    for entry in crossref:
        names.setdefault(entry.name.lower(), entry.symbol)
        slug = entry.ids.get("coingecko")
        if slug:
            names.setdefault(slug.lower(), entry.symbol)
    return names


@attrs.frozen
class Resolution:
    """The asset a candidate is (`asset_id`), or the asset to create for it (`asset_id` None)."""

    asset_id: int | None
    symbol: str
    name: str | None
    method: Method
    confidence: float
    needs_review: bool = False


def normalized_name(name: str | None) -> str:
    """`Bitcoin`, `bitcoin ` and `BITCOIN` are one name; so are `USD Coin` and `usd-coin`."""
    return re.sub(r"[^a-z0-9]+", "", (name or "").lower())


def resolve(
    candidate: Candidate,
    assets: Sequence[Asset],
    crossref: Sequence[CrossReference],
    ranks: Mapping[int, int] | None = None,
) -> Resolution:
    """Which canonical asset `candidate` is; `ranks` gives an asset's known rank, as evidence."""
    symbol = candidate.symbol.upper()
    curated = _curated(candidate, crossref)
    same_symbol = [asset for asset in assets if asset.symbol == symbol]
    if curated is not None:
        match = next(
            (a for a in same_symbol if normalized_name(a.name) == normalized_name(curated.name)), None
        )
        return Resolution(match.id if match else None, curated.symbol, curated.name, Method.CROSSREF, 1.0)
    wanted = normalized_name(candidate.name)
    exact = next((a for a in same_symbol if wanted and normalized_name(a.name) == wanted), None)
    if exact is not None:
        return Resolution(exact.id, exact.symbol, exact.name, Method.EXACT, 0.95)
    best, best_score = None, 0.0
    for asset in same_symbol:
        score = fuzz.ratio(wanted, normalized_name(asset.name)) / 100
        known_rank = (ranks or {}).get(asset.id)
        if (
            candidate.rank is not None
            and known_rank is not None
            and abs(candidate.rank - known_rank) > RANK_TOLERANCE
        ):
            score *= 0.8  # the providers rank them far apart: probably two assets
        if score > best_score:
            best, best_score = asset, score
    if best is not None and best_score >= FUZZY_NAME_SIMILARITY:
        return Resolution(best.id, best.symbol, best.name, Method.FUZZY, round(best_score, 3))
    # a new asset; sharing a symbol with a different one is worth a look
    return Resolution(None, symbol, candidate.name, Method.NEW, 1.0, needs_review=bool(same_symbol))


def _curated(candidate: Candidate, crossref: Sequence[CrossReference]) -> CrossReference | None:
    kind = candidate.source.partition(":")[0]
    for entry in crossref:
        if entry.ids.get(kind) == candidate.source_asset_id:
            return entry
    # files name assets by symbol and name only (the name sometimes not at all), and an exchange
    # (Binance) by its ticker alone: the curated list's symbol is then the evidence there is
    if kind == "csv" or candidate.name is None:
        for entry in crossref:
            same_name = candidate.name is None or normalized_name(entry.name) == normalized_name(
                candidate.name
            )
            if entry.symbol == candidate.symbol.upper() and same_name:
                return entry
    return None
