"""The Docker files, read line by line: no engine runs here, so their essentials are checked as text."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def stages() -> list[list[str]]:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    found: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            found.append([])
        if found and line and not line.startswith("#"):
            found[-1].append(line)
    return found


def test_the_image_is_multi_stage_slim_non_root_and_checks_its_health() -> None:
    build, runtime = stages()
    assert runtime[0].startswith("FROM python:3.11-slim")
    assert any(line.startswith("COPY --from=build /opt/venv") for line in runtime)
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") for line in runtime)
    assert "/live" in " ".join(runtime)
    runtime_text = "\n".join(runtime)
    assert not re.search(r"apt-get install|gcc|build-essential", runtime_text)  # no compilers in the runtime
    assert "--reload" not in (REPO / "Dockerfile").read_text()
    # the non-root user can write where gunicorn's workers keep their metrics (/app is root's)
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/" in runtime_text
    assert "embedded" not in "\n".join(build)  # the embedded server is for machines without PostgreSQL


def test_compose_has_db_migrate_api_scheduler_wired_by_health_and_no_secrets() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "migrate", "api", "scheduler"}
    db = services["db"]
    assert db["image"] == "postgres:16"
    assert "healthcheck" in db
    assert any(str(volume).endswith(":/var/lib/postgresql/data") for volume in db["volumes"])
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["db", "migrate"]
    for name in ("api", "scheduler"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["scheduler"]["command"] == ["scheduler"]
    text = (REPO / "docker-compose.yml").read_text()
    # every credential comes from the environment, and compose refuses to start without it
    for line in text.splitlines():
        if re.search(r"PASSWORD|_KEY|DATABASE_URL", line) and ":" in line:
            value = line.split(":", 1)[1]
            assert "${" in value, f"a literal secret in docker-compose.yml: {line.strip()}"
    assert "${POSTGRES_PASSWORD:?" in text
    example = (REPO / ".env.example").read_text()
    assert "POSTGRES_PASSWORD=" in example


def test_the_scheduler_has_a_healthcheck_of_its_own_and_the_migration_none() -> None:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    check = services["scheduler"]["healthcheck"]["test"]
    assert check == ["CMD", "python", "-m", "entrypoints.healthcheck", "scheduler"]
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in services["api"]  # the image's /live check fits the API


def test_the_scheduler_heartbeat_is_what_its_healthcheck_reads(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json
    import time

    from entrypoints.healthcheck import MAX_FAILED_CYCLES, Heartbeat, heartbeat_path, main
    from entrypoints.settings import Settings

    monkeypatch.setenv("KASPERO_DATA_DIR", str(tmp_path))
    path = heartbeat_path(Settings.from_environ())
    assert main(["scheduler"]) == 1  # no heartbeat yet: unhealthy
    beat = Heartbeat(path, stale_after=360)
    beat.cycle_failed()
    assert main(["scheduler"]) == 1  # no cycle has completed yet
    beat.cycle_succeeded()
    assert main(["scheduler"]) == 0
    for _ in range(MAX_FAILED_CYCLES - 1):
        beat.cycle_failed()
    assert main(["scheduler"]) == 0  # a failure or two in a row is an outage being ridden out
    beat.cycle_failed()
    assert main(["scheduler"]) == 1  # every cycle failing: the process lives, the scheduler does not work
    beat.cycle_succeeded()
    assert main(["scheduler"]) == 0
    written = json.loads(path.read_text())
    path.write_text(json.dumps({**written, "last_good": time.time() - 361}))
    assert main(["scheduler"]) == 1  # no cycle within the interval and its grace: stuck or gone


def test_a_scheduler_whose_cycles_all_fail_is_unhealthy_and_says_why(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    import structlog

    from entrypoints.bootstrap import build
    from entrypoints.healthcheck import MAX_FAILED_CYCLES, heartbeat_path, main, verdict
    from entrypoints.scheduler import Backoff, run_scheduler
    from entrypoints.settings import Settings

    monkeypatch.setenv("KASPERO_DATA_DIR", str(tmp_path))
    kaspero = build(Settings.from_environ(), in_memory=True)
    calls = []

    def broken_uow():  # type: ignore[no-untyped-def]
        calls.append(1)
        raise KeyError("a bug of ours, not the database")  # not StoreUnavailable

    kaspero.uow_factory = broken_uow
    stop = threading.Event()
    with structlog.testing.capture_logs() as logs:
        worker = threading.Thread(
            target=run_scheduler, args=(kaspero, stop), kwargs={"backoff": Backoff(0.01, 0.02)}
        )
        worker.start()
        try:
            while len(calls) < MAX_FAILED_CYCLES + 1 and worker.is_alive():
                stop.wait(0.01)
        finally:
            stop.set()
            worker.join(timeout=10)
    assert main(["scheduler"]) == 1
    assert "cycles failed" in (verdict(heartbeat_path(kaspero.settings), time.time()) or "")
    failed = [entry for entry in logs if entry["event"] == "scheduler_cycle_failed"]
    assert failed
    assert all(entry.get("exc_info") for entry in failed)  # a bug is logged with its traceback
    assert "KeyError" in failed[0]["error"]


def test_the_image_installs_pinned_versions_from_a_lock_made_from_pyproject() -> None:
    import tomllib

    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--constraint requirements.lock" in dockerfile
    assert "requirements.lock" in dockerfile.split("COPY pyproject.toml", 1)[1].splitlines()[0]
    pins = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in wanted:
        name = re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in requirements.lock (run `make lock`)"
    assert "lock:" in (REPO / "Makefile").read_text()


def test_credentials_with_special_characters_reach_libpq_unencoded_and_sources_match_the_readme() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = compose["x-kaspero"]["environment"]
    assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert env["PGUSER"].startswith("${POSTGRES_USER:?")
    assert "POSTGRES_PASSWORD" not in env["DATABASE_URL"]  # never inside a URL that must be encoded
    assert "@" not in env["DATABASE_URL"]
    assert env["ETL_SOURCES"] == "${ETL_SOURCES:-coinpaprika,coingecko,csv,rss}"
    readme = (REPO / "README.md").read_text()
    assert "`coinpaprika`, `coingecko`, `csv`, `rss`" in readme


def test_the_images_layout_reports_the_projects_version(tmp_path: Path) -> None:
    """The runtime stage's /app built without Docker, from the Dockerfile's own COPY lines, and
    asked for its version by a Python that has no Kaspero installed (as the image has none)."""
    import shutil
    import subprocess
    import tomllib

    runtime = (REPO / "Dockerfile").read_text().split("AS runtime", 1)[1]
    app = tmp_path / "app"
    app.mkdir()
    for line in runtime.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(part.startswith("--from") for part in parts):
            source, target = parts[-2], parts[-1]
            copy = shutil.copytree if (REPO / source).is_dir() else shutil.copyfile
            copy(REPO / source, app / target.removeprefix("./"))
    bare = tmp_path / "bare"  # a virtual environment without the project: metadata cannot answer
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    done = subprocess.run(
        [str(bare / "bin" / "python"), "-c", "from entrypoints.version import kaspero_version as v; print(v())"],
        cwd=tmp_path, env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert done.stdout.strip() == wanted
