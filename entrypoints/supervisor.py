"""`kaspero run` (what `make run` runs): the database, one ETL pass, then the scheduler and the
API as child processes, kept running until Ctrl-C.

Before any work it checks what would make it fail later: another `kaspero run` of this project
(refused at once, saying where it is), a database URL that does not work (named, password
hidden), an API port already taken. Ctrl-C during the first pass stops it after the batch in
flight (the run is recorded as interrupted). A child that dies is started again; only Ctrl-C
stops everything, and the embedded server is stopped only if this command started it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from entrypoints import bootstrap
from entrypoints.logs import redact
from entrypoints.settings import Settings, SettingsError

FirstPass = Callable[[Settings, str, Callable[[], bool]], int]


def gunicorn_command() -> list[str]:
    """gunicorn with the production config, as `kaspero serve` starts it (the tests start it so too)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:entrypoints.gunicorn_config",
        "entrypoints.wsgi:create()",
    ]


def child_environment(settings: Settings, database_url: str) -> dict[str, str]:
    """The API's environment: the resolved database, and a clean multiprocess metrics directory."""
    metrics_dir = (settings.prometheus_multiproc_dir or settings.data_dir / "prometheus").resolve()
    if metrics_dir.exists():
        shutil.rmtree(metrics_dir)  # files of a previous server would be summed into this one's
    metrics_dir.mkdir(parents=True)
    return {**os.environ, "DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}


def run_everything(settings: Settings, stop: threading.Event, first_pass: FirstPass) -> int:
    """Everything up, serve until `stop`, then stop what this command started."""
    with _project_lock(settings) as lock:
        _check_port(settings)
        embedded = bootstrap.embedded_server(settings) if settings.database_url is None else None
        started_database = embedded is not None and not embedded.is_running()
        children: list[subprocess.Popen[bytes]] = []
        try:
            if settings.database_url is not None:
                bootstrap.check_database(settings.database_url.get_secret_value())
            url = bootstrap.resolve_database_url(settings, start=True)
            print(f"kaspero: database ready ({redact(url)})", flush=True)
            applied = bootstrap.migrate(url)
            print(f"kaspero: migrations applied: {applied or 'none pending'}", flush=True)
            status = first_pass(settings, url, stop.is_set)
            if stop.is_set():
                print("kaspero: stopped during the first pass (recorded as interrupted)", flush=True)
                return status
            env = child_environment(settings, url)
            commands = {
                "scheduler": [sys.executable, "-m", "entrypoints.cli", "scheduler", "--wait-first"],
                "api": gunicorn_command(),
            }
            supervised = {name: Supervised(name, command, env) for name, command in commands.items()}
            children.extend(child.start() for child in supervised.values())
            _record(lock, settings, started_database)
            print(
                f"kaspero: dashboard on http://{settings.api_host}:{settings.api_port}/ , API docs at /docs "
                f"(try /data and /health); scheduler every {settings.etl_schedule_minutes:g} min. Ctrl-C stops.",
                flush=True,
            )
            while not stop.wait(1.0):
                for child in supervised.values():
                    restarted = child.restart_if_exited()
                    if restarted is not None:
                        children.append(restarted)
            return 0
        finally:
            stop_children(children)
            if started_database and embedded is not None:
                embedded.stop()
                print("kaspero: embedded PostgreSQL stopped", flush=True)


class _ProjectLock:
    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def __enter__(self) -> IO[str]:
        return self.handle

    def __exit__(self, *exc: object) -> None:
        try:
            self.handle.truncate(0)
        finally:
            self.handle.close()  # closing releases the lock (so does the process dying)


def _project_lock(settings: Settings) -> _ProjectLock:
    """One `kaspero run` per project: an exclusive lock on a file in the data directory, held
    for the command's life. A second one is refused at once, saying where the first one is."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "run.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = _read_json(handle.read())
        handle.close()
        where = f" (pid {other.get('pid')}, API on {other.get('api')})" if other else " (starting up)"
        raise SettingsError(
            f"`kaspero run` is already running for this project{where}; stop it with Ctrl-C in its "
            "terminal, or point this one at another KASPERO_DATA_DIR and API_PORT"
        ) from None
    handle.seek(0)
    handle.truncate(0)
    handle.write(json.dumps({"pid": os.getpid()}))
    handle.flush()
    return _ProjectLock(handle)


def _record(handle: IO[str], settings: Settings, started_database: bool) -> None:
    """Who holds the project: this process, where its API listens, whether it started the database."""
    handle.seek(0)
    handle.truncate(0)
    handle.write(
        json.dumps(
            {
                "pid": os.getpid(),
                "api": f"http://{settings.api_host}:{settings.api_port}",
                "started_embedded_database": started_database,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )
    )
    handle.flush()


def _read_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _check_port(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.api_host, settings.api_port))
        except OSError as ex:
            raise SettingsError(
                f"API_PORT: {settings.api_host}:{settings.api_port} is already in use ({ex.strerror}); "
                "stop what listens there or set API_PORT to a free port"
            ) from None


class Supervised:
    """A child process of `kaspero run`, started again when it dies (after a growing pause, so
    a child that cannot start does not spin), until Ctrl-C stops everything."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name, self._command, self._env = name, command, env
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._failures = 0
        self._due: float | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self._process = subprocess.Popen(self._command, env=self._env)
        self._started = time.monotonic()
        return self._process

    def restart_if_exited(self) -> subprocess.Popen[bytes] | None:
        process = self._process
        if process is None or process.poll() is None:
            return None
        now = time.monotonic()
        if self._due is None:
            lived = now - self._started
            self._failures = 0 if lived > 60 else self._failures + 1
            pause = min(30.0, 2.0 ** max(0, self._failures - 1))
            self._due = now + pause
            print(
                f"kaspero: the {self.name} process exited with {process.returncode}; "
                f"starting it again in {pause:g} s",
                file=sys.stderr,
                flush=True,
            )
        if now < self._due:
            return None
        self._due = None
        return self.start()


def stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
