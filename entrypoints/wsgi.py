"""The WSGI entry point for gunicorn: `gunicorn 'entrypoints.wsgi:create()'`.

gunicorn calls the factory in each worker after the fork, so every worker opens its own pool.
"""

from __future__ import annotations

import atexit

import falcon

from entrypoints.api.app import create_app
from entrypoints.bootstrap import build
from entrypoints.logs import configure_logging
from entrypoints.settings import Settings


def create() -> falcon.App[falcon.Request, falcon.Response]:
    settings = Settings.from_environ()
    configure_logging(settings.log_level, settings.log_format)
    kaspero = build(settings)
    atexit.register(kaspero.close)
    return create_app(kaspero.reader, kaspero.probe, kaspero.uow_factory)
