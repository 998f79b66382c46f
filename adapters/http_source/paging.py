"""What both API sources do with a page: elements to raw records, failures to a source error."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx

from adapters.http_source.transport import ProviderClient, ProviderError
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
            payload = {"element": element}
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
        raws.append(
            RawRecord.of(
                source=source, source_record_id=key, payload=element, fetched_at=fetched_at, run_id=run_id
            )
        )
    return raws, rejected


# what makes a source unavailable: the provider's answers and the network. Anything else raised
# while reading is a fault of ours, which the run records as an error with its traceback.
PROVIDER_FAULTS = (ProviderError, httpx.HTTPError)


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
