"""`/docs`: the OpenAPI document as an interactive page (Swagger UI 5, which reads OpenAPI 3.1),
served by Kaspero itself from the files of the `swagger-ui-bundle-v2` package: no CDN, works
offline."""

from __future__ import annotations

from pathlib import Path

import falcon
from swagger_ui_bundle import swagger_ui_path

STATIC = "/docs/static"
PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Kaspero API</title>
  <link rel="stylesheet" href="{STATIC}/swagger-ui.css">
  <link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{STATIC}/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
INIT = """window.addEventListener("load", function () {
  // validatorUrl null: the page asks nothing of any other host
  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null});
});
"""


class DocsResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = PAGE

    def on_get_init(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/javascript"
        resp.text = INIT


def install_docs(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    docs = DocsResource()
    app.add_route("/docs", docs)
    app.add_route("/docs/init.js", docs, suffix="init")
    app.add_static_route(STATIC, str(Path(str(swagger_ui_path)).resolve()))
