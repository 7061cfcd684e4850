"""Limits at the door: body size (413), wrong keys (401) and per-client rate limits (429).

Both are pure ASGI middleware so a refused request never reaches a route, and so the body is
counted as it streams in (a chunked body has no Content-Length to trust).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import deque
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.problems import problem
from app.security import BEARER_CHALLENGE, BadKey, Client, authenticate, client_address, parse_networks

log = logging.getLogger(__name__)

# Routes a browser may call without a key (the public widget); everything else under /v1 needs one.
API_PREFIX = "/v1/"


def rate_limit_storage(url: str) -> Storage:
    """The async limits storage for a memory:// or redis:// URL (redis-py client for Redis)."""
    if url.startswith("memory://"):
        storage = storage_from_string("async+memory://")
    else:
        storage = storage_from_string("async+" + url, implementation="redispy")
    assert isinstance(storage, Storage)
    return storage


class LocalMovingWindow:
    """memory:// limits: the moving window of limits' MovingWindowRateLimiter, kept in this process.

    limits' async memory storage scheduled a sweep after every request that sent each client's
    list of hits through a thread-pool hop (`asyncio.to_thread`) and copied it: 0.15-0.3 ms of CPU
    per request with one client, ~0.56 ms with a thousand (measured), paid on the event loop and a
    worker thread. Here a hit is a deque append; expired hits leave from the front as the client
    returns, and idle clients are forgotten in one pass a minute. Same rule: a hit is refused while
    `limit` hits lie within the last `expiry` seconds; retry when the oldest of them expires.
    Called from the event loop only.
    """

    SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, deque[float]]] = {}
        self._next_sweep = time.monotonic() + self.SWEEP_SECONDS

    def hit(self, item: RateLimitItem, identity: str) -> int | None:
        now = time.monotonic()
        key = item.key_for("ketamine-qa", identity)
        entry = self._hits.get(key)
        if entry is None:
            entry = self._hits[key] = (float(item.get_expiry()), deque())
        expiry, hits = entry
        cutoff = now - expiry
        while hits and hits[0] < cutoff:
            hits.popleft()
        if len(hits) >= item.amount:
            return max(1, math.ceil(hits[0] + expiry - now))
        hits.append(now)
        if now >= self._next_sweep:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.SWEEP_SECONDS
        for key in [k for k, (expiry, hits) in self._hits.items() if not hits or hits[-1] < now - expiry]:
            del self._hits[key]


class RateLimiter:
    """Moving-window limits shared by every replica that points at the same storage."""

    def __init__(self, storage_url: str) -> None:
        # One process (memory://): counted in place. Shared storage (Redis): limits' strategy.
        self.local = LocalMovingWindow() if storage_url.startswith("memory://") else None
        if self.local is None:
            self.storage = rate_limit_storage(storage_url)
            self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, item: RateLimitItem, identity: str) -> int | None:
        """Spend one request; None if allowed, else the seconds until the client may retry."""
        if self.local is not None:
            return self.local.hit(item, identity)
        try:
            if await self.strategy.hit(item, "ketamine-qa", identity):
                return None
            stats = await self.strategy.get_window_stats(item, "ketamine-qa", identity)
        except Exception as e:  # noqa: BLE001 - a limits outage must not take patients' answers down
            log.warning("rate limit storage unavailable; request allowed", extra={"error_type": type(e).__name__})
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))


def _address_identity(address: str) -> str:
    # Hashed: the shared limit storage (Redis) never holds patients' addresses in clear.
    return "ip:" + hashlib.sha256(address.encode()).hexdigest()[:24]


class PortalGate:
    """Under /v1: refuse a wrong key (401), then spend the caller's budget (429 when spent).

    Anonymous callers are limited per client address, keyed callers per key name. A wrong key
    spends the address's anonymous budget too, so keys cannot be guessed at full speed.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.api_keys = settings.api_keys
        self.trusted = parse_networks(settings.trusted_proxies)
        self.anonymous = parse(settings.rate_limit_anonymous)
        self.keyed = parse(settings.rate_limit_keyed)
        self.limiter = RateLimiter(settings.rate_limit_storage_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            client = authenticate(Headers(scope=scope), self.api_keys)
        except BadKey:
            state["client_role"] = "bad-key"
            retry = await self.limiter.hit(self.anonymous, self._address(scope))
            response = (
                self._too_many(scope, retry, "bad-key")
                if retry
                else problem(401, "The API key is not valid.", headers=BEARER_CHALLENGE)
            )
            await response(scope, receive, send)
            return
        state["client"], state["client_role"] = client, client.role
        item, identity = self._budget(scope, client)
        retry = await self.limiter.hit(item, identity)
        if retry:
            await self._too_many(scope, retry, client.role)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _address(self, scope: Scope) -> str:
        return _address_identity(client_address(scope, self.trusted))

    def _budget(self, scope: Scope, client: Client) -> tuple[RateLimitItem, str]:
        if client.name is not None:
            return self.keyed, "key:" + client.name
        return self.anonymous, self._address(scope)

    @staticmethod
    def _too_many(scope: Scope, retry_after: int, role: str) -> Any:
        metrics = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
        if metrics is not None:
            metrics.rate_limited.labels(client=role).inc()
        return problem(
            429,
            f"Too many requests; please try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )


class BodyLimit:
    """413 for a request body over the limit, counted as it arrives (chunked bodies included).

    The body is read here, up to the limit, and replayed to the app: bodies are small (16 KiB)
    and this way the app never sees a partial body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before sending its body; let the app see that.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = f"{self.max_bytes // 1024} KiB" if self.max_bytes % 1024 == 0 else f"{self.max_bytes} bytes"
        # Close the connection: the rest of the body is not read.
        response = problem(413, f"The request body is larger than {limit}.", headers={"Connection": "close"})
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
