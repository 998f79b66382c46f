"""Kaspero's version, for `/health`, `/openapi.json`, `--version` and the User-Agent.

From `pyproject.toml` beside the code when there is one (a checkout, the Docker image's /app),
else from the installed package's metadata: the image runs its code from /app, not from an
installed package, so metadata alone would say `0+unknown` there.
"""

from __future__ import annotations

import functools
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


@functools.cache
def kaspero_version() -> str:
    try:
        with PYPROJECT.open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, tomllib.TOMLDecodeError, KeyError):
        pass
    try:
        return version("kaspero")
    except PackageNotFoundError:
        return "0+unknown"
