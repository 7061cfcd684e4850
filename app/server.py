"""`python -m app serve`: uvicorn with JSON logs and a drain period on SIGTERM.

On SIGTERM (or Ctrl-C) readiness flips to 503 at once, but the server keeps serving new
requests for `drain_seconds` so the load balancer notices and stops routing to this replica;
then uvicorn stops accepting connections and lets in-flight requests finish. A second signal
skips the wait.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from app import logs
from app.config import Settings

log = logging.getLogger(__name__)

# glibc's mallopt(M_MMAP_THRESHOLD, …): blocks at least this large get their own mapping, handed back
# to the system as soon as they are freed.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has malloc_trim); None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def return_large_blocks() -> None:
    """Fix glibc's mmap threshold at its initial 128 KiB. glibc raises the threshold (up to 32 MiB)
    each time a mapped block is freed, so after the first few the start-up's large temporaries (the
    knowledge check's and the load's parse buffers, numpy arrays, onnxruntime's load) came from the
    heap, where the freed space stays counted in the process until a malloc_trim, and partly even
    after it. With the threshold fixed they are unmapped when freed: VmHWM at /readyz ~292 -> ~281 MB,
    after ~1,000 requests at c=32 ~294 -> ~289 MB. Call it before the start-up's
    allocations. Not glibc: nothing to set."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim). Parsing the knowledge
    files twice (the check, then the load) and building the index leave ~10 MB freed but still
    counted in the process's memory; the service's memory target is its peak (docs/benchmarks.md).
    Not glibc: nothing to give back this way."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


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
