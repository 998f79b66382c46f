"""Read replicas: how their URLs are read, named and judged."""

from __future__ import annotations

import pytest

from adapters.postgres.replicas import replica_name
from domain.health import ReplicaState, replica_reasons
from entrypoints.settings import Settings, SettingsError


def test_several_read_urls_split_only_where_a_new_url_starts() -> None:
    settings = Settings.from_environ(
        {"DATABASE_READ_URL": "postgresql://u:secret@a,b:5433/db?target_session_attrs=any, postgres://c/db"}
    )
    assert settings.database_read_urls() == [
        "postgresql://u:secret@a,b:5433/db?target_session_attrs=any",
        "postgres://c/db",
    ]
    with pytest.raises(SettingsError, match="DATABASE_READ_URL"):
        Settings.from_environ({"DATABASE_READ_URL": "mysql://x/db"})
    assert "secret" not in repr(settings)  # a secret, like DATABASE_URL


def test_a_replica_is_named_by_where_it_is_never_by_who_connects() -> None:
    assert replica_name("postgresql://reader:pw@db-2.internal:6432/kaspero") == "db-2.internal:6432/kaspero"
    assert replica_name("postgresql://postgres:@/kaspero?host=/run/standby") == "/run/standby:5432/kaspero"


def test_health_reasons_name_the_replica_and_the_setting() -> None:
    reasons = replica_reasons(
        [
            ReplicaState("a:5432/k", True, 0.0),
            ReplicaState("b:5432/k", True, 75.0),
            ReplicaState("c:5432/k", False, None, "connection refused"),
        ],
        60.0,
    )
    assert reasons == [
        "replica b:5432/k: 75 s behind the primary (more than REPLICA_MAX_LAG_SECONDS, 60)",
        "replica c:5432/k: connection refused",
    ]
