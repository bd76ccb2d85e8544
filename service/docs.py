"""The OpenAPI document (service/openapi.json, shipped in the package) and its docs page.

The page is Swagger UI, from the assets the `swagger-ui-py` package bundles (served here, never from a CDN),
rendering the document exactly as GET /api/v1/openapi.json serves it, with try-it-out against this service.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from aiohttp import web

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"

# The page's assets: GET /api/v1/docs/<name> serves these files of swagger-ui-py's bundle and nothing else.
ASSETS = ("swagger-ui.css", "index.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png")

# Relative URLs: from /api/v1/docs, "docs/x" is /api/v1/docs/x and "openapi.json" is /api/v1/openapi.json, so the
# page also works behind a proxy that mounts the API under another prefix. BaseLayout: no top bar that loads
# other documents; validatorUrl null: no call to the public validator.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wallet-service API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
<link rel="stylesheet" href="docs/index.css">
<link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    displayRequestDuration: true,
    showExtensions: true,
    validatorUrl: null,
  });
};
</script>
</body>
</html>
"""


@functools.cache
def spec() -> dict:
    return json.loads(OPENAPI_PATH.read_text())


@functools.cache
def assets_dir() -> Path:
    """swagger-ui-py's bundled Swagger UI (found without importing the package: it pulls in jinja2 and yaml)."""
    found = importlib.util.find_spec("swagger_ui")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: it is a dependency of wallet-service")
    return Path(next(iter(found.submodule_search_locations))) / "static"


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(assets_dir() / name)
