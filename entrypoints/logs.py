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


def configure_logging(level: str = "INFO", log_format: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
