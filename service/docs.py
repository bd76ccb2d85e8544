"""The OpenAPI document (service/openapi.json, shipped in the package) and a self-contained docs page."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from aiohttp import web

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"


@functools.cache
def spec() -> dict:
    return json.loads(OPENAPI_PATH.read_text())


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


async def page(request: web.Request) -> web.Response:
    from service.docs_html import render

    return web.Response(text=render(spec()), content_type="text/html")
