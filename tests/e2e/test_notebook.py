"""`examples/quickstart.ipynb` run top to bottom in a real Jupyter kernel (nbclient) against the
test database: it loads the sample file, runs a pass, reads DataFrames and draws a chart."""

from __future__ import annotations

import base64
import csv
import os
import shutil
from pathlib import Path

import nbformat
import psycopg
import pytest
from nbclient import NotebookClient

from tests.conftest import TABLES
from tests.support.processes import REPO, environment

NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
SCREENSHOTS = REPO / "tests" / "browser" / "screenshots"
SAMPLE = REPO / "data" / "market_history.csv"


def _outputs(cell: nbformat.NotebookNode) -> str:
    text = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            text.append(output["text"])
        elif "data" in output:
            text.append(output["data"].get("text/plain", ""))
    return "".join(text)


def test_the_quickstart_notebook_runs_green_in_a_real_kernel(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    data = tmp_path / "market_history.csv"
    shutil.copyfile(SAMPLE, data)
    # the kernel is a child of this process: it gets this environment, kept offline and inside
    # the temporary directory (IPython's, matplotlib's and Jupyter's own files too)
    env = environment(DATABASE_URL=database_url, CSV_SOURCE_PATH=str(data))
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in {
        **env,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }.items():
        monkeypatch.setenv(name, value)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(
        output.get("output_type") != "error" for cell in code for output in cell.get("outputs", [])
    )  # execute() raises on an error too; this says so for a cell that only printed one
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    run = _outputs(code[1])
    assert "success" in run
    assert f"csv:market_history: {len(rows)} read" in run  # the sample's every row read
    shape = _outputs(code[2])
    btc_eth = [row for row in rows if row["symbol"] in ("BTC", "ETH")]
    assert f"({len(btc_eth)}, 11)" in shape  # a candle per row of the two assets: daily bars
    plotted = code[3]
    charts = [
        output["data"]["image/png"] for output in plotted.outputs if "image/png" in output.get("data", {})
    ]
    assert len(charts) == 1  # the chart drawn (kept for a person to look at, like the pages' screenshots)
    (SCREENSHOTS / "notebook-chart.png").write_bytes(base64.b64decode(charts[0]))
    days = len({row["date"] for row in btc_eth})
    assert f"plotted ['BTC', 'ETH'] {days} days" in _outputs(plotted)
    assert "raw_id" in _outputs(code[4])
