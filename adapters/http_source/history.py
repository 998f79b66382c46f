"""What every provider's history does with a window: bars to raw records, refusals to reasons.

A bar's raw record is keyed `<provider id>@<moment>` (the asset as the provider names it, and
the bar's time in UTC), so a bar is one record whatever the number of windows it was read in,
and its payload keeps what the provider sent for it with what was asked (`request`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pydantic

from adapters.boundary import Money, RequiredMoment, RequiredMoney, validated
from adapters.http_source.paging import PROVIDER_FAULTS, as_text, source_unavailable
from adapters.http_source.transport import ProviderClient, ProviderRefused
from application.errors import RangeRefused, SourceUnavailable
from application.ports import HistoryPage
from domain.backfill import Window, history_source
from domain.records import RawRecord, SourceType, UnifiedRecord, market_record

# what a provider's refusal of a range says, as the providers word it (CoinGecko's error 10012:
# "exceeds the allowed time range"; CoinPaprika: "... is not allowed in this plan")
PLAN_WORDS = ("time range", "not allowed in this plan", "historical data", "upgrade", "plan")


def bar_key(provider_id: str, moment: datetime) -> str:
    return f"{provider_id}@{moment.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"


def bar_raw(
    window: Window, moment: datetime, payload: dict[str, Any], fetched_at: datetime, run_id: int
) -> RawRecord:
    return RawRecord.of(
        source=window.source,
        source_record_id=bar_key(window.provider_id, moment),
        payload=as_text(payload),
        fetched_at=fetched_at,
        run_id=run_id,
    )


def within(window: Window, moment: datetime) -> bool:
    return window.start <= moment < window.end


def fetched(
    kind: str,
    client: ProviderClient,
    window: Window,
    path: str,
    params: dict[str, str | int],
    setting: str,
    max_bytes: int,
) -> Any:
    """The provider's answer for a window, or the error that says why there is none: a plan's
    refusal of the range is `RangeRefused` (naming `setting`), anything else `SourceUnavailable`."""
    try:
        return client.get_json(path, params, max_bytes=max_bytes)
    except ProviderRefused as ex:
        detail = (ex.detail or "").lower()
        if ex.status in (400, 401, 402, 403) and any(word in detail for word in PLAN_WORDS):
            client.tally.take()
            client.tally.take_responses()
            raise RangeRefused(
                f"{kind} refused {window.symbol} {window.interval.value} "
                f"{window.start:%Y-%m-%d}..{window.end:%Y-%m-%d} (HTTP {ex.status}): {ex.detail} "
                f"— the plan's limit; {setting} keeps backfills within it"
            ) from ex
        if ex.status == 400 and detail:
            raise RangeRefused(
                f"{kind} refused {window.symbol} ({window.provider_id}) {window.interval.value} "
                f"(HTTP 400): {ex.detail}"
            ) from ex
        raise source_unavailable(history_source(kind, window.interval), ex, client) from ex
    except PROVIDER_FAULTS as ex:
        raise source_unavailable(history_source(kind, window.interval), ex, client) from ex


def page_of(raws: Iterable[RawRecord], client: ProviderClient) -> HistoryPage:
    return HistoryPage(tuple(raws), client.tally.take(), client.tally.take_responses())


def require_list(kind: str, window: Window, answer: Any, client: ProviderClient, what: str) -> None:
    if not isinstance(answer, list):
        raise unexpected(kind, window, answer, client, what)


def unexpected(
    kind: str, window: Window, answer: Any, client: ProviderClient, what: str
) -> SourceUnavailable:
    """The error for an answer not shaped as `what`, with the requests it cost."""
    return SourceUnavailable(
        f"{history_source(kind, window.interval)}: expected {what}, got {type(answer).__name__}",
        counters=client.tally.take(),
        responses=client.tally.take_responses(),
    )


def days(settings_days: int | None) -> timedelta | None:
    return timedelta(days=settings_days) if settings_days else None


class HistorySample(pydantic.BaseModel):
    """A provider's price of an asset at a moment, with its market cap and volume when given."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    symbol: str
    moment: RequiredMoment
    price: RequiredMoney
    market_cap: Money = None
    volume: Money = None


@attrs.frozen
class SampleNormalizer:
    """History samples of a provider to market records: the price at that moment (a sample, not
    a bar: it folds into the hour's and day's candles like a snapshot does). `read` takes the
    raw payload to the sample's fields, as that provider lays them out."""

    kind: str
    read: Callable[[dict[str, Any]], dict[str, Any]]

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        sample = validated(HistorySample, self.read(raw.payload))
        return market_record(
            raw,
            SourceType.API,
            symbol=sample.symbol,
            asset_name=None,
            price_usd=sample.price,
            observed_at=sample.moment,
            market_cap_usd=sample.market_cap,
            volume_24h_usd=sample.volume,
        )
