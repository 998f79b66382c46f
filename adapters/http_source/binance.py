"""Binance spot klines (`/api/v3/klines`): bars of the pairs of known assets against USD-like
quotes, as a snapshot source on the schedule and as history for backfills.

A kline is the 12-column row of Binance's kline files: open time (ms), open, high, low, close,
base volume, close time (ms), quote volume, trades, taker buy base, taker buy quote, ignore.
Prices come as decimal strings and are kept exact. The quote is USD-like (`BINANCE_QUOTES`,
each one of `USD_QUOTES`), so a close in USDT is a USD price.

The snapshot run asks each candidate pair (every asset of the cross-reference file, with each
quote) for its last closed bar of `BINANCE_SNAPSHOT_INTERVAL`; a pair Binance does not list
answers 400 "Invalid symbol" and is left out of that run (counted, never quarantined: there is
no record). Its unified record is keyed by the pair (`BTCUSDT`), so it holds the newest bar; the
history keeps every bar. A backfill window asks up to 1,000 klines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from adapters.boundary import Money, RequiredMoney, validated
from adapters.http_source.history import bar_raw, days, fetched, page_of, require_list, within
from adapters.http_source.paging import PROVIDER_FAULTS, as_text, source_unavailable
from adapters.http_source.transport import ProviderClient, ProviderRefused
from application.ports import Batch, HistoryPage, Normalizer
from domain.assets import Interval
from domain.backfill import Window
from domain.errors import InvalidRecord
from domain.plausibility import bar_out_of_range
from domain.records import RawRecord, Source, SourceType, UnifiedRecord, market_record

NAME = "binance"
KLINE_INTERVALS = {Interval.FIVE_MINUTES: "5m", Interval.HOUR: "1h", Interval.DAY: "1d"}
PAGE = 1000  # klines a request answers at most
KLINE_BYTES = 400  # one kline row, generously
PAIRS_PER_BATCH = 50


class BinanceOptions(pydantic.BaseModel):
    """`BINANCE_*`: where Binance is, how fast it may be asked, which quotes make a pair."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    base_url: str = "https://api.binance.com"
    rate_limit_per_minute: int = pydantic.Field(default=600, ge=1)  # request weight 2 each: 1,200 of 6,000
    quotes: tuple[str, ...] = ("USDT",)
    snapshot_interval: Interval = Interval.FIVE_MINUTES
    history_days: int = pydantic.Field(default=0, ge=0)  # Binance keeps klines since a pair listed
    api_key: pydantic.SecretStr | None = None  # market data needs none

    @pydantic.field_validator("quotes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @pydantic.field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class BinanceKlines:
    """The snapshot: each candidate pair's last closed bar."""

    source = Source(name=NAME, source_type=SourceType.API)

    def __init__(
        self,
        client: ProviderClient,
        clock: Callable[[], datetime],
        symbols: Sequence[str],
        options: BinanceOptions,
    ) -> None:
        self._client = client
        self._clock = clock
        self._pairs = [
            (symbol.upper(), quote)
            for symbol in dict.fromkeys(symbols)
            for quote in options.quotes
            if symbol.upper() != quote  # USDT against USDT is no pair
        ]
        self._interval = options.snapshot_interval

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        step = self._interval.step
        for first in range(0, len(self._pairs), PAIRS_PER_BATCH):
            raws: list[RawRecord] = []
            for base, quote in self._pairs[first : first + PAIRS_PER_BATCH]:
                pair = base + quote
                params: dict[str, str | int] = {
                    "symbol": pair,
                    "interval": KLINE_INTERVALS[self._interval],
                    "limit": 2,
                }
                try:
                    rows = self._client.get_json("/api/v3/klines", params, max_bytes=64 * 1024)
                except ProviderRefused as ex:
                    if ex.status == 400:
                        continue  # not a pair Binance lists
                    raise source_unavailable(NAME, ex, self._client) from ex
                except PROVIDER_FAULTS as ex:
                    raise source_unavailable(NAME, ex, self._client) from ex
                if not isinstance(rows, list):
                    raise source_unavailable(NAME, TypeError("expected a JSON array of klines"), self._client)
                now = self._clock()
                # without an end time Binance answers the newest bars, the last still in progress:
                # the one before it is the last closed bar (a lone bar counts once its time is over)
                keyed = [row for row in rows if _opened(row) is not None]
                closed = keyed[:-1] if len(keyed) > 1 else [r for r in keyed if _opened(r) + step <= now]  # type: ignore[operator]
                if closed:
                    row = closed[-1]
                    payload = {"request": {"symbol": pair, "base": base, "quote": quote,
                                           "interval": KLINE_INTERVALS[self._interval]}, "kline": row}  # fmt: skip
                    raws.append(
                        RawRecord.of(
                            source=NAME,
                            source_record_id=pair,
                            payload=as_text(payload),
                            fetched_at=now,
                            run_id=run_id,
                        )
                    )
            done = min(first + PAIRS_PER_BATCH, len(self._pairs))
            yield Batch(
                tuple(raws),
                None,
                counters=self._client.tally.take(),
                responses=self._client.tally.take_responses(),
                position=(done, len(self._pairs)),
            )


class BinanceHistory:
    """A pair's klines over a window: 1,000 bars a request."""

    kind = NAME
    intervals: tuple[Interval, ...] = (Interval.FIVE_MINUTES, Interval.HOUR, Interval.DAY)

    def __init__(
        self, client: ProviderClient, clock: Callable[[], datetime], options: BinanceOptions
    ) -> None:
        self._client = client
        self._clock = clock
        self._options = options
        self.normalizer: Normalizer = KlineNormalizer()

    def window(self, interval: Interval) -> timedelta:
        return interval.step * PAGE

    def reach(self) -> tuple[timedelta | None, str]:
        return days(self._options.history_days), "BINANCE_HISTORY_DAYS"

    def provider_id(self, symbol: str, names: Mapping[str, str]) -> str | None:
        return names.get(NAME) or f"{symbol.upper()}{self._options.quotes[0]}"

    def fetch(self, window: Window, run_id: int) -> HistoryPage:
        params: dict[str, str | int] = {
            "symbol": window.provider_id,
            "interval": KLINE_INTERVALS[window.interval],
            "startTime": int(window.start.timestamp() * 1000),
            "endTime": int(window.end.timestamp() * 1000) - 1,  # Binance's end is inclusive
            "limit": PAGE,
        }
        rows = fetched(
            NAME, self._client, window, "/api/v3/klines", params, "BINANCE_HISTORY_DAYS", PAGE * KLINE_BYTES
        )
        require_list(NAME, window, rows, self._client, "a JSON array of klines")
        now = self._clock()
        quote = next(
            (q for q in self._options.quotes if window.provider_id.endswith(q)), self._options.quotes[0]
        )
        raws = []
        for row in rows:
            opened = _opened(row)
            if opened is None or not within(window, opened):
                continue  # a row without a readable open time cannot be keyed to a bar
            payload = {"request": {"symbol": window.provider_id, "base": window.symbol, "quote": quote,
                                   "interval": KLINE_INTERVALS[window.interval]}, "kline": row}  # fmt: skip
            raws.append(bar_raw(window, opened, payload, now, run_id))
        return page_of(raws, self._client)


def _opened(row: Any) -> datetime | None:
    if not isinstance(row, list) or len(row) < 7 or not isinstance(row[0], int) or isinstance(row[0], bool):
        return None
    try:
        return datetime.fromtimestamp(row[0] / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class Kline(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    open: RequiredMoney
    high: RequiredMoney
    low: RequiredMoney
    close: RequiredMoney
    quote_volume: Money = None


# a kline's length, by Binance's name of its interval
INTERVAL_SECONDS = {name: int(interval.step.total_seconds()) for interval, name in KLINE_INTERVALS.items()}


class KlineNormalizer:
    """A kline to a bar: open, high, low and close in USD (the quote is USD-like), its length, and
    the quote volume as the day's volume for a daily bar."""

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        request = raw.payload.get("request") or {}
        row = raw.payload.get("kline")
        opened = _opened(row)
        if opened is None or not isinstance(row, list) or len(row) < 8:
            raise InvalidRecord("kline: not a row of 12 columns with an open time in milliseconds")
        interval = str(request.get("interval"))
        seconds = INTERVAL_SECONDS.get(interval)
        if seconds is None:
            raise InvalidRecord(f"kline: unknown interval {interval!r}")
        bar = validated(
            Kline,
            {"open": row[1], "high": row[2], "low": row[3], "close": row[4], "quote_volume": row[7]},
            names={
                "open": "kline[1] open",
                "high": "kline[2] high",
                "low": "kline[3] low",
                "close": "kline[4] close",
            },
        )
        outside = bar_out_of_range(bar.open, bar.high, bar.low, bar.close)
        if outside:
            raise InvalidRecord(f"kline: {outside}")
        return market_record(
            raw,
            SourceType.API,
            symbol=str(request.get("base") or ""),
            asset_name=None,
            price_usd=bar.close,
            observed_at=opened,
            volume_24h_usd=bar.quote_volume if seconds == 86400 else None,
            quote_currency=str(request.get("quote") or "USDT"),
            price=bar.close,
            ohlc_usd=(bar.open, bar.high, bar.low),
            bar_seconds=seconds,
            url=f"https://www.binance.com/en/trade/{request.get('base')}_{request.get('quote')}?type=spot",
        )
