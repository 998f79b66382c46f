"""RSS 2.0 and Atom news feeds: fetched with a conditional GET, parsed by feedparser, kept raw.

Feeds are untrusted XML: the body is bounded, a document declaring entities (the shape of
entity-expansion bombs and external-entity tricks) is refused before parsing, and a feed that
cannot be parsed is a clear error for that feed alone.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import feedparser
import httpx

from adapters.http_headers import retry_after_seconds
from application.errors import SourceUnavailable
from application.ports import Batch
from domain.checksum import payload_checksum
from domain.cleaning import clean_text, parse_timestamp
from domain.errors import InvalidRecord, InvalidValue
from domain.records import RawRecord, RecordKind, Source, SourceType, UnifiedRecord
from domain.runs import SourceCounters

# a declared entity is the shape of expansion bombs and external-entity tricks, in whatever
# encoding the document is written (UTF-16 and UTF-32 interleave NUL bytes)
_ENTITY_DECLARATIONS = tuple(
    re.compile(re.escape("<!ENTITY".encode(encoding)), re.IGNORECASE)
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
_WEB_SCHEMES = ("http", "https")
RETRIED_STATUSES = frozenset({429, 503})
MAX_FEED_RETRIES = 2


def rss_source_name(feed: str) -> str:
    """`rss:<feed host>` for a URL, `rss:<file stem>` for a file."""
    if feed.startswith(("http://", "https://")):
        return f"rss:{urlsplit(feed).hostname}"
    return f"rss:{Path(feed).stem}"


class FeedparserRssReader:
    """One feed, a URL or a file, as one source; one batch per fetch."""

    def __init__(
        self,
        feed: str,
        client: httpx.Client | None,
        clock: Callable[[], datetime],
        max_bytes: int = 10 * 1024 * 1024,
        deadline_seconds: float = 60.0,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.feed = feed
        self.source = Source(name=rss_source_name(feed), source_type=SourceType.RSS)
        self._client = client
        self._clock = clock
        self._max_bytes = max_bytes
        self._deadline = deadline_seconds
        self._max_retry_after = max_retry_after
        self._sleep = sleep

    def read(self, cursor: dict[str, Any] | None, run_id: int) -> Iterator[Batch]:
        cursor = dict(cursor or {})
        counters = SourceCounters()
        if self.feed.startswith(("http://", "https://")):
            body, cursor, counters = self._fetch(cursor)
            if body is None:  # 304 Not Modified: nothing new
                yield Batch((), cursor, counters=counters)
                return
        else:
            body = self._open()
        if any(pattern.search(body) for pattern in _ENTITY_DECLARATIONS):
            raise SourceUnavailable(f"{self.source.name}: refused: the feed declares XML entities", counters)
        parsed = feedparser.parse(body)
        problem = _unusable(parsed)
        if problem:
            raise SourceUnavailable(f"{self.source.name}: {problem}", counters)
        fetched_at = self._clock()
        texts = item_texts(body, len(parsed.entries))
        raws = tuple(
            RawRecord.of(
                source=self.source.name,
                source_record_id=_entry_id(payload),
                payload=payload,
                fetched_at=fetched_at,
                run_id=run_id,
            )
            for payload in (_entry_payload(entry, texts[index]) for index, entry in enumerate(parsed.entries))
        )
        yield Batch(raws, cursor, counters=counters)

    def _fetch(self, cursor: dict[str, Any]) -> tuple[bytes | None, dict[str, Any], SourceCounters]:
        """The feed's body (None: not modified), its validators, and what the fetch cost. A 429
        or 503 is retried after its `Retry-After` (when it asks for no longer than the cap)."""
        counters = SourceCounters()
        for attempt in range(MAX_FEED_RETRIES + 1):
            counters += SourceCounters(http_requests=1)
            wait, answer = self._fetch_once(cursor, counters)
            if wait is None:
                return answer
            if attempt == MAX_FEED_RETRIES:
                break
            counters += SourceCounters(retries=1, rate_limit_waits=1)
            self._sleep(wait)
        raise SourceUnavailable(
            f"{self.source.name}: the feed kept answering 429/503 after {MAX_FEED_RETRIES} retries", counters
        )

    def _fetch_once(
        self, cursor: dict[str, Any], counters: SourceCounters
    ) -> tuple[float | None, tuple[bytes | None, dict[str, Any], SourceCounters]]:
        assert self._client is not None
        headers = {}
        if cursor.get("etag"):
            headers["If-None-Match"] = str(cursor["etag"])
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = str(cursor["last_modified"])
        started = time.monotonic()
        try:
            with self._client.stream("GET", self.feed, headers=headers) as response:
                if response.status_code == 304:
                    return None, (None, cursor, counters)
                if response.status_code in RETRIED_STATUSES:
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                    if wait is not None and wait <= self._max_retry_after:
                        return wait, (None, cursor, counters)
                if response.status_code != 200:
                    raise SourceUnavailable(
                        f"{self.source.name}: the feed answered {response.status_code}", counters
                    )
                body = self._bounded(response.iter_bytes(), counters, started)
                validators = {
                    "etag": response.headers.get("etag"),
                    "last_modified": response.headers.get("last-modified"),
                }
        except CrossHostRedirect as ex:
            raise SourceUnavailable(f"{self.source.name}: {ex}", counters) from ex
        except httpx.HTTPError as ex:
            raise SourceUnavailable(
                f"{self.source.name}: cannot fetch the feed ({type(ex).__name__})", counters
            ) from ex
        return None, (body, {key: value for key, value in validators.items() if value}, counters)

    def _open(self) -> bytes:
        path = Path(self.feed)
        try:
            with path.open("rb") as handle:
                return self._bounded(iter(lambda: handle.read(1 << 16), b""), SourceCounters())
        except OSError as ex:
            raise SourceUnavailable(f"{self.source.name}: cannot open {path}: {ex.strerror}") from ex

    def _bounded(
        self, chunks: Iterator[bytes], counters: SourceCounters, started: float | None = None
    ) -> bytes:
        body = bytearray()
        for chunk in chunks:
            body += chunk
            if len(body) > self._max_bytes:
                raise SourceUnavailable(
                    f"{self.source.name}: the feed exceeds {self._max_bytes:,} bytes (FEED_MAX_MB)", counters
                )
            if started is not None and time.monotonic() - started > self._deadline:
                raise SourceUnavailable(
                    f"{self.source.name}: the feed took longer than {self._deadline:g} s "
                    f"(HTTP_DEADLINE_SECONDS) after {len(body):,} bytes",
                    counters,
                )
        return bytes(body)


# parse errors that mean the document was cut short: what was recovered cannot be trusted whole
_TRUNCATED = ("no element found", "unclosed token", "mismatched tag")


def _unusable(parsed: Any) -> str | None:
    """Why a parsed document cannot be loaded, if it cannot.

    feedparser recovers from small faults (an undefined `&nbsp;`), and those feeds load; a
    document that is not a feed, or was cut short, does not.
    """
    error = parsed.get("bozo_exception")
    if not parsed.version:
        return "not an RSS or Atom feed" + (f" ({error})" if error else "")
    if parsed.bozo and (not parsed.entries or any(text in str(error) for text in _TRUNCATED)):
        return f"malformed feed ({type(error).__name__}: {error})"
    return None


# the elements an item's text may be in, in the order they are preferred, whatever their order
# in the item: RSS's own, then the modules' (Atom's summary and content count as the first two)
TEXT_ELEMENTS = {
    "description": ("description", "{http://www.w3.org/2005/Atom}summary"),
    "content:encoded": (
        "{http://purl.org/rss/1.0/modules/content/}encoded",
        "{http://www.w3.org/2005/Atom}content",
    ),
    "dc:description": ("{http://purl.org/dc/elements/1.1/}description",),
    "media:description": ("{http://search.yahoo.com/mrss/}description",),
}
_ITEMS = ("item", "{http://purl.org/rss/1.0/}item", "{http://www.w3.org/2005/Atom}entry")
_NAME_OF = {tag: name for name, tags in TEXT_ELEMENTS.items() for tag in tags}


def item_texts(body: bytes, entries: int) -> list[dict[str, list[str]] | None]:
    """Every description-like element of each item, as written (empty ones too), by kind.

    feedparser keeps one `summary` per entry, the last description-like element it met: an
    empty `<dc:description/>` after the real `<description>` (CoinDesk's feed) wipes the text.
    The items are read here as XML, element by element, in document order, so none is lost;
    a document XML cannot read (feedparser recovers from more) gives None for each entry and
    feedparser's fields are used alone."""
    found: list[dict[str, list[str]] | None] = []
    try:
        for _, element in ElementTree.iterparse(io.BytesIO(body), events=("end",)):
            if element.tag in _ITEMS:
                texts: dict[str, list[str]] = {}
                for child in element.iter():
                    name = _NAME_OF.get(child.tag)
                    if name is not None and child is not element:
                        texts.setdefault(name, []).append("".join(child.itertext()))
                found.append(texts)
                element.clear()
    except ElementTree.ParseError:
        return [None] * entries
    return found if len(found) == entries else [None] * entries


def _entry_payload(entry: Any, texts: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The entry's own text fields, JSON-ready (feedparser's parsed dates are left out), with
    every description-like element as the feed wrote it under `texts` (see `item_texts`)."""
    payload = {
        "id": entry.get("id"),
        "title": entry.get("title"),
        "link": entry.get("link"),
        "published": entry.get("published") or entry.get("updated"),
        "author": entry.get("author"),
        "tags": [tag.get("term") for tag in entry.get("tags", []) if tag.get("term")],
        "summary": entry.get("summary"),
    }
    contents = [item.get("value") for item in entry.get("content", []) if item.get("value")]
    if contents:
        payload["content"] = contents
    if texts is not None:
        payload["texts"] = texts
    return payload


def _entry_id(payload: dict[str, Any]) -> str:
    """The GUID, else the link, else the content: an entry keeps its identity across fetches."""
    key = payload.get("id") or payload.get("link")
    return (
        str(key) if key else "entry:" + payload_checksum([payload.get("title"), payload.get("summary")])[:24]
    )


class _Text(HTMLParser):
    """Text of an HTML fragment; scripts and styles dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag in ("p", "br", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(fragment: str | None) -> str | None:
    if not fragment:
        return None
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return clean_text("".join(parser.parts))


class CrossHostRedirect(httpx.HTTPError):
    """A feed redirected to another host: not followed (a feed's address is configuration, and
    a hijacked or moved host must be seen by a person), as the API sources follow none."""


def refuse_cross_host_redirect(response: httpx.Response) -> None:
    """An httpx response hook: a redirect within the feed's host is followed (http → https, a
    moved path), one to another host is refused with both hosts named."""
    if not response.is_redirect:
        return
    target = response.url.join(response.headers.get("location", ""))
    if target.host != response.url.host:
        raise CrossHostRedirect(
            f"the feed redirected from {response.url.host} to {target.host}: another host is not followed; "
            "set RSS_SOURCE_URL to the new address if the move is genuine"
        )


class RssArticleNormalizer:
    """An entry becomes an article: plain-text summary, first category, published time.

    A missing publication time stays missing (`published_at` null: an undated item is not
    fresh news, and sorts last); a time without a zone is taken as UTC.
    """

    def normalize(self, raw: RawRecord) -> UnifiedRecord:
        payload = raw.payload
        title = html_to_text(payload.get("title"))
        if not title:
            raise InvalidRecord("title: required value is missing")
        try:
            published = _published(payload.get("published"))
        except InvalidValue as ex:
            raise InvalidRecord(f"published: {ex}") from ex
        tags = tuple(str(tag) for tag in payload.get("tags") or ())
        return UnifiedRecord(
            source=raw.source,
            source_type=SourceType.RSS,
            source_record_id=raw.source_record_id,
            kind=RecordKind.ARTICLE,
            checksum=raw.checksum,
            title=title,
            description=_description(payload),
            author=clean_text(payload.get("author")),
            category=tags[0] if tags else None,
            tags=tags,
            url=_web_url(payload.get("link")),
            published_at=published,
        )


def _web_url(link: object) -> str | None:
    """An entry's link when it is an http(s) URL; a `javascript:`, `data:` or other link is
    dropped from the record (the raw payload keeps what the feed sent)."""
    if not isinstance(link, str) or not link.strip():
        return None
    try:
        scheme = urlsplit(link.strip()).scheme.lower()
    except ValueError:
        return None
    return link.strip() if scheme in _WEB_SCHEMES else None


def _description(payload: dict[str, Any]) -> str | None:
    """The entry's text: the first element with any text of `description`, `content:encoded`,
    `dc:description`, `media:description` (in that order, however many are empty and wherever
    they stand); without the item's elements (XML it could not read), feedparser's summary,
    else its first content with text."""
    texts = payload.get("texts")
    if isinstance(texts, dict):
        for name in TEXT_ELEMENTS:
            for candidate in texts.get(name) or ():
                text = html_to_text(candidate) if isinstance(candidate, str) else None
                if text:
                    return text
        return None
    for candidate in (payload.get("summary"), *(payload.get("content") or ())):
        text = html_to_text(candidate) if isinstance(candidate, str) else None
        if text:
            return text
    return None


def _published(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return parse_timestamp(parsedate_to_datetime(str(value)))
    except (TypeError, ValueError, IndexError):
        return parse_timestamp(value)
