"""A loopback provider: a real HTTP server on 127.0.0.1 that answers like CoinGecko and CoinPaprika.

Payloads are generated in the providers' recorded formats (see ../shared/SOURCES.md and the
captured payloads it points to). Faults are queued per path and served in order before normal
answers resume: statuses with headers (429 + Retry-After, 402, 500), slow answers, truncated
JSON, HTML error pages, oversized bodies.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

NAMES = ("Bitcoin", "Ethereum", "Tether", "Solana", "Cardano", "Dogecoin", "Polkadot", "Litecoin")
SYMBOLS = ("btc", "eth", "usdt", "sol", "ada", "doge", "dot", "ltc")


@attrs.define
class Fault:
    status: int = 200
    headers: dict[str, str] = attrs.Factory(dict)
    body: bytes | None = None
    delay: float = 0.0
    trickle: float = 0.0  # seconds between the body's bytes: a provider sending one byte at a time


def coin_name(i: int) -> tuple[str, str]:
    base, symbol = NAMES[i % len(NAMES)], SYMBOLS[i % len(NAMES)]
    if i < len(NAMES):
        return base, symbol
    return f"{base} {i}", f"{symbol}{i}"


def coingecko_coin(i: int, price_factor: float = 1.0) -> dict[str, Any]:
    rng = random.Random(i)
    name, symbol = coin_name(i)
    price = round(rng.uniform(0.01, 50000) * price_factor, 6)
    cap = round(price * rng.uniform(1e6, 1e9)) if i % 17 != 16 else 0  # CoinGecko says 0 when unknown
    return {
        "id": name.lower().replace(" ", "-"),
        "symbol": symbol,
        "name": name,
        "image": f"https://assets.coingecko.com/coins/images/{i}/large/{symbol}.png",
        "current_price": price,
        "market_cap": cap,
        "market_cap_rank": i + 1 if cap else None,
        "fully_diluted_valuation": None,
        "total_volume": round(rng.uniform(1e4, 1e9)),
        "high_24h": round(price * 1.02, 6),
        "low_24h": round(price * 0.98, 6),
        "price_change_24h": round(price * 0.01, 6),
        "price_change_percentage_24h": round(rng.uniform(-10, 10), 5),
        "market_cap_change_24h": 0,
        "market_cap_change_percentage_24h": 0,
        "circulating_supply": round(rng.uniform(1e6, 1e9), 3),
        "total_supply": None,
        "max_supply": None,
        "ath": round(price * 1.5, 6),
        "ath_change_percentage": -33.3,
        "ath_date": "2021-11-10T14:24:11.849Z",
        "atl": round(price * 0.1, 6),
        "atl_change_percentage": 900.0,
        "atl_date": "2015-10-20T00:00:00.000Z",
        "roi": None if i % 3 else {"times": 280.8, "currency": "usd", "percentage": 28080.5},
        "last_updated": "2024-03-21T06:51:54.031Z",
    }


def coinpaprika_ticker(i: int, price_factor: float = 1.0) -> dict[str, Any]:
    gecko = coingecko_coin(i, price_factor)
    name, symbol = coin_name(i)
    return {
        "id": f"{symbol}-{name.lower().replace(' ', '-')}",
        "name": name,
        "symbol": symbol.upper(),
        "rank": i + 1,
        "circulating_supply": gecko["circulating_supply"],
        "total_supply": gecko["circulating_supply"],
        "max_supply": 0 if i % 2 else 21000000,
        "beta_value": 0.93,
        "first_data_at": "2010-07-17T00:00:00Z",
        "last_updated": "2024-03-21T06:51:00Z",
        "quotes": {
            "USD": {
                "price": gecko["current_price"],
                "volume_24h": gecko["total_volume"],
                "volume_24h_change_24h": 1.2,
                "market_cap": gecko["market_cap"],
                "market_cap_change_24h": 0.4,
                "percent_change_15m": 0.01,
                "percent_change_30m": 0.02,
                "percent_change_1h": 0.1,
                "percent_change_6h": 0.3,
                "percent_change_12h": 0.5,
                "percent_change_24h": gecko["price_change_percentage_24h"],
                "percent_change_7d": 2.0,
                "percent_change_30d": 5.0,
                "percent_change_1y": 50.0,
                "ath_price": gecko["ath"],
                "ath_date": "2021-11-10T16:51:15Z",
                "percent_from_price_ath": -33.3,
            }
        },
    }


@attrs.define
class ProviderState:
    coins: int = 300
    price_factor: float = 1.0
    moved_every: int = 1  # price_factor applies to every n-th coin (1: all of them)
    appended: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)  # kind → extra elements at the end
    broken: dict[int, dict[str, Any]] = attrs.Factory(dict)
    renamed: dict[str, str] = attrs.Factory(dict)
    shift_after_first_page: bool = False
    faults: dict[str, deque[Fault]] = attrs.Factory(lambda: defaultdict(deque))
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = attrs.Factory(list)
    request_times: list[float] = attrs.Factory(list)
    feeds: dict[str, bytes] = attrs.Factory(dict)  # served at /feeds/<name>, with an ETag
    # history: what the plans reach (days back from `now`; None: everything) and when coins were
    # listed (nothing before: an empty answer, as the providers give)
    history_days: int | None = None
    listed_from: datetime = datetime(2015, 1, 1, tzinfo=UTC)
    now: datetime = attrs.Factory(lambda: datetime.now(UTC))
    # (provider, coin, day) -> a factor on that provider's price of the coin that day
    skewed: dict[tuple[str, int, datetime], float] = attrs.Factory(dict)
    history_delay: float = 0.0  # seconds each history answer takes (a window being worked, seen from outside)
    # Binance klines served as given for (pair, interval), else made from `price`
    klines: dict[tuple[str, str], list[list[Any]]] = attrs.Factory(dict)
    lock: threading.Lock = attrs.Factory(threading.Lock)

    def price(self, i: int, moment: datetime, provider: str = "") -> float:
        """Coin `i`'s price at a moment: a slow wave around its snapshot price (a day's worth of
        difference between providers would be noise; `skewed` makes one bar far off on purpose)."""
        base = coingecko_coin(i)["current_price"]
        day = (moment - datetime(2000, 1, 1, tzinfo=UTC)).days
        day_start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        factor = self.skewed.get((provider, i, day_start), 1.0)
        return round(base * (1 + 0.2 * math.sin(day / 45)) * factor, 6)

    def element(self, kind: str, i: int) -> dict[str, Any]:
        if i in self.broken:
            return self.broken[i]
        factor = self.price_factor if i % self.moved_every == 0 else 1.0
        item = (coingecko_coin if kind == "coingecko" else coinpaprika_ticker)(i, factor)
        return {self.renamed.get(key, key): value for key, value in item.items()}


class LoopbackProvider:
    """Serves `/coingecko/coins/markets` and `/coinpaprika/tickers` on an ephemeral port."""

    def __init__(self) -> None:
        self.state = ProviderState()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
                with state.lock:
                    state.requests.append((parts.path, query, dict(self.headers.items())))
                    state.request_times.append(time.monotonic())
                    queue = state.faults.get(parts.path)
                    fault = queue.popleft() if queue else None
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and (fault.status != 200 or fault.body is not None):
                    self._send(fault.status, fault.body or b"", fault.headers, fault.trickle)
                    return
                if parts.path.startswith("/feeds/"):
                    self._feed(parts.path.removeprefix("/feeds/"))
                elif parts.path == "/coingecko/coins/markets":
                    self._send_json(self._markets(query))
                elif parts.path.startswith("/coingecko/coins/") and parts.path.endswith(
                    "/market_chart/range"
                ):
                    self._market_chart(parts.path.split("/")[3], query)
                elif parts.path.startswith("/coinpaprika/coins/") and parts.path.endswith(
                    "/ohlcv/historical"
                ):
                    self._paprika_bars(parts.path.split("/")[3], query)
                elif parts.path.startswith("/coinpaprika/tickers/") and parts.path.endswith("/historical"):
                    self._paprika_history(parts.path.split("/")[3], query)
                elif parts.path == "/binance/api/v3/klines":
                    self._klines(query)
                elif parts.path == "/coinpaprika/tickers":
                    tickers = [state.element("coinpaprika", i) for i in range(state.coins)]
                    self._send_json(tickers + state.appended.get("coinpaprika", []))
                else:
                    self._send(404, b'{"error":"not found"}', {"Content-Type": "application/json"})

            def _markets(self, query: dict[str, str]) -> list[dict[str, Any]]:
                page, per_page = int(query.get("page", "1")), int(query.get("per_page", "100"))
                order = list(range(state.coins))
                if state.shift_after_first_page and page > 1 and state.coins > per_page:
                    # after page 1 was served, its last coin and page 2's first swapped ranks:
                    # the first shows again on page 2, the second is missed by this run
                    order[per_page - 1], order[per_page] = order[per_page], order[per_page - 1]
                extra = state.appended.get("coingecko", [])
                first, last = (page - 1) * per_page, page * per_page
                chosen = [state.element("coingecko", i) for i in order[first:last]]
                return chosen + extra[max(0, first - len(order)) : max(0, last - len(order))]

            def _market_chart(self, coin: str, query: dict[str, str]) -> None:
                start = datetime.fromtimestamp(int(query["from"]), UTC)
                end = datetime.fromtimestamp(int(query["to"]), UTC)
                if state.history_days is not None and start < state.now - timedelta(days=state.history_days):
                    self._send(401, COINGECKO_RANGE_REFUSAL, {})
                    return
                index = coin_index(coin, "coingecko", state.coins)
                if index is None:
                    self._send(404, b'{"error":"coin not found"}', {})
                    return
                daily = end - start > timedelta(days=90)
                points = history_moments(start, end, daily, state.listed_from)
                time.sleep(state.history_delay)
                prices = [
                    [int(moment.timestamp() * 1000), state.price(index, moment, "coingecko")]
                    for moment in points
                ]
                self._send_json(
                    {
                        "prices": prices,
                        "market_caps": [[t, round(p * 19_000_000, 2)] for t, p in prices],
                        "total_volumes": [[t, round(p * 400_000, 2)] for t, p in prices],
                    }
                )

            def _paprika_bars(self, coin: str, query: dict[str, str]) -> None:
                start = datetime.fromisoformat(query["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(query["end"].replace("Z", "+00:00"))
                if state.history_days is not None and start < state.now - timedelta(days=state.history_days):
                    limit = (state.now - timedelta(days=state.history_days)).strftime("%Y-%m-%d %H:%M:%S")
                    self._send(402, COINPAPRIKA_RANGE_REFUSAL.replace(b"@LIMIT@", limit.encode()), {})
                    return
                index = coin_index(coin, "coinpaprika", state.coins)
                if index is None:
                    self._send(404, b'{"error":"id not found"}', {})
                    return
                time.sleep(state.history_delay)
                bars = []
                day = max(bucket(start, timedelta(days=1)), bucket(state.listed_from, timedelta(days=1)))
                while day < end and len(bars) < int(query.get("limit", "50")):
                    if day >= start:
                        close = state.price(index, day, "coinpaprika")
                        bars.append({
                            "time_open": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "time_close": (day + timedelta(days=1, seconds=-1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "open": round(close * 0.99, 8), "high": round(close * 1.02, 8),
                            "low": round(close * 0.97, 8), "close": close,
                            "volume": round(close * 400_000), "market_cap": round(close * 19_000_000),
                        })  # fmt: skip
                    day += timedelta(days=1)
                self._send_json(bars)

            def _paprika_history(self, ticker: str, query: dict[str, str]) -> None:
                start = datetime.fromisoformat(query["start"].replace("Z", "+00:00"))
                end = datetime.fromisoformat(query["end"].replace("Z", "+00:00"))
                if state.history_days is not None and start < state.now - timedelta(days=state.history_days):
                    limit = (state.now - timedelta(days=state.history_days)).strftime("%Y-%m-%d %H:%M:%S")
                    body = COINPAPRIKA_RANGE_REFUSAL.replace(b"@LIMIT@", limit.encode())
                    self._send(402, body, {})
                    return
                index = coin_index(ticker, "coinpaprika", state.coins)
                if index is None:
                    self._send(404, b'{"error":"id not found"}', {})
                    return
                step = {"1d": timedelta(days=1), "1h": timedelta(hours=1), "5m": timedelta(minutes=5)}[
                    query["interval"]
                ]
                time.sleep(state.history_delay)
                moments = []
                moment = max(start, state.listed_from)
                while moment < end:
                    moments.append(moment)
                    moment += step
                self._send_json(
                    [
                        {
                            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "price": state.price(index, moment, "coinpaprika"),
                            "volume_24h": round(state.price(index, moment, "coinpaprika") * 400_000),
                            "market_cap": round(state.price(index, moment, "coinpaprika") * 19_000_000),
                        }
                        for moment in moments[: int(query.get("limit", "1000"))]
                    ]
                )

            def _klines(self, query: dict[str, str]) -> None:
                pair, interval = query.get("symbol", ""), query.get("interval", "")
                step = {"1d": timedelta(days=1), "1h": timedelta(hours=1), "5m": timedelta(minutes=5)}.get(
                    interval
                )
                base = next((pair[: -len(q)] for q in ("USDT", "USDC") if pair.endswith(q)), "")
                index = coin_index(base.lower(), "symbol", state.coins)
                if step is None or (index is None and (pair, interval) not in state.klines):
                    self._send(400, b'{"code":-1121,"msg":"Invalid symbol."}', {})
                    return
                limit = min(int(query.get("limit", "500")), 1000)
                end_ms = int(query.get("endTime", int(state.now.timestamp() * 1000)))
                if "startTime" in query:
                    time.sleep(state.history_delay)
                    start = datetime.fromtimestamp(int(query["startTime"]) / 1000, UTC)
                else:  # the newest `limit` bars, the last one still open
                    now = state.now
                    start = bucket(now, step) - step * (limit - 1)
                end = datetime.fromtimestamp(end_ms / 1000, UTC)
                if (pair, interval) in state.klines:
                    rows = [row for row in state.klines[(pair, interval)]
                            if start.timestamp() * 1000 <= row[0] <= end_ms]  # fmt: skip
                else:
                    assert index is not None
                    rows = []
                    moment = max(bucket(start, step) if bucket(start, step) >= start else bucket(start, step) + step,
                                 state.listed_from)  # fmt: skip
                    while moment <= end:
                        rows.append(kline(moment, step, state.price(index, moment, "binance")))
                        moment += step
                self._send_json(sorted(rows)[:limit])

            def _feed(self, name: str) -> None:
                body = state.feeds.get(name)
                if body is None:
                    self._send(404, b"", {"Content-Type": "text/plain"})
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self._send(304, b"", {"ETag": etag})
                    return
                self._send(200, body, {"Content-Type": "application/rss+xml", "ETag": etag})

            def _send_json(self, payload: Any) -> None:
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})

            def _send(self, status: int, body: bytes, headers: dict[str, str], trickle: float = 0.0) -> None:
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not trickle:
                    self.wfile.write(body)
                    return
                try:
                    for index in range(len(body)):
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(trickle)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up, as it should

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, path: str, *faults: Fault) -> None:
        with self.state.lock:
            self.state.faults[path].extend(faults)

    def requests_to(self, path: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        with self.state.lock:
            return [request for request in self.state.requests if request[0] == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def loopback_provider() -> Iterator[LoopbackProvider]:
    provider = LoopbackProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


def bucket(moment: datetime, step: timedelta) -> datetime:
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    return origin + (moment - origin) // step * step


def kline(moment: datetime, step: timedelta, close: float) -> list[Any]:
    """A kline row as Binance sends one (its 12 columns; prices as decimal strings)."""
    opened = int(moment.timestamp() * 1000)
    open_, high, low = close * 0.99, close * 1.02, close * 0.97
    return [opened, f"{open_:.8f}", f"{high:.8f}", f"{low:.8f}", f"{close:.8f}", "12.50000000",
            opened + int(step.total_seconds() * 1000) - 1, f"{close * 12.5:.8f}", 321, "6.20000000",
            f"{close * 6.2:.8f}", "0"]  # fmt: skip


def coin_index(name: str, kind: str, coins: int) -> int | None:
    """Which coin a provider's id names (`bitcoin`, `btc-bitcoin`, `btc`), among the first `coins`."""
    return _coin_ids(kind, max(coins, len(NAMES))).get(name)


@functools.cache
def _coin_ids(kind: str, coins: int) -> dict[str, int]:
    of = {
        "coingecko": lambda i: coingecko_coin(i)["id"],
        "coinpaprika": lambda i: coinpaprika_ticker(i)["id"],
        "symbol": lambda i: coin_name(i)[1],
    }[kind]
    return {of(i): i for i in range(coins)}


def history_moments(start: datetime, end: datetime, daily: bool, listed_from: datetime) -> list[datetime]:
    """CoinGecko's points over a range: at 00:00 UTC each day for a range over 90 days, else each
    hour a few minutes past it (as its hourly data comes), none before the listing."""
    step = timedelta(days=1) if daily else timedelta(hours=1)
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    moments = []
    moment = first if daily else first + timedelta(minutes=4, seconds=17)
    while moment <= end:
        if moment >= max(start, listed_from):
            moments.append(moment)
        moment += step
    return moments


# the providers' refusals of a range beyond the plan, as they word them (see tests/fixtures/README.md)
COINGECKO_RANGE_REFUSAL = (
    b'{"error":{"status":{"timestamp":"2024-04-20T22:00:05.123+00:00","error_code":10012,"error_message":'
    b'"Your request exceeds the allowed time range. Public API users are limited to querying historical '
    b"data within the past 365 days. Upgrade to a paid plan to enjoy full historical data access: "
    b'https://www.coingecko.com/en/api/pricing. "}}}'
)
COINPAPRIKA_RANGE_REFUSAL = (
    b'{"error":"Getting historical OHLCV data before @LIMIT@ +0000 UTC is not allowed in this plan. '
    b'Check plans on coinpaprika.com/api"}'
)
MARKETS = "/coingecko/coins/markets"
TICKERS = "/coinpaprika/tickers"
TRUNCATED = Fault(body=b'[{"id": "bitcoin", "symbol": "btc", "current_pr')
HTML_BLOCK = Fault(
    status=403,
    headers={"Content-Type": "text/html"},
    body=b"<html><body>error code: 1020 Access denied</body></html>",
)


# the literal the provider writes, the field it goes in, and what the quarantine says of it
HOSTILE = [
    ("NaN", "current_price", "current_price: NaN is not a number that can be stored"),
    ("Infinity", "total_volume", "total_volume: Infinity is not a number that can be stored"),
    ("1e309", "market_cap", "market_cap: 1e309 is not a number that can be stored"),
    ("1e-400", "current_price", "current_price: 1e-400 is not a number that can be stored"),
    ("1" + "0" * 400, "current_price", "price_usd: 1E+400 USD is above 1E+12"),
    ('"9999-12-31T23:59:59Z"', "last_updated", "observed_at: 9999-12-31T23:59:59+00:00 is outside"),
    ("5e-30", "current_price", "price_usd: 5E-30 USD is below 1E-18"),
    ('"<SCRIPT>ALERT(1)</SCRIPT>"', "symbol", "symbol: not a symbol: '<SCRIPT>ALERT(1)</SCRIPT>'"),
]


def hostile_page(good: int) -> bytes:
    coins = [coingecko_coin(i) for i in range(good + len(HOSTILE))]
    for index, (_, field, _) in enumerate(HOSTILE):
        coins[good + index][field] = f"@@{index}@@"
    text = json.dumps(coins)
    for index, (literal, _, _) in enumerate(HOSTILE):
        text = text.replace(f'"@@{index}@@"', literal)
    return text.encode()
