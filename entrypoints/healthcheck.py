"""`python -m entrypoints.healthcheck scheduler`: a container healthcheck for the scheduler, a
process without HTTP.

The scheduler's cycles write its heartbeat (`Heartbeat`): a cycle that completes sets the time
of the last good cycle and clears the count of failures; a cycle that fails counts one more; a
long run beats between its batches. The check fails after `MAX_FAILED_CYCLES` failed cycles in
a row, or when no cycle completed within the schedule's interval plus a grace (the scheduler is
stuck or gone): a scheduler whose every cycle fails is not healthy because its process lives.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import attrs

from entrypoints.settings import Settings

MAX_FAILED_CYCLES = 3
GRACE_SECONDS = 60.0
BEAT_EVERY_SECONDS = 15.0  # a long run beats between its batches at most this often


def heartbeat_path(settings: Settings) -> Path:
    return settings.data_dir / "scheduler.heartbeat"


@attrs.define
class Heartbeat:
    """What the scheduler's cycles write, read back by the healthcheck."""

    path: Path
    stale_after: float  # seconds without a good cycle before the check fails
    failures: int = 0
    last_good: float | None = None
    _last_written: float = 0.0

    def cycle_succeeded(self) -> None:
        self.failures, self.last_good = 0, time.time()
        self._write()

    def cycle_failed(self) -> None:
        self.failures += 1
        self._write()

    def working(self) -> None:
        """A cycle still going (a long run between batches): as good as a completed cycle."""
        if time.monotonic() - self._last_written >= BEAT_EVERY_SECONDS:
            self.last_good = time.time()
            self._write()

    def _write(self) -> None:
        self._last_written = time.monotonic()
        body = {"last_good": self.last_good, "failures": self.failures, "stale_after": self.stale_after}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            spare = self.path.with_name(self.path.name + ".tmp")
            spare.write_text(json.dumps(body))
            os.replace(spare, self.path)  # a reader sees the old beat or the new one, never half
        except OSError:
            pass  # an unwritable data dir fails the check, which says where it looked


def verdict(path: Path, now: float) -> str | None:
    """None when healthy, else why not."""
    try:
        beat = json.loads(path.read_text())
        last_good, failures, stale_after = (
            beat["last_good"],
            int(beat["failures"]),
            float(beat["stale_after"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return f"no heartbeat at {path}"
    if failures >= MAX_FAILED_CYCLES:
        return f"the last {failures} cycles failed (see the scheduler's log: scheduler_cycle_failed)"
    if last_good is None:
        return "no cycle has completed yet"
    if now - last_good > stale_after:
        return f"no cycle completed for {now - last_good:.0f} s (allowed: {stale_after:.0f} s)"
    return None


def main(argv: list[str]) -> int:
    if argv != ["scheduler"]:
        print("usage: python -m entrypoints.healthcheck scheduler", file=sys.stderr)
        return 2
    problem = verdict(heartbeat_path(Settings.from_environ()), time.time())
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
