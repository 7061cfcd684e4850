"""A bounded load run on loopback against a real `python -m app serve` (fake embedder):
2,000 requests, 32 at a time, a SIGTERM half-way; no request may fail: the ones in flight finish,
and the ones after it are still served during the drain. Figures: docs/portal.md."""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import time
from pathlib import Path

import httpx
from server_process import start_server

TOTAL = 2000
CONCURRENCY = 32
KEY = "load-test-portal-key"
QUESTIONS = [
    "Can I drive home after the infusion?",
    "Will I feel sleepy afterwards?",
    "Is there parking at the clinic?",  # no_match: exercises the editors' store under load
    "Will I be tired after the infusion?",
    "What should I bring with me?",
]


async def run_load(base_url: str, on_half: asyncio.Event) -> tuple[list[float], list[str], list[int]]:
    latencies: list[float] = []
    errors: list[str] = []
    readiness: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(TOTAL):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    headers = {"X-API-Key": KEY}
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30, headers=headers) as http:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                try:
                    response = await http.post("/v1/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]})
                    if response.status_code != 200 or not response.json()["answer"]:
                        errors.append(f"{response.status_code}")
                except httpx.HTTPError as e:
                    errors.append(type(e).__name__)
                latencies.append(time.perf_counter() - started)
                if len(latencies) == TOTAL // 2:
                    on_half.set()
                    readiness.append((await http.get("/readyz")).status_code)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        readiness.append((await http.get("/readyz")).status_code)
    return latencies, errors, readiness


def test_load_with_a_sigterm_half_way(knowledge_dir: Path, tmp_path: Path) -> None:
    keys = json.dumps([{"name": "load", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}])
    server = start_server(
        knowledge_dir,
        tmp_path,
        env={
            "KETAMINE_QA_API_KEYS": keys,
            "KETAMINE_QA_RATE_LIMIT_KEYED": "100000/minute",
            # Long enough for the second half of the run on a slow, shared machine; a second SIGTERM
            # after the run ends the drain (as an orchestrator's would).
            "KETAMINE_QA_DRAIN_SECONDS": "120",
        },
    )
    try:

        async def scenario() -> tuple[list[float], list[str], list[int], float]:
            half = asyncio.Event()

            async def terminate_at_half() -> None:
                await half.wait()
                server.signal()

            started = time.perf_counter()
            killer = asyncio.create_task(terminate_at_half())
            latencies, errors, readiness = await run_load(server.base_url, half)
            await killer
            return latencies, errors, readiness, time.perf_counter() - started

        latencies, errors, readiness, elapsed = asyncio.run(scenario())
        server.signal()
        server.process.wait(30)
    finally:
        server.stop()
    latencies.sort()
    figures = {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1] * 1000, 1),
        "p99_ms": round(latencies[int(0.99 * len(latencies)) - 1] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "readyz_after_sigterm": readiness,
    }
    print("\nload figures:", json.dumps(figures))
    assert len(latencies) == TOTAL
    assert errors == [], errors[:10]
    # SIGTERM went out at the half-way mark: readiness had turned 503 by the end of the run.
    assert readiness[-1] == 503
    assert "draining" in server.output()
