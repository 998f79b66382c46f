"""Text search over many articles: the trigram indexes (which hold articles only) serve it."""

from __future__ import annotations

import pytest

from application.queries import DataQuery, SortField
from tests.integration.test_query_plans import _fill, records_plan


@pytest.fixture(scope="module")
def news_heavy(database_url: str) -> str:
    """100,000 records, half of them articles: where text search has many articles to search."""
    return _fill(database_url, 100_000, 2)


@pytest.mark.parametrize(
    "index", ["unified_data_article_title_trgm_idx", "unified_data_article_description_trgm_idx"]
)
def test_search_over_many_articles_uses_the_trigram_indexes(news_heavy: str, index: str) -> None:
    # sorted by a column without an index, the filter alone decides the plan
    shown = records_plan(news_heavy, DataQuery(search="bit", sort_by=SortField.PRICE_USD), [1, 2])
    assert index in shown, shown
