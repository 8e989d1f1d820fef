"""The admin API's documentation page works offline: every script, style sheet and icon it
loads is served by the control plane itself, from files shipped in the package."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from litestar import Litestar
from litestar.testing import AsyncTestClient

from muxgate.control.docs import ASSETS_DIR, SWAGGER_UI_VERSION


class References(HTMLParser):
    """Every URL the page makes the browser fetch: `src` and `href` attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


async def test_the_docs_page_loads_only_packaged_assets(app: Litestar) -> None:
    async with AsyncTestClient(app) as anonymous:
        for page_path in ("/admin/v1/schema", "/admin/v1/schema/swagger"):
            page = await anonymous.get(page_path)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            urls = references(page.text)
            assert len(urls) == 4, urls  # bundle, preset, style sheet, icon
            # Nothing from another host: no scheme, no protocol-relative URL.
            assert not [u for u in urls if re.match(r"^([a-z]+:)?//", u)], urls
            for url in urls:
                assert url.startswith(f"/admin/v1/schema/assets/swagger-ui-{SWAGGER_UI_VERSION}/")
                asset = await anonymous.get(url)
                assert asset.status_code == 200, url
                name = url.rsplit("/", 1)[1]
                assert asset.content == (ASSETS_DIR / name).read_bytes()
                expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
                suffix = name[name.rindex(".") :]
                assert expected[suffix] in asset.headers["content-type"], url
                cache = asset.headers["cache-control"]
                assert "public" in cache
                assert "max-age=31536000" in cache
                assert "immutable" in cache


def test_the_packaged_swagger_ui_is_the_version_the_page_names() -> None:
    bundle = (ASSETS_DIR / "swagger-ui-bundle.js").read_text()
    assert f'PACKAGE_VERSION:"{SWAGGER_UI_VERSION}"' in bundle
    readme = (ASSETS_DIR / "README.md").read_text()
    assert f"swagger-ui-dist@{SWAGGER_UI_VERSION}" in readme
