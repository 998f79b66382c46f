"""schemathesis against the running gunicorn app: no 5xx, and every answer fits the document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from entrypoints.api.openapi import openapi_document
from tests.support.processes import REPO, environment, gunicorn, kaspero

SCHEMA = schemathesis.openapi.from_dict(openapi_document("fuzz"))


@pytest.fixture(scope="module")
def fuzzed_api(database_url: str) -> Iterator[str]:
    env = environment(DATABASE_URL=database_url, CSV_SOURCE_PATH=str(REPO / "data" / "market_history.csv"))
    kaspero("etl", "run", "--once", env=env)  # some data to page through; the outcome does not matter here
    with gunicorn(env) as base:
        yield base


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_get_a_5xx_or_an_answer_off_the_document(case, fuzzed_api: str) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        base_url=fuzzed_api,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
