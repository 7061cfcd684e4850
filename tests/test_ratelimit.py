"""Rate limits (per address, per key; memory and a real Redis shared by two replicas) and the
16 KiB body limit (Content-Length, chunked, and on a real uvicorn)."""

from __future__ import annotations

import hashlib
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_process import free_port, start_server

from app.config import ApiKey, Settings
from app.embedder import FakeEmbedder

KEY = "portal-key-for-limits"
KEYS = [ApiKey(name="portal", sha256=hashlib.sha256(KEY.encode()).hexdigest(), role="portal")]
QUESTION = {"question": "Can I drive home after the infusion?"}


def make_client(settings: Settings, peer: str = "198.51.100.7", **limits: object) -> TestClient:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"api_keys": KEYS, **limits}), embedder_factory=FakeEmbedder)
    return TestClient(app, client=(peer, 40000))


def test_anonymous_clients_get_429_with_retry_after(settings: Settings) -> None:
    with make_client(settings, rate_limit_anonymous="3/minute") as client:
        statuses = [client.post("/v1/ask", json=QUESTION).status_code for _ in range(3)]
        refused = client.get("/v1/suggestions")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["status"] == 429


def test_a_key_has_its_own_budget(settings: Settings) -> None:
    with make_client(settings, rate_limit_anonymous="2/minute", rate_limit_keyed="4/minute") as client:
        for _ in range(2):
            client.get("/v1/suggestions")
        assert client.get("/v1/suggestions").status_code == 429
        keyed = [client.get("/v1/suggestions", headers={"X-API-Key": KEY}).status_code for _ in range(5)]
    assert keyed == [200, 200, 200, 200, 429]


def test_limits_are_per_address_behind_a_trusted_proxy(settings: Settings) -> None:
    with make_client(settings, peer="10.0.0.5", trusted_proxies=["10.0.0.0/8"], rate_limit_anonymous="2/minute") as c:
        first = [c.get("/v1/suggestions", headers={"X-Forwarded-For": "203.0.113.1"}).status_code for _ in range(3)]
        other = c.get("/v1/suggestions", headers={"X-Forwarded-For": "203.0.113.2"}).status_code
    assert first == [200, 200, 429]
    assert other == 200


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_buys_no_budget(settings: Settings) -> None:
    with make_client(settings, peer="198.51.100.7", rate_limit_anonymous="2/minute") as client:
        statuses = [
            client.get("/v1/suggestions", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)
        ]
    assert statuses == [200, 200, 429]


def test_wrong_keys_spend_the_anonymous_budget(settings: Settings) -> None:
    with make_client(settings, rate_limit_anonymous="3/minute") as client:
        statuses = [client.get("/v1/passages", headers={"X-API-Key": f"guess-{i}"}).status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_operations_routes_are_not_limited(settings: Settings) -> None:
    with make_client(settings, rate_limit_anonymous="1/minute") as client:
        assert all(client.get(path).status_code == 200 for path in ["/healthz", "/readyz", "/metrics"] * 3)


def test_a_limits_outage_lets_patients_through(settings: Settings) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}"
    with make_client(settings, rate_limit_anonymous="1/minute", rate_limit_storage_url=nowhere) as c:
        assert [c.get("/v1/suggestions").status_code for _ in range(3)] == [200, 200, 200]


# -- body limit ------------------------------------------------------------------------


def test_the_in_process_window_moves_like_limits_moving_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from limits import parse
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    from app import ratelimit

    clock = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock[0])
    item = parse("3/minute")
    ours = ratelimit.LocalMovingWindow()
    reference = MovingWindowRateLimiter(MemoryStorage())

    async def theirs(identity: str) -> bool:
        return await reference.hit(item, "ketamine-qa", identity)

    # Hits at 0, 10, 20 s; refused at 30 and 59 s; the first hit leaves the window at 60 s.
    for at, allowed in [(0, True), (10, True), (20, True), (30, False), (59, False), (60.5, True), (61, False)]:
        clock[0] = 1000.0 + at
        retry = ours.hit(item, "a")
        assert (retry is None) is allowed
        assert asyncio.run(theirs("a")) is allowed
        if not allowed:
            assert retry == max(1, math.ceil(1000.0 + (10 if at > 60 else 0) + 60 - clock[0]))
    assert ours.hit(item, "b") is None  # budgets are per identity
    clock[0] += 3600  # idle clients are forgotten
    ours.hit(item, "c")
    assert set(ours._hits) == {item.key_for("ketamine-qa", "c")}


def test_a_body_over_16_kib_is_413(client: TestClient) -> None:
    response = client.post("/v1/ask", content=b"{" + b" " * (16 * 1024))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_a_body_at_the_limit_reaches_validation(client: TestClient) -> None:
    body = b'{"question": "' + b"a" * (16 * 1024 - 16) + b'"}'
    assert len(body) <= 16 * 1024
    assert client.post("/v1/ask", content=body, headers={"Content-Type": "application/json"}).status_code == 422


def test_a_chunked_body_is_counted_as_it_streams(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 1024

    response = client.post("/v1/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_lying_content_length_does_not_get_past(knowledge_dir: Path, tmp_path: Path) -> None:
    """Real uvicorn: chunked with no Content-Length, and a small Content-Length on a big body."""
    server = start_server(knowledge_dir, tmp_path)
    try:
        chunk = b" " * 4096
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
        status = _raw_post(server.port, b"Transfer-Encoding: chunked\r\n", chunked)
        assert status == 413
        assert _raw_post(server.port, b"Content-Length: 20000\r\n", b" " * 20000) == 413
        ok = b'{"question": "Can I drive home after the infusion?"}'
        assert _raw_post(server.port, b"Content-Length: %d\r\n" % len(ok), ok) == 200
    finally:
        server.stop()


def _raw_post(port: int, length_header: bytes, body: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + length_header
            + b"Connection: close\r\n\r\n"
        )
        try:
            sock.sendall(body)
        except OSError:
            pass  # the server may refuse and close before reading it all
        response = b""
        while b"\r\n" not in response:
            data = sock.recv(4096)
            if not data:
                break
            response += data
    return int(response.split(b" ", 2)[1])


# -- Redis: replicas share one budget --------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("REDIS NOT INSTALLED: no redis-server (scripts/system-deps installs it); shared limits untested")
    port = free_port()
    data = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def test_two_replicas_share_one_budget_in_redis(settings: Settings, redis_url: str) -> None:
    limits = {"rate_limit_anonymous": "4/minute", "rate_limit_storage_url": redis_url}
    with make_client(settings, **limits) as replica_a, make_client(settings, **limits) as replica_b:
        statuses = [(replica_a if i % 2 else replica_b).get("/v1/suggestions").status_code for i in range(5)]
        refused = replica_a.get("/v1/suggestions")
        other = make_client(settings, peer="198.51.100.99", **limits)
        with other:
            fresh = other.get("/v1/suggestions").status_code
    assert statuses == [200, 200, 200, 200, 429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert fresh == 200


def test_redis_never_holds_addresses_in_clear(settings: Settings, redis_url: str) -> None:
    import redis

    limits = {"rate_limit_anonymous": "10/minute", "rate_limit_storage_url": redis_url}
    with make_client(settings, peer="192.0.2.77", **limits) as client:
        client.get("/v1/suggestions")
    keys = [key.decode() for key in redis.Redis.from_url(redis_url).keys("*")]
    assert keys and not any("192.0.2.77" in key for key in keys)
