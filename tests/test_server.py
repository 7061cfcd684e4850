"""`python -m app serve`: on SIGTERM readiness turns 503 while requests are still served for the
drain period, then the process exits."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from server_process import start_server


def test_sigterm_flips_readiness_then_drains(knowledge_dir: Path, tmp_path: Path) -> None:
    server = start_server(knowledge_dir, tmp_path, env={"KETAMINE_QA_DRAIN_SECONDS": "2"})
    try:
        with httpx.Client(base_url=server.base_url, timeout=5) as http:
            assert http.get("/readyz").status_code == 200
            signalled = time.monotonic()
            server.signal()
            time.sleep(0.3)
            ready = http.get("/readyz")
            ask = http.post("/v1/ask", json={"question": "Can I drive home after the infusion?"})
            assert ready.status_code == 503 and ready.json()["status"] == "stopping"
            assert ask.status_code == 200  # still serving while the load balancer catches up
        server.process.wait(30)
        elapsed = time.monotonic() - signalled
    finally:
        server.stop()
    assert 2.0 <= elapsed < 20
    assert "draining" in server.output()


def test_a_second_signal_skips_the_drain(knowledge_dir: Path, tmp_path: Path) -> None:
    server = start_server(knowledge_dir, tmp_path, env={"KETAMINE_QA_DRAIN_SECONDS": "60"})
    try:
        signalled = time.monotonic()
        server.signal()
        time.sleep(0.3)
        server.signal()
        server.process.wait(30)
    finally:
        server.stop()
    assert time.monotonic() - signalled < 30


def test_a_request_in_flight_when_shutdown_starts_still_gets_its_reply(knowledge_dir: Path, tmp_path: Path) -> None:
    """No drain: the server stops accepting at once, but a request it is half-way through reading
    (the client is slow) is completed before the process exits."""
    server = start_server(knowledge_dir, tmp_path, env={"KETAMINE_QA_DRAIN_SECONDS": "0"})
    body = b'{"question": "Can I drive home after the infusion?"}'
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
            )
            time.sleep(0.3)
            server.signal()
            time.sleep(0.5)
            assert server.process.poll() is None  # waiting for us
            sock.sendall(body[10:])
            response = b""
            while data := sock.recv(65536):
                response += data
        server.process.wait(30)
    finally:
        server.stop()
    assert response.startswith(b"HTTP/1.1 200")
    assert b'"kind":"answer"' in response
