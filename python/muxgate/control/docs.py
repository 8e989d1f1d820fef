"""The admin API's interactive documentation at `/admin/v1/schema`: Swagger UI, served from
files shipped in the package (`static/swagger-ui/`), so the page works without internet and
always runs the version it was tested with."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

# Also named in static/swagger-ui/README.md: update both with the files.
SWAGGER_UI_VERSION = "5.36.0"
ASSETS_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"


def assets_path(schema_path: str) -> str:
    # The version in the path lets browsers keep the files for good: a new version is a new URL.
    return f"{schema_path}/assets/swagger-ui-{SWAGGER_UI_VERSION}"


def docs_page(schema_path: str) -> OpenAPIRenderPlugin:
    """Swagger UI at the schema path itself (and `/swagger` under it), loading its packaged
    assets only."""
    assets = assets_path(schema_path)
    return SwaggerRenderPlugin(
        js_url=f"{assets}/swagger-ui-bundle.js",
        css_url=f"{assets}/swagger-ui.css",
        standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
        path=["/", "/swagger"],
    )


def docs_assets(schema_path: str) -> Router:
    """The page's scripts, style sheet and icon, cacheable for a year (their URL is versioned)."""
    return create_static_files_router(
        path=assets_path(schema_path),
        directories=[ASSETS_DIR],
        name="docs-assets",
        cache_control=CacheControlHeader(public=True, max_age=365 * 24 * 3600, immutable=True),
    )
