from domain.mentions import KnownAsset, MentionFinder

ASSETS = [
    KnownAsset("BTC", "Bitcoin"),
    KnownAsset("ETH", "Ethereum"),
    KnownAsset("SOL", "Solana"),
    KnownAsset("ONE", "Harmony"),
]


def test_symbols_in_capitals_and_names_on_word_boundaries() -> None:
    finder = MentionFinder.of(ASSETS)
    assert finder.find(["Bitcoin (BTC) holds above $70,000"]) == ("BTC",)
    assert finder.find(["$ETH and SOL rally", "Markets"]) == ("ETH", "SOL")
    assert finder.find(["ethereum's upgrade date"]) == ("ETH",)


def test_a_symbol_inside_a_word_or_in_lower_case_is_not_a_mention() -> None:
    finder = MentionFinder.of(ASSETS)
    assert finder.find(["ETHICS board meets", "Solanas", "one more thing", "BTCX launches"]) == ()


def test_nothing_known_finds_nothing() -> None:
    assert MentionFinder.of([]).find(["Bitcoin BTC"]) == ()
