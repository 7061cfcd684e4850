"""The patient-facing chat widget script and the demo clinic page that installs it."""

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
# Versioned: clinics paste this URL into their sites, so a breaking change gets /widget/v2/.
WIDGET_PATH = "/widget/v1/ketamine-assistant.js"


def create_router(static_dir: Path = STATIC_DIR) -> APIRouter:
    """Read the widget and demo page once; the routes only hand out bytes."""
    script = (static_dir / "ketamine-assistant.js").read_bytes()
    demo_page = (static_dir / "demo.html").read_text(encoding="utf-8")
    etag = '"' + hashlib.sha256(script).hexdigest()[:32] + '"'
    script_headers = {
        "Cache-Control": "public, max-age=3600",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # Clinic sites load this cross-origin; allow it even on pages that set COEP.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }

    router = APIRouter(include_in_schema=False)

    # HEAD too: link checkers and CDNs probe with it.
    @router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def demo() -> HTMLResponse:
        """A fictional clinic page with the widget installed."""
        return HTMLResponse(demo_page)

    @router.api_route(WIDGET_PATH, methods=["GET", "HEAD"])
    def widget_script(request: Request) -> Response:
        """The <ketamine-assistant> custom element."""
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=script_headers)
        return Response(script, media_type="application/javascript; charset=utf-8", headers=script_headers)

    return router


router = create_router()
