"""gunicorn's own lines (booting, workers, errors) and its access lines, written like Kaspero's:
JSON lines, or the console format on a terminal (`LOG_FORMAT`), with the same fields."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from gunicorn import glogging

from entrypoints.logs import log_format_for, redact_secrets, renderer_for
from entrypoints.settings import Settings


class KasperoGunicornLogger(glogging.Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer_for(log_format_for(Settings.from_environ().log_format)),
            ],
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                redact_secrets,
            ],
        )
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        status = str(atoms.get("s", "-"))
        self.access_log.log(
            logging.INFO,
            "http_access",
            extra={
                "remote": atoms.get("h"),
                "method": atoms.get("m"),
                "path": atoms.get("U"),
                "status": int(status) if status.isdigit() else status,
                "bytes": atoms.get("B"),
                "duration_us": atoms.get("D"),
                "request_id": atoms.get("{x-request-id}o"),
            },
        )
