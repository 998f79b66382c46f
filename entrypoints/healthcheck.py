"""`python -m entrypoints.healthcheck scheduler`: a container healthcheck for the scheduler, a
process without HTTP. Healthy while its heartbeat file (touched every 15 s by a thread of the
scheduler process) is younger than 90 s."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from entrypoints.settings import Settings

HEARTBEAT_SECONDS = 15.0
STALE_AFTER_SECONDS = 90.0


def heartbeat_path(settings: Settings) -> Path:
    return settings.data_dir / "scheduler.heartbeat"


def main(argv: list[str]) -> int:
    if argv != ["scheduler"]:
        print("usage: python -m entrypoints.healthcheck scheduler", file=sys.stderr)
        return 2
    path = heartbeat_path(Settings.from_environ())
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        print(f"unhealthy: no heartbeat at {path}", file=sys.stderr)
        return 1
    if age > STALE_AFTER_SECONDS:
        print(f"unhealthy: the last heartbeat is {age:.0f} s old", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
