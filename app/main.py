"""The ASGI app: create_app(settings) and a lifespan that owns the model and index.

The server starts listening at once; the model and index load in a worker thread, and /readyz
answers 503 until they are in place (so an orchestrator never routes patients to a cold replica).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import api, lifecycle, portal, widget
from app.assistant import Assistant
from app.batching import AskPath
from app.config import Settings
from app.embedder import Embedder, load_embedder
from app.errors import InvalidKnowledge, KnowledgeError, NotReady, StaleIndex
from app.problems import PROBLEM_JSON, problem
from app.schemas import Readiness
from app.server import return_freed_memory

log = logging.getLogger("app")

__all__ = ["PROBLEM_JSON", "app", "create_app", "problem"]


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            location, message = "body", "the request body is not valid JSON"
        elif error.get("type") == "string_type":
            message = "must be a string"
        errors.append({"field": location, "message": message})
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(exc.status_code, str(exc.detail) if exc.detail else None)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, exc: NotReady) -> JSONResponse:
        return problem(503, "The assistant is starting up; try again in a few seconds.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Log the type only: an exception message may quote the question.
        log.error("unhandled error", extra={"error_type": type(exc).__name__})
        # This response bypasses the request-id middleware (it is sent from outside it): add the id
        # here so a clinic can quote it to support.
        request_id = correlation_id.get()
        return problem(
            500,
            "Something went wrong on our side; please try again.",
            headers={"X-Request-ID": request_id} if request_id else None,
            **({"request_id": request_id} if request_id else {}),
        )


def load_assistant(app: FastAPI, settings: Settings, embedder_factory: Callable[[], Embedder]) -> None:
    """Load model, knowledge and index; record the outcome on app.state (runs in a thread)."""
    try:
        embedder = embedder_factory()
        return_freed_memory()  # the knowledge check's and the model loader's leftovers, before the index
        assistant = Assistant.load(settings, embedder)
    except (InvalidKnowledge, KnowledgeError, StaleIndex) as e:
        app.state.status, app.state.detail = "failed", str(e)
        log.error("cannot start: %s", e)
        return
    except Exception as e:
        # Anything else (an ONNX export of another model, a missing or unreadable model folder): without
        # this the loading thread died unseen and /readyz said "loading" for ever, with nothing logged.
        # The detail names no path of this machine; the log says what and where.
        app.state.status = "failed"
        app.state.detail = f"the model or index could not be loaded ({type(e).__name__}); the service log says why"
        log.error("cannot start: %s", e, exc_info=True)
        return
    # Warm-up: the first encode pays for lazy initialisation; do it before we say "ready".
    assistant.embedder.query_embed(["warm up"])
    today = settings.current_date()
    due = assistant.knowledge.due_within(today, settings.review_warning_days)
    if due:
        log.warning(
            "%d passage(s) fall due for review within %d days: %s",
            len(due),
            settings.review_warning_days,
            ", ".join(p.id for p in due),
        )
    try:
        # The history log says which words were served on which day; a start counts too.
        lifecycle.record_service(settings.knowledge_dir, assistant.knowledge, today)
    except OSError as e:  # a read-only knowledge folder must not stop patients getting answers
        log.warning("could not record service history: %s", type(e).__name__)
    # The model, knowledge and index are ~100k objects that live as long as the process: a full
    # collection walked them all (24-31 ms, a stall of every request in flight, seen in the p99).
    # Frozen, they are skipped; a reload's new objects are collected as usual.
    gc.collect()
    gc.freeze()
    return_freed_memory()
    app.state.assistant = assistant
    if app.state.status != "stopping":  # a SIGTERM during the load keeps readiness at 503
        app.state.status = "ready"
    log.info("ready: %d passages served", len(assistant.passages))


def create_app(settings: Settings | None = None, embedder_factory: Callable[[], Embedder] | None = None) -> FastAPI:
    settings = settings or Settings()
    factory = embedder_factory or (
        lambda: load_embedder(settings.embedder, settings.model, settings.onnx_dir, settings.embed_threads)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.assistant, app.state.status, app.state.detail = None, "loading", None
        # Owned by this lifespan: a restarted lifespan (tests, some servers) gets a fresh batcher.
        app.state.ask_path = AskPath(settings)
        if settings.background_load:
            task = asyncio.create_task(asyncio.to_thread(load_assistant, app, settings, factory))
        else:
            load_assistant(app, settings, factory)
        stop_sighup = lifecycle.handle_sighup(app)  # SIGHUP reloads the knowledge without downtime
        yield
        stop_sighup()
        await app.state.ask_path.aclose()
        app.state.status = "stopping"
        if settings.background_load and not task.done():
            await task

    app = FastAPI(
        title="Pre-infusion expectations assistant",
        version="1.0.0",
        summary="Answers patients' questions before a ketamine infusion with clinician-vetted passages, verbatim.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.assistant = None
    app.state.status = "loading"
    app.state.detail = None
    app.state.embedder_factory = factory  # a reload after a failed start needs a model
    app.state.ask_path = AskPath(settings)  # repeat cache + micro-batched encodes for /v1/ask
    install_problem_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )
    app.include_router(api.router)
    app.include_router(widget.router)
    # Keys, rate limits, body limit, request ids, access log, metrics, feedback (docs/portal.md).
    portal.install(app, settings)
    lifecycle.install(app)  # POST /v1/admin/reload + the reload lock

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:  # async: nothing blocks, so no thread-pool hop
        """The process is alive."""
        return {"status": "alive"}

    @app.get("/readyz", tags=["operations"], response_model=Readiness, responses={503: {"model": Readiness}})
    def readyz(request: Request) -> JSONResponse:
        """200 once the model and index are loaded; 503 while loading, failed or stopping."""
        state = request.app.state
        current: Assistant | None = state.assistant
        body = Readiness(status=state.status, detail=state.detail)
        if current is not None:
            today = settings.current_date()
            body.passages_served = len(current.passages)
            body.passages_due_soon = len(current.knowledge.due_within(today, settings.review_warning_days))
            body.passages_overdue = len(current.knowledge.overdue(today))
        ready = state.status == "ready" and current is not None
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    return app


def _default_app() -> FastAPI:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app()


app = _default_app()
