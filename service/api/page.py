"""GET /: the demo page, and /docs, /redoc: the API's documentation; all served by the app itself, no CDN.

Each page gets a Content-Security-Policy that lets it load only this server's files and call only this server, so
a script injected into it (say, through a crafted model name echoed back) could neither run inline nor send data
elsewhere. The documentation pages need inline styles (Swagger UI and ReDoc set them) and ReDoc its web worker.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).resolve().parents[1] / "static"
DOCS_ASSETS = "/docs-assets"  # fastapi-offline's copies of Swagger UI and ReDoc, mounted by the app
OPENAPI_URL = "/openapi.json"

_COMMON = "default-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
_COMMON += "frame-ancestors 'none'; form-action 'self'"
PAGE_POLICY = f"{_COMMON}; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:"
DOCS_POLICY = f"{_COMMON}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:"

_SWAGGER = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>MicroExp API – Swagger UI</title>
  <link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
  <link rel="icon" href="{DOCS_ASSETS}/favicon.png">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
  <script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
  <script src="/static/swagger-init.js"></script>
</body>
</html>
"""
_REDOC = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>MicroExp API – ReDoc</title>
  <link rel="icon" href="{DOCS_ASSETS}/favicon.png">
</head>
<body>
  <redoc spec-url="{OPENAPI_URL}"></redoc>
  <script src="{DOCS_ASSETS}/redoc.standalone.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Content-Security-Policy": PAGE_POLICY})


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_SWAGGER, headers={"Content-Security-Policy": DOCS_POLICY})


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC, headers={"Content-Security-Policy": DOCS_POLICY})
