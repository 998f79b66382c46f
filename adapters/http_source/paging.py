"""What both API sources do with a page: elements to raw records, failures to a source error."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import httpx

from adapters.http_source.transport import ProviderClient, ProviderError, ProviderRefused, Unstorable
from application.errors import SourceUnavailable
from domain.checksum import payload_checksum
from domain.records import QuarantinedRecord, RawRecord


def element_batches(
    source: str, elements: Iterable[Any], seen: set[str], fetched_at: datetime, run_id: int
) -> tuple[list[RawRecord], list[QuarantinedRecord]]:
    """Raw records keyed by the element's `id`; an id already seen in this run is skipped.

    An element that is not an object with an id cannot be keyed: it is kept, wrapped, in
    quarantine under `invalid:<content hash>`.
    """
    raws: list[RawRecord] = []
    rejected: list[QuarantinedRecord] = []
    for element in elements:
        identifier = element.get("id") if isinstance(element, dict) else None
        if not isinstance(identifier, str | int) or not str(identifier).strip():
            payload = {"element": as_text(element)}
            raw = RawRecord.of(
                source=source,
                source_record_id="invalid:" + payload_checksum(payload)[:24],
                payload=payload,
                fetched_at=fetched_at,
                run_id=run_id,
            )
            rejected.append(QuarantinedRecord(raw, "element is not an object with an id"))
            continue
        key = str(identifier).strip()
        if key in seen:
            continue
        seen.add(key)
        odd = list(_unstorable(element, ""))
        if odd:
            path, literal = odd[0]
            raw = RawRecord.of(
                source=source,
                source_record_id=key,
                payload=as_text(element),
                fetched_at=fetched_at,
                run_id=run_id,
            )
            rejected.append(
                QuarantinedRecord(
                    raw,
                    f"{path}: {literal} is not a number that can be stored "
                    "(not finite, or past the range of a double either way)",
                )
            )
            continue
        raws.append(
            RawRecord.of(
                source=source, source_record_id=key, payload=element, fetched_at=fetched_at, run_id=run_id
            )
        )
    return raws, rejected


# a provider's element is a kilobyte or two: a page may hold this much a element it asked for
ELEMENT_BYTES = 16 * 1024


def over_count(
    source: str, elements: list[Any], asked: int, client: ProviderClient
) -> SourceUnavailable | None:
    """A page holding more elements than were asked for is refused whole: the provider is not
    keeping to the request, and storing a 210,672-coin "page" is not what a 250-coin one costs."""
    if len(elements) <= asked:
        return None
    return source_unavailable(
        source,
        ProviderRefused(
            f"answered {len(elements):,} elements where at most {asked:,} were asked for: refused"
        ),
        client,
    )


# what makes a source unavailable: the provider's answers and the network. Anything else raised
# while reading is a fault of ours, which the run records as an error with its traceback.
PROVIDER_FAULTS = (ProviderError, httpx.HTTPError)


def _unstorable(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Where the numbers no column can hold are, as `field.sub[2]` paths, with their text."""
    if isinstance(value, Unstorable):
        yield path or "(element)", value.literal
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _unstorable(item, f"{path}.{name}" if path else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable(item, f"{path}[{index}]")


def as_text(value: Any) -> Any:
    """The element with each unstorable number as its text, as the provider wrote it."""
    if isinstance(value, Unstorable):
        return value.literal
    if isinstance(value, dict):
        return {name: as_text(item) for name, item in value.items()}
    if isinstance(value, list):
        return [as_text(item) for item in value]
    return value


def source_unavailable(source: str, ex: BaseException, client: ProviderClient) -> SourceUnavailable:
    """The run-level error for a source that cannot be read, with the requests it cost."""
    if isinstance(ex, ProviderError):
        detail = str(ex)
    elif isinstance(ex, httpx.TimeoutException):
        detail = f"timed out ({type(ex).__name__}) after retries"
    elif isinstance(ex, httpx.TransportError):
        detail = f"cannot reach the provider: {ex}"
    else:
        detail = f"unexpected answer: {ex}"
    return SourceUnavailable(
        f"{source}: {detail}", counters=client.tally.take(), responses=client.tally.take_responses()
    )
