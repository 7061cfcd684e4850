"""Prometheus counters for /metrics: counts only, and no label ever carries a patient's words.

One registry per app (not the process-global one) so tests and reloads start from zero.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_fastapi_instrumentator.routing import get_route_name
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from app.assistant import Reply

REPLY_KINDS = ("answer", "no_match", "crisis", "refer")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.replies = Counter(
            "ketamine_qa_replies", "Replies to patients' questions, by kind.", ["kind"], registry=self.registry
        )
        self.crisis = Counter(
            "ketamine_qa_crisis_replies", "Questions answered with crisis resources.", registry=self.registry
        )
        self.decline_ratio = Gauge(
            "ketamine_qa_decline_ratio",
            "Declines over in-scope replies since start: no_match / (answer + no_match).",
            registry=self.registry,
        )
        self.feedback = Counter(
            "ketamine_qa_feedback", "Feedback received, by helpfulness.", ["helpful"], registry=self.registry
        )
        self.rate_limited = Counter(
            "ketamine_qa_rate_limited", "Requests refused with 429, by client kind.", ["client"], registry=self.registry
        )
        self.editor_records = Counter(
            "ketamine_qa_editor_records",
            "Unanswered questions and feedback for editors, by outcome (stored, failed, dropped).",
            ["outcome"],
            registry=self.registry,
        )
        for kind in REPLY_KINDS:
            self.replies.labels(kind=kind)
        for helpful in ("true", "false"):
            self.feedback.labels(helpful=helpful)
        for outcome in ("stored", "failed", "dropped"):
            self.editor_records.labels(outcome=outcome)
        self._lock = threading.Lock()
        self._answered = 0
        self._declined = 0

    def count_reply(self, reply: Reply) -> None:
        kind = reply.kind if reply.kind in REPLY_KINDS else "other"
        self.replies.labels(kind=kind).inc()
        if kind == "crisis":
            self.crisis.inc()
        if kind in ("answer", "no_match"):
            with self._lock:
                if kind == "answer":
                    self._answered += 1
                else:
                    self._declined += 1
                self.decline_ratio.set(self._declined / (self._answered + self._declined))


class HttpMetrics:
    """Per-request HTTP metrics: the five families prometheus-fastapi-instrumentator's default
    instrumentation exports, with the same names, labels and buckets, as one pure ASGI middleware.

    The instrumentator wraps each request in a Request, re-matches every route to name the
    handler and builds a Response to read one header: ~55 µs a request, a fifth of the whole
    middleware stack. Here the handler is matched once per (path, method) and remembered.
    """

    LATENCY_HIGHR = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60)
    LATENCY_LOWR = (0.1, 0.5, 1)
    EXCLUDED = ("/metrics",)

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.total = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=registry,
        )
        self.in_size = Summary(
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ["handler"],
            registry=registry,
        )
        self.out_size = Summary(
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ["handler"],
            registry=registry,
        )
        self.latency_highr = Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
            buckets=self.LATENCY_HIGHR,
            registry=registry,
        )
        self.latency_lowr = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
            ["method", "handler"],
            buckets=self.LATENCY_LOWR,
            registry=registry,
        )
        self._handlers: dict[tuple[str, str, str], str] = {}

    def _handler(self, scope: Scope) -> str:
        """The route template ("none" when no route matches), as the instrumentator names it."""
        key = (scope.get("root_path", ""), scope["path"], scope["method"])
        handler = self._handlers.get(key)
        if handler is None:
            handler = get_route_name(HTTPConnection(scope), should_include_root_path=False) or "none"
            if handler != "none" and len(self._handlers) < 1024:  # bounded: only real routes are kept
                self._handlers[key] = handler
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = self._handler(scope)
        if any(excluded in handler for excluded in self.EXCLUDED):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        out_size = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status, out_size
            if message["type"] == "http.response.start":
                status = message["status"]
                out_size = _content_length(message.get("headers", ()))
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            duration = max(time.perf_counter() - started, 0.0)
            method = scope["method"]
            self.total.labels(method, f"{str(status)[0]}xx", handler).inc()
            self.in_size.labels(handler).observe(_content_length(scope.get("headers", ())))
            self.out_size.labels(handler).observe(out_size)
            self.latency_highr.observe(duration)
            self.latency_lowr.labels(method, handler).observe(duration)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
