"""Patient-portal integration in one place: request ids, access log, metrics, keys, rate limits,
body limit, feedback, the editors' store, and the problem responses declared in the OpenAPI.

`install(app, settings)` is called once from create_app. Middleware order, outermost first:
request id -> access log -> metrics -> (CORS, added by create_app) -> key check and rate limit
-> body limit -> routes. CORS sits outside the gate so a browser can read a 401, 413 or 429.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.middleware import Middleware

from app import feedback
from app.config import Settings
from app.editors import EditorStore
from app.feedback import ReplyMemory
from app.logs import AccessLog, sane_request_id
from app.metrics import HttpMetrics, Metrics
from app.ratelimit import API_PREFIX, BodyLimit, PortalGate


@dataclass
class Portal:
    settings: Settings
    metrics: Metrics
    replies: ReplyMemory
    editors: EditorStore


def install(app: FastAPI, settings: Settings) -> Portal:
    metrics = Metrics()
    portal = Portal(settings, metrics, ReplyMemory(settings.reply_memory), EditorStore.from_settings(settings, metrics))
    app.state.portal = portal
    app.state.metrics = metrics

    if settings.metrics_enabled:
        # The instrumentator serves /metrics; the per-request recording is our leaner HttpMetrics.
        Instrumentator(registry=metrics.registry).expose(app, include_in_schema=False)
        app.user_middleware.insert(0, Middleware(HttpMetrics, registry=metrics.registry))
    app.user_middleware.insert(0, Middleware(AccessLog))
    app.user_middleware.insert(
        0, Middleware(CorrelationIdMiddleware, header_name="X-Request-ID", validator=sane_request_id)
    )
    app.user_middleware.append(Middleware(PortalGate, settings=settings))
    app.user_middleware.append(Middleware(BodyLimit, max_bytes=settings.max_body_bytes))
    app.include_router(feedback.router)
    _run_editor_store(app, portal)
    _declare_problems(app)
    return portal


def _run_editor_store(app: FastAPI, portal: Portal) -> None:
    """Wrap the app's lifespan: start the editors' writer thread before, flush it after."""
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        portal.editors.start()
        try:
            async with original(app) as state:
                yield state
        finally:
            await asyncio.to_thread(portal.editors.close)

    app.router.lifespan_context = lifespan


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "request_id": {"type": "string"},
    },
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
STANDARD_PROBLEMS = {
    "401": "The API key presented is missing, malformed or unknown.",
    "413": "The request body is larger than the limit (16 KiB by default).",
    "429": "Too many requests from this client; see Retry-After.",
    "500": "Unexpected error; the body never contains details.",
}


def _declare_problems(app: FastAPI) -> None:
    """Every operation documents the problems any request can get (401, 413, 429, 500), each as
    application/problem+json, so clients and schema checkers see the real contract."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "A portal or admin API key."},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _declare_operation(path, method, operation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    wanted = {"500": STANDARD_PROBLEMS["500"]}
    if path.startswith(API_PREFIX):
        wanted |= {"401": STANDARD_PROBLEMS["401"], "429": STANDARD_PROBLEMS["429"]}
        keyed = path.startswith(API_PREFIX + "admin/")
        if keyed:
            wanted["403"] = "The API key is a portal key; this route needs an admin key."
        operation["security"] = [{"bearer": []}, {"apiKey": []}] if keyed else [{}, {"bearer": []}, {"apiKey": []}]
    if method in ("post", "put", "patch"):
        wanted["413"] = STANDARD_PROBLEMS["413"]
        if "requestBody" in operation:
            wanted["400"] = "The body could not be decoded (it is not UTF-8 text)."
    for status, description in wanted.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if not status.startswith(("4", "5")):
            continue
        content: dict[str, Any] = response.get("content", {})
        first: dict[str, Any] = next(iter(content.values()), {})
        ref = str(first.get("schema", {}).get("$ref", ""))
        if not content or ref.endswith(("/Problem", "/HTTPValidationError")):
            response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
            if status == "422" and response.get("description") == "Validation Error":
                response["description"] = "The request body or parameters are not valid."
        if status in ("429", "503") and "content" in response and ref != "#/components/schemas/Readiness":
            response.setdefault("headers", {}).update(RETRY_AFTER)
