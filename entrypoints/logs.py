"""Structured logging, configured once by each process's entrypoint: JSON lines by default."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
_SECRET_KEYS = ("password", "api_key", "apikey", "secret", "token", "authorization", "database_url")


def redact(text: str) -> str:
    """Hide the password of any URL in a text: `postgresql://u:***@host/db`."""
    return _URL_PASSWORD.sub(r"\g<scheme>***@", text)


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact(value)
    return event


def log_format_for(configured: str | None) -> str:
    """`LOG_FORMAT` when set; else `console` on a terminal and `json` when not."""
    if configured:
        return configured
    return "console" if sys.stderr.isatty() else "json"


def renderer_for(log_format: str) -> Any:
    if log_format == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    redact_secrets,
]


class _CurrentStderr:
    """Whatever `sys.stderr` is when a line is written: a live progress display swaps it for a
    proxy that keeps log lines above the bars."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", log_format: str | None = "json") -> None:
    structlog.configure(
        processors=[*SHARED_PROCESSORS, renderer_for(log_format_for(log_format))],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
