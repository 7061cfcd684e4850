"""Structured JSON logs, one object per line, with the request id on every line.

Privacy rule: a log line never carries a question, a comment, a client address, a query string or
an API key. Messages are fixed strings; fields are counts, ids, route templates and status codes.
Exception messages can quote a question, so tracebacks are logged as type and frames only.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from asgi_correlation_id import correlation_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("app.access")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI copy of the message
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def sane_request_id(value: str) -> bool:
    """Accept a caller's X-Request-ID only if it looks like an id (it is echoed and logged)."""
    return bool(_REQUEST_ID.match(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": correlation_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            line["error_type"] = kind.__name__
            line["stack"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """dictConfig for the app and uvicorn: JSON to stdout; uvicorn's access log silenced (it prints
    client addresses and query strings); ours is AccessLog below."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        },
    }


def configure(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))


class AccessLog:
    """One line per request: method, route template (never the raw path), status, duration, and
    what the reply was (kind, gate rule) when a route says so."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            state = scope.get("state") or {}
            route = scope.get("route")
            fields: dict[str, Any] = {
                "method": scope["method"],
                "route": getattr(route, "path", None) or "unmatched",
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "client_role": state.get("client_role", "anonymous"),
            }
            for key in ("reply_kind", "rule"):
                if state.get(key):
                    fields[key] = safe_rule(state[key]) if key == "rule" else state[key]
            access_log.info("request", extra=fields)


def safe_rule(rule: str) -> str:
    """The rule's family only: a gate rule name could embed a matched phrase."""
    head = re.split(r"[:=\s]", str(rule), maxsplit=1)[0]
    return head if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", head) else "other"
