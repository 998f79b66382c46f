"""Real processes for end-to-end tests: the CLI, gunicorn, and waiting for them on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any

from entrypoints.cli import gunicorn_command

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# no test reaches the internet: provider URLs point at a closed loopback port unless a test says otherwise
OFFLINE = {"COINGECKO_BASE_URL": "http://127.0.0.1:9", "COINPAPRIKA_BASE_URL": "http://127.0.0.1:9"}


def environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process: this one's, minus Kaspero's settings, offline."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ETL_", "CSV_", "COINGECKO_", "COINPAPRIKA_", "RSS_", "API_"))
    }
    return {
        **kept,
        **OFFLINE,
        "LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        "ETL_SOURCES": "csv",
        **overrides,
    }


def kaspero(*args: str, env: Mapping[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 10) -> tuple[int, Message, Any]:
    """GET a JSON resource: status, headers (case-insensitive) and the parsed body."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as ex:
        return ex.code, ex.headers, json.loads(ex.read())


def wait_for(url: str, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@contextmanager
def gunicorn(env: Mapping[str, str], workers: int = 2) -> Iterator[str]:
    """gunicorn with the production config on a free loopback port, metrics in multiprocess mode."""
    port = free_port()
    metrics_dir = tempfile.mkdtemp(prefix="kaspero-metrics-")
    env = {
        **env,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    process = subprocess.Popen(
        gunicorn_command(),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/live", process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def children_of(parent: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes whose parent is `parent`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append((int(entry.name), command))
    return found
