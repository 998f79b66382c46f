"""A PostgreSQL server of the resilience tests' own, which they stop and start at will."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest

from adapters.postgres.admin import create_database
from adapters.postgres.embedded import EmbeddedPostgres
from entrypoints.bootstrap import migrate
from tests.support.processes import REPO


@pytest.fixture
def own_server() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """An embedded server under the repository (its system user must reach the directory),
    with a migrated database; stopped and removed afterwards."""
    embedded = EmbeddedPostgres(REPO / ".kaspero" / f"resilience-{uuid.uuid4().hex[:8]}")
    server = embedded.start()
    url = create_database(server, "kaspero")
    migrate(url)
    try:
        yield embedded, url
    finally:
        embedded.stop()
        shutil.rmtree(embedded.data_dir, ignore_errors=True)
