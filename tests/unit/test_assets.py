"""Resolving a source's asset to a canonical one: curated, exact, similar, or new."""

from __future__ import annotations

from domain.assets import Asset, Candidate, CrossReference, Method, resolve

XREF = [
    CrossReference("BTC", "Bitcoin", {"coingecko": "bitcoin", "coinpaprika": "btc-bitcoin"}),
    CrossReference("ETH", "Ethereum", {"coingecko": "ethereum", "coinpaprika": "eth-ethereum"}),
]


def test_the_curated_list_names_the_asset_for_each_provider_and_for_files() -> None:
    bitcoin = Asset(1, "BTC", "Bitcoin")
    for candidate in (
        Candidate("coingecko", "bitcoin", "btc", "Bitcoin", 1),
        Candidate("coinpaprika", "btc-bitcoin", "BTC", "Bitcoin", 1),
        Candidate("csv:history", "BTC", "BTC", None),
        Candidate("binance", "BTCUSDT", "BTC", None),  # an exchange names it by its ticker alone
    ):
        found = resolve(candidate, [bitcoin], XREF)
        assert (found.asset_id, found.method, found.confidence) == (1, Method.CROSSREF, 1.0)
    first = resolve(Candidate("coingecko", "bitcoin", "btc", "Bitcoin"), [], XREF)
    assert (first.asset_id, first.symbol, first.name, first.method) == (
        None,
        "BTC",
        "Bitcoin",
        Method.CROSSREF,
    )


def test_a_ticker_alone_outside_the_curated_list_is_a_new_asset_to_review() -> None:
    other = resolve(Candidate("binance", "ONEUSDT", "ONE", None), [Asset(9, "ONE", "Harmony")], XREF)
    assert (other.asset_id, other.method, other.needs_review) == (None, Method.NEW, True)


def test_the_same_symbol_and_name_is_the_same_asset() -> None:
    cardano = Asset(7, "ADA", "Cardano")
    found = resolve(Candidate("coinpaprika", "ada-cardano", "ADA", "cardano"), [cardano], [])
    assert (found.asset_id, found.method) == (7, Method.EXACT)


def test_a_similar_name_with_the_same_symbol_is_matched_with_a_confidence() -> None:
    polkadot = Asset(3, "DOT", "Polkadot Network")
    found = resolve(Candidate("coingecko", "polkadot", "dot", "Polkadot Networks"), [polkadot], [])
    assert (found.asset_id, found.method) == (3, Method.FUZZY)
    assert 0.85 <= found.confidence < 1


def test_a_namesake_token_is_a_separate_asset_flagged_for_review() -> None:
    bitcoin = Asset(1, "BTC", "Bitcoin")
    found = resolve(
        Candidate("coingecko", "bitcoin-token", "btc", "Bitcoin Token", 2000), [bitcoin], XREF, {1: 1}
    )
    assert (found.asset_id, found.method, found.needs_review) == (None, Method.NEW, True)


def test_ranks_far_apart_count_against_a_similar_name() -> None:
    asset = Asset(5, "ABC", "Alpha Beta Coin")
    near = resolve(Candidate("coingecko", "abc", "abc", "Alpha Beta Coins", 10), [asset], [], {5: 12})
    far = resolve(Candidate("coingecko", "abc2", "abc", "Alpha Beta Coins", 900), [asset], [], {5: 12})
    assert near.asset_id == 5
    assert far.asset_id is None
    assert far.needs_review


def test_a_brand_new_symbol_is_a_new_asset_without_review() -> None:
    found = resolve(Candidate("coingecko", "zeta", "zeta", "Zeta"), [Asset(1, "BTC", "Bitcoin")], XREF)
    assert (found.asset_id, found.method, found.needs_review) == (None, Method.NEW, False)
