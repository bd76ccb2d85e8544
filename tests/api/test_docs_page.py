"""The docs page at /api/v1/docs: Swagger UI from the assets swagger-ui-py bundles, rendering the document
exactly as /api/v1/openapi.json serves it.

The page and every asset it references come from the app itself (no CDN, nothing from outside), and a
headless chromium (Debian's package, installed by this test when missing) renders the page: every operation
of the document must appear, and a deep link opens an operation with its try-it-out button; the Authorize
button (the document declares bearerAuth) lets a user enter an API key for try-it-out.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import subprocess
import tempfile
from urllib.parse import urljoin

import pytest

from service.app import API, create_app
from service.docs import ASSETS, assets_dir, spec

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",  # lets the page's scripts load the document and render it
    "--dump-dom",
]
RENDER_SECONDS = 180  # an upper bound to stop waiting, not a speed requirement
APT_LOCK = ["-o", "DPkg::Lock::Timeout=600"]


def operations() -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, item in spec()["paths"].items() for method, op in item.items()]


@pytest.fixture
async def client(aiohttp_client, app_url):
    return await aiohttp_client(create_app(app_url, pool_min_size=1, pool_max_size=2))


async def test_the_page_and_its_assets_come_from_the_app(client):
    r = await client.get(f"{API}/docs")
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    urls = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert urls
    for url in urls:
        assert not re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", url, re.I), url  # relative: served here, no CDN
        asset = await client.get(urljoin(f"{API}/docs", url))
        assert asset.status == 200, url
        assert await asset.read() == (assets_dir() / url.rsplit("/", 1)[-1]).read_bytes(), url
    assert {url.rsplit("/", 1)[-1] for url in urls} == set(ASSETS)
    assert re.search(r'url: "openapi.json"', page)  # the document as the API serves it
    for name in ("swagger-editor-bundle.js", "LICENSE", "..%2F..%2Fopenapi.json", "nothing.js"):
        r = await client.get(f"{API}/docs/{name}")
        assert r.status == 404 and (await r.json())["error"]["code"] == "NOT_FOUND", name


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed if missing (the test never skips for the lack of it)."""
    found = shutil.which("chromium")
    if found is None:
        apt = shutil.which("apt-get")
        assert apt is not None, "chromium is missing and there is no apt-get to install it"
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = [apt, *APT_LOCK, "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        if subprocess.run(install, env=env).returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run([apt, *APT_LOCK, "update", "-qq"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
        found = shutil.which("chromium")
        assert found is not None, "apt-get installed chromium, but it is not on PATH"
    return found


async def render(chromium: str, url: str) -> str:
    """The DOM of url once chromium has run its scripts, unescaped, without Swagger UI's line-break hints."""
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RENDER_SECONDS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert proc.returncode == 0, err.decode(errors="replace")
    dom = out.decode()
    return html.unescape(re.sub(r"<wbr\s*/?>", "", dom)).replace("\u200b", "")


async def test_a_browser_renders_every_operation(chromium, aiohttp_server, app_url):
    server = await aiohttp_server(create_app(app_url, pool_min_size=1, pool_max_size=2))
    dom = await render(chromium, str(server.make_url(f"{API}/docs")))
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert "Failed to load" not in dom and "errors-wrapper" not in dom, dom
    assert spec()["info"]["title"] in dom
    for method, path, op in operations():
        assert f'data-path="{path}"' in dom, (method, path)
        assert f'opblock-summary-description">{op["summary"]}<' in dom, (method, path)
    shown = re.findall(r'class="opblock-summary-method">(\w+)<', dom)
    assert sorted(m.lower() for m in shown) == sorted(method for method, _, _ in operations())
    # the key is entered once, with the Authorize button; each secured operation shows its lock
    assert re.search(r'class="btn authorize[^"]*"', dom), dom[:3000]
    secured = [op for _, _, op in operations() if op.get("security")]
    assert len(re.findall(r'class="authorization__btn[^"]*"', dom)) == len(secured)


async def test_a_deep_link_opens_an_operation_to_try_it_out(chromium, aiohttp_server, app_url):
    server = await aiohttp_server(create_app(app_url, pool_min_size=1, pool_max_size=2))
    dom = await render(chromium, str(server.make_url(f"{API}/docs")) + "#/wallets/topup")
    assert 'try-out__btn">Try it out' in dom, dom[:2000]
    assert "Idempotency-Key" in dom and "topup_stripe_12345" in dom  # its header parameter and body example
    assert '<select id="servers"><option value="/api/v1">' in dom  # where try-it-out sends the request
