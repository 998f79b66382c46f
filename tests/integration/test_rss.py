"""News feeds: files and real HTTP on loopback, conditional GETs, hostile or broken XML."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from domain.runs import RunStatus
from entrypoints.bootstrap import build
from entrypoints.settings import Settings
from tests.support.provider import LoopbackProvider, loopback_provider

REPO = Path(__file__).resolve().parents[2]
SAMPLE = (REPO / "data" / "crypto_news.xml").read_bytes()

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom news</title><id>urn:atom-news</id><updated>2024-03-30T12:00:00Z</updated>
  <entry>
    <title>Litecoin Halving Approaches</title><id>urn:atom-news:ltc-halving</id>
    <link href="https://atom.example.com/ltc-halving"/>
    <updated>2024-03-30T11:00:00+02:00</updated>
    <author><name>Ana Ruiz</name></author>
    <category term="Markets"/>
    <summary type="html">&lt;p&gt;LTC miners brace for &lt;b&gt;lower&lt;/b&gt; rewards.&lt;/p&gt;</summary>
  </entry>
</feed>"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<rss version="2.0"><channel><title>&lol2;</title><item><title>&lol2;</title></item></channel></rss>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>x</title><item><title>&secret;</title></item></channel></rss>"""


@pytest.fixture
def provider() -> Iterator[LoopbackProvider]:
    with loopback_provider() as provider:
        yield provider


def run_feeds(database_url: str, feeds: list[str], **settings: Any):
    app = build(Settings(rss_source_url=",".join(feeds), **settings), database_url)
    try:
        return app.run_etl(["rss"])
    finally:
        app.close()


def by_source(run) -> dict[str, Any]:
    return {item.source: item for item in run.sources}


def articles(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT source, title, description, author, category, tags, published_at::text, kind FROM unified_data ORDER BY published_at"
        ).fetchall()


def test_the_bundled_feed_loads_as_articles_with_plain_text(clean_database: str) -> None:
    result = run_feeds(clean_database, [str(REPO / "data" / "crypto_news.xml")])
    assert result.status is RunStatus.SUCCESS
    rows = articles(clean_database)
    assert len(rows) == 6
    bitcoin = next(row for row in rows if row[1].startswith("Bitcoin"))
    assert (
        bitcoin[2]
        == "Bitcoin (BTC) traded above $70,000 for a third day as spot ETFs took in another $300 million."
    )
    assert "trackView" not in bitcoin[2]
    assert (bitcoin[3], bitcoin[4], bitcoin[5], bitcoin[7]) == (
        "Jane Doe",
        "Markets",
        ["Markets", "Bitcoin"],
        "article",
    )
    stablecoin = next(row for row in rows if row[1].startswith("Regulators"))
    assert stablecoin[6] == "2024-03-27 12:00:00+00"  # a time without a zone is UTC
    assert "audits & redemption" in stablecoin[2]
    with psycopg.connect(clean_database) as connection:
        assert connection.execute("SELECT count(*) FROM raw_rss").fetchone() == (6,)
        solana = connection.execute(
            "SELECT source_record_id FROM unified_data WHERE title LIKE 'Solana%%'"
        ).fetchone()
    assert solana == (
        "https://news.example.com/markets/2024/03/28/solana-record-transactions",
    )  # no GUID: the link


def test_a_conditional_get_answers_304_and_loads_nothing_then_an_edit_is_an_update(
    clean_database: str, provider: LoopbackProvider
) -> None:
    provider.state.feeds["news"] = SAMPLE
    url = f"{provider.url}/feeds/news"
    first = by_source(run_feeds(clean_database, [url]))["rss:127.0.0.1"]
    assert (first.counters.inserted, first.counters.http_requests) == (6, 1)
    second = by_source(run_feeds(clean_database, [url]))["rss:127.0.0.1"]
    assert (second.counters.fetched, second.counters.http_requests) == (0, 1)
    [(_, _, headers)] = provider.requests_to("/feeds/news")[1:]
    assert headers.get("If-None-Match", "").startswith('"')
    provider.state.feeds["news"] = SAMPLE.replace(b"as ETF Inflows Continue", b"as ETF Inflows Slow")
    third = by_source(run_feeds(clean_database, [url]))["rss:127.0.0.1"]
    assert (third.counters.updated, third.counters.unchanged, third.counters.inserted) == (1, 5, 0)


def test_an_atom_feed_is_read_too(clean_database: str, provider: LoopbackProvider) -> None:
    provider.state.feeds["atom"] = ATOM
    run_feeds(clean_database, [f"{provider.url}/feeds/atom"])
    [row] = articles(clean_database)
    assert row[1:5] == (
        "Litecoin Halving Approaches",
        "LTC miners brace for lower rewards.",
        "Ana Ruiz",
        "Markets",
    )
    assert row[6] == "2024-03-30 09:00:00+00"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (BOMB, "refused: the feed declares XML entities"),
        (EXTERNAL, "refused: the feed declares XML entities"),
        (b"<rss><channel><item><title>unclosed", "malformed feed"),
        (b"<html><body>502 Bad Gateway</body></html>", "not an RSS or Atom feed"),
        (b"<rss>" + b" " * (2 * 1024 * 1024) + b"</rss>", "the feed exceeds"),
        (
            BOMB.decode()
            .replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
            .encode("utf-16"),
            "refused: the feed declares XML entities",
        ),
        (BOMB.decode().encode("utf-32"), "refused: the feed declares XML entities"),
    ],
    ids=["xml-bomb", "external-entity", "malformed", "html-page", "huge", "bomb-in-utf16", "bomb-in-utf32"],
)
def test_a_hostile_or_broken_feed_fails_alone_with_a_clear_error(
    clean_database: str, provider: LoopbackProvider, tmp_path: Path, body: bytes, error: str
) -> None:
    provider.state.feeds["bad"] = body
    good = tmp_path / "good.xml"
    good.write_bytes(SAMPLE)
    app = build(Settings(rss_source_url=f"{provider.url}/feeds/bad,{good}", feed_max_mb=1), clean_database)
    try:
        result = app.run_etl(["rss"])
    finally:
        app.close()
    sources = by_source(result)
    assert result.status is RunStatus.PARTIAL
    assert error in (sources["rss:127.0.0.1"].error or "")
    assert sources["rss:good"].counters.inserted == 6


def test_an_unreachable_feed_is_a_clear_error(clean_database: str) -> None:
    result = run_feeds(clean_database, ["http://127.0.0.1:9/feed.xml"])
    [source] = result.sources
    assert source.error == "rss:127.0.0.1: cannot fetch the feed (ConnectError)"


def test_a_feed_with_a_small_fault_still_loads(clean_database: str, provider: LoopbackProvider) -> None:
    provider.state.feeds["nbsp"] = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Bitcoin&nbsp;news</title><guid>g1</guid></item></channel></rss>"
    )
    result = run_feeds(clean_database, [f"{provider.url}/feeds/nbsp"])
    assert result.status is RunStatus.SUCCESS
    assert [row[1] for row in articles(clean_database)] == ["Bitcoin news"]


def test_news_is_linked_to_the_assets_it_mentions_and_found_by_symbol(
    clean_database: str, tmp_path: Path
) -> None:
    from application.queries import DataQuery
    from tests.support.market_csv import market_lines, write_csv

    csv = write_csv(
        tmp_path / "prices.csv", list(market_lines(3))
    )  # BTC, ETH, SOL: Bitcoin, Ethereum, Solana
    app = build(
        Settings(csv_source_path=str(csv), rss_source_url=str(REPO / "data" / "crypto_news.xml")),
        clean_database,
    )
    try:
        app.run_etl(["csv", "rss"])
        found = app.reader.find(DataQuery(symbol="btc", page_size=50)).items
        ethereum = app.reader.find(DataQuery(symbol="ETH", kind=None, page_size=50)).items
    finally:
        app.close()
    kinds = sorted({item.record.kind.value for item in found})
    assert kinds == ["article", "market"]
    [article] = [item.record for item in found if item.record.kind.value == "article"]
    assert article.title.startswith("Bitcoin Holds Above")
    assert article.mentions == ("BTC",)
    assert [item.record.title for item in ethereum if item.record.kind.value == "article"] == [
        "Ethereum Developers Set Date for Next Network Upgrade"
    ]


def test_an_entry_carrying_a_nul_character_is_quarantined_and_the_others_load(
    clean_database: str, provider: LoopbackProvider
) -> None:
    provider.state.feeds["nul"] = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Bit\x00coin up</title><guid>g1</guid></item>"
        b"<item><title>Ether steady</title><guid>g2</guid></item>"
        b"<item><title>Solana flat</title><guid>g3</guid></item></channel></rss>"
    )
    result = run_feeds(clean_database, [f"{provider.url}/feeds/nul"])
    assert result.status is RunStatus.SUCCESS  # one of three quarantined: the rest stored, a success
    assert sorted(row[1] for row in articles(clean_database)) == ["Ether steady", "Solana flat"]
    with psycopg.connect(clean_database) as connection:
        [(reason, title)] = connection.execute("SELECT reason, payload->>'title' FROM quarantine").fetchall()
    assert reason.startswith("contains a NUL character (U+0000)")
    assert title == "Bit\ufffdcoin up"


COINDESK_SHAPED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:media="http://search.yahoo.com/mrss/" version="2.0">
<channel><title>CoinDesk</title><link>https://www.coindesk.com</link><description>news</description>
  <item>
    <title><![CDATA[Bitcoin Holds Above $90K]]></title>
    <link>https://www.coindesk.com/markets/btc-holds</link>
    <guid isPermaLink="false">cd-1</guid>
    <dc:creator><![CDATA[Jane Doe]]></dc:creator>
    <pubDate>Mon, 01 Dec 2025 12:00:00 +0000</pubDate>
    <dc:description/>
    <description><![CDATA[BTC steadied after a <b>volatile</b> week.]]></description>
  </item>
  <item>
    <title>Ether Options Expire</title>
    <link>https://www.coindesk.com/markets/eth-options</link>
    <guid isPermaLink="false">cd-2</guid>
    <pubDate>Mon, 01 Dec 2025 13:00:00 +0000</pubDate>
    <description><![CDATA[ETH traders roll positions.]]></description>
    <dc:description/>
  </item>
  <item>
    <title>Solana Fees Fall</title>
    <guid isPermaLink="false">cd-3</guid>
    <pubDate>Mon, 01 Dec 2025 14:00:00 +0000</pubDate>
    <dc:description/>
    <content:encoded><![CDATA[<p>SOL fees fell to a one-year low.</p>]]></content:encoded>
  </item>
  <item>
    <title>XRP Court Date Set</title>
    <guid isPermaLink="false">cd-4</guid>
    <pubDate>Mon, 01 Dec 2025 15:00:00 +0000</pubDate>
    <media:description>A hearing is set for March.</media:description>
  </item>
</channel></rss>"""


def test_an_item_with_a_text_description_and_an_empty_dc_description_keeps_its_text(
    clean_database: str, provider: LoopbackProvider
) -> None:
    provider.state.feeds["coindesk"] = COINDESK_SHAPED
    run = run_feeds(clean_database, [f"{provider.url}/feeds/coindesk"])
    assert run.status is RunStatus.SUCCESS
    descriptions = [row[2] for row in articles(clean_database)]
    assert descriptions == [
        "BTC steadied after a volatile week.",
        "ETH traders roll positions.",
        "SOL fees fell to a one-year low.",
        "A hearing is set for March.",
    ]
    with psycopg.connect(clean_database) as connection:
        kept = connection.execute("SELECT payload FROM raw_rss ORDER BY id").fetchall()
    sent = ["BTC steadied after a <b>volatile</b> week.", "ETH traders roll positions."]
    for (payload,), text in zip(kept[:2], sent, strict=True):
        assert text in [payload["summary"], *payload.get("content", [])]  # the raw payload keeps it


def test_an_entry_without_a_date_is_undated_not_fresh(
    clean_database: str, provider: LoopbackProvider
) -> None:
    provider.state.feeds["undated"] = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>Dated</title><guid>d1</guid><pubDate>Mon, 01 Jan 2024 10:00:00 +0000</pubDate></item>"
        b"<item><title>No date at all</title><guid>d2</guid></item></channel></rss>"
    )
    assert run_feeds(clean_database, [f"{provider.url}/feeds/undated"]).status is RunStatus.SUCCESS
    with psycopg.connect(clean_database) as connection:
        rows = dict(connection.execute("SELECT title, published_at FROM unified_data").fetchall())
    assert rows["No date at all"] is None  # never the fetch time
    assert rows["Dated"].isoformat() == "2024-01-01T10:00:00+00:00"


def test_a_feed_redirect_is_followed_within_its_host_and_refused_to_another(
    clean_database: str, provider: LoopbackProvider
) -> None:
    from tests.support.provider import Fault

    feed = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>Moved</title><guid>m1</guid></item></channel></rss>'
    provider.state.feeds["new"] = feed
    provider.queue("/feeds/old", Fault(status=301, headers={"Location": "/feeds/new"}))
    moved = run_feeds(clean_database, [f"{provider.url}/feeds/old"])
    assert moved.status is RunStatus.SUCCESS  # same host, another path: followed
    elsewhere = provider.url.replace("127.0.0.1", "localhost")  # the same server under another host name
    provider.queue("/feeds/hijacked", Fault(status=302, headers={"Location": f"{elsewhere}/feeds/new"}))
    refused = run_feeds(clean_database, [f"{provider.url}/feeds/hijacked"])
    [source] = refused.sources
    assert source.status is RunStatus.FAILED
    assert "redirected from 127.0.0.1 to localhost: another host is not followed" in source.error
    assert not provider.requests_to("/feeds/new")[1:]  # the only fetch of /feeds/new was the same-host one


REAL_FEEDS = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "feeds").glob("*.rss"))
_TEXT_TAGS = ("description", "content:encoded", "dc:description", "media:description")


def _item_texts_read_independently(raw: str) -> list[tuple[str, list[str]]]:
    """Each item's guid (or link) and the non-empty texts of its description-like elements,
    read from the file's text with patterns, not with the reader's XML code."""
    items = []
    for item in re.findall(r"<item\b.*?</item>", raw, flags=re.S):
        key = re.search(r"<guid[^>]*>(.*?)</guid>", item, flags=re.S) or re.search(
            r"<link>(.*?)</link>", item, flags=re.S
        )
        texts = []
        for tag in _TEXT_TAGS:
            for body in re.findall(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", item, flags=re.S):
                body = re.sub(r"^\s*<!\[CDATA\[(.*)\]\]>\s*$", r"\1", body, flags=re.S)
                text = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(body)).split())
                if text:
                    texts.append(text)
        items.append((html.unescape(key.group(1).strip()) if key else "", texts))
    return items


@pytest.mark.parametrize("feed", REAL_FEEDS, ids=[feed.name for feed in REAL_FEEDS])
def test_every_item_of_a_real_feed_keeps_its_text(clean_database: str, feed: Path) -> None:
    expected = _item_texts_read_independently(feed.read_text(encoding="utf-8"))
    assert expected, "a real feed has items"
    run = run_feeds(clean_database, [str(feed)])
    assert run.status is RunStatus.SUCCESS
    with psycopg.connect(clean_database) as connection:
        stored = dict(connection.execute("SELECT source_record_id, description FROM unified_data").fetchall())
        raw_texts = [row[0] for row in connection.execute("SELECT payload->'texts' FROM raw_rss")]
    assert len(stored) == len(expected)
    for key, texts in expected:
        description = stored[key]
        if not texts:
            assert description is None, key
            continue
        assert description, f"{feed.name}: {key} lost its text"
        words = " ".join(description.split())
        assert any(words[:60] in text for text in texts), (feed.name, key, words[:60], texts[0][:60])
    assert all(isinstance(texts, dict) for texts in raw_texts)  # the raw payload keeps every element
