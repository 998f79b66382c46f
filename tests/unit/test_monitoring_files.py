"""The alert rules and the Grafana board operators start from: promtool checks and tests the
rules, and every metric they (and the board) name is one `/metrics` really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import falcon.testing
import pytest
import yaml

from adapters.memory.reader import InMemoryHealthProbe, InMemoryRecordReader, InMemorySourceRunLedger
from adapters.memory.sources import InMemoryMarketNormalizer, InMemorySourceReader
from adapters.memory.state import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from application.ingest import run_etl
from application.pipeline import SourcePipeline
from domain.runs import RunTrigger
from entrypoints.api.app import ApiOptions, create_app
from entrypoints.bootstrap import KINDS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.exit(
            "the monitoring tests need promtool: `apt-get install prometheus` (Debian; `make test` installs it "
            "itself where apt-get can)",
            returncode=1,
        )
    return found


def test_the_alert_rules_are_valid_and_their_cases_pass() -> None:
    checked = subprocess.run([promtool(), "check", "rules", "alerts.yml"], cwd=DEPLOY / "prometheus",
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = subprocess.run([promtool(), "test", "rules", "alerts.test.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


def exported_names() -> set[str]:
    """Every series name a real scrape of `/metrics` carries (with the suffixes its types get)."""
    store = InMemoryStore()
    page = [{"id": "c1", "symbol": "btc", "price": "1", "at": "2024-05-01T00:00:00Z"}]
    uow = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    run_etl([SourcePipeline(InMemorySourceReader("csv:prices", [page]), InMemoryMarketNormalizer())], uow,
            lambda: NOW, RunTrigger.SCHEDULE)  # fmt: skip
    options = ApiOptions(source_kinds=tuple(KINDS), enabled_kinds=("csv",), schedules={"csv": 5})
    app = create_app(InMemoryRecordReader(store), InMemoryHealthProbe(), uow, options, lambda: NOW,
                     ledger=InMemorySourceRunLedger(store))  # fmt: skip
    client = falcon.testing.TestClient(app)
    client.simulate_get("/data")
    text = client.simulate_get("/metrics").text
    names = set(re.findall(r"^(kaspero_\w+)[{ ]", text, flags=re.M))  # the samples themselves
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M):  # families with none yet
        base = name.removesuffix("_total")
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names |= {base + suffix for suffix in suffixes.get(kind, ("",))}
    return names


def named_metrics(expression: str) -> set[str]:
    return set(re.findall(r"\bkaspero_[a-z0-9_]+", expression))


def test_every_metric_the_alerts_and_the_board_name_is_exported() -> None:
    exported = exported_names()
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    board = json.loads((DEPLOY / "grafana" / "kaspero.json").read_text())
    expressions += [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    used = set().union(*(named_metrics(expression) for expression in expressions))
    assert used  # the files name metrics at all
    assert used <= exported, sorted(used - exported)
    assert {"kaspero_health_kind_stale", "kaspero_http_request_duration_seconds_bucket"} <= used
