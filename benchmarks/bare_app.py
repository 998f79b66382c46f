"""The framework ceiling: a bare Falcon handler answering constant JSON, under the same gunicorn."""

from __future__ import annotations

import falcon


class Constant:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"data": [], "pagination": {"page": 1}, "meta": {"request_id": "x"}}


def create() -> falcon.App[falcon.Request, falcon.Response]:
    app = falcon.App()
    app.add_route("/constant", Constant())
    return app
