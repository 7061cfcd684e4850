"""`python -m app serve`: uvicorn with JSON logs and a drain period on SIGTERM.

On SIGTERM (or Ctrl-C) readiness flips to 503 at once, but the server keeps serving new
requests for `drain_seconds` so the load balancer notices and stops routing to this replica;
then uvicorn stops accepting connections and lets in-flight requests finish. A second signal
skips the wait.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app import logs
from app.config import Settings

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self.drain_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        self.app.state.status = "stopping"
        log.info(
            "draining: readiness is 503; still serving",
            extra={
                "signal": signal.Signals(sig).name,
                "drain_seconds": self.drain_seconds,
            },
        )
        timer = threading.Timer(self.drain_seconds, super().handle_exit, args=(sig, None))
        timer.daemon = True
        timer.start()


def serve(host: str, port: int, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    logs.configure(settings.log_level)
    from app.main import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=logs.logging_config(settings.log_level),
        access_log=False,
        # Client addresses come from the peer; X-Forwarded-For is read only from trusted proxies
        # (KETAMINE_QA_TRUSTED_PROXIES), by the rate limiter, never logged.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=20,
    )
    DrainingServer(config, app, settings.drain_seconds).run()
