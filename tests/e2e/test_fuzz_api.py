"""schemathesis against the running gunicorn app: no 5xx, and every answer fits the document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from entrypoints.api.openapi import openapi_document
from entrypoints.bootstrap import KINDS
from tests.support.processes import REPO, environment, gunicorn, kaspero

# Rules across parameters that a JSON schema cannot state (each operation's description states
# them): `page` with `cursor`, a cursor this API never gave out, `start_date` after `end_date`,
# one run of a pair, a history that names no asset (or more than 50), a backfill whose `since`
# is not before its `until` or that names a source without history. Schema-valid data may meet
# them, and 400 is the right answer there only.
CROSS_PARAMETER_RULES = (
    "/data", "/quarantine", "/compare-runs", "/assets/{asset_id}/history", "/history", "/assets/{asset_id}/coverage",
    "/backfills",
)  # fmt: skip
# gunicorn refuses an oversized request line (414), header (431) or body (413) before the
# application sees it: those are rejections too, documented in every operation
REJECTIONS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "414",
    "415",
    "422",
    "428",
    "429",
    "431",
    "5xx",
]
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {"expected-statuses": REJECTIONS},
            # a schema-valid query may still be longer than gunicorn's request line (414, documented)
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "414", "429", "5xx"]
            },
        },
        "operations": [
            {
                "include-path": path,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404", "414", "503"]}
                },
            }
            for path in CROSS_PARAMETER_RULES
        ],
    }
)
SCHEMA = schemathesis.openapi.from_dict(openapi_document("fuzz", tuple(KINDS)), config=CONFIG)
load_all_checks()
EVERY_CHECK = CHECKS.get_all()  # conformance, negative and positive data, auth, methods, headers
KEY = "fuzz-key"


@pytest.fixture(scope="module")
def fuzzed_api(database_url: str) -> Iterator[str]:
    env = environment(
        DATABASE_URL=database_url, CSV_SOURCE_PATH=str(REPO / "data" / "market_history.csv"), API_KEYS=KEY
    )
    kaspero("etl", "run", "--once", env=env)  # some data to page through; the outcome does not matter here
    with gunicorn(env) as base:
        yield base


@SCHEMA.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_get_a_5xx_or_an_answer_off_the_document(case, fuzzed_api: str) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(base_url=fuzzed_api, checks=EVERY_CHECK, headers={"X-API-Key": KEY})
