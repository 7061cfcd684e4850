"""Logs are JSON lines with a request id, and never carry questions, addresses or keys.

The privacy test reads the real stdout/stderr of a `python -m app serve` subprocess."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from server_process import start_server

from app.logs import JsonFormatter, safe_rule, sane_request_id

MARKER = "zebracactus"  # never a word in any knowledge file, log message or route
MARKED_IP = "203.0.113.77"
MARKED_KEY = f"{MARKER}-portal-secret"


def test_json_lines_carry_the_request_id_and_no_exception_message() -> None:
    from asgi_correlation_id import correlation_id

    try:
        raise ValueError(f"question was {MARKER}")
    except ValueError:
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, "f.py", 1, "failed", None, sys.exc_info())
    token = correlation_id.set("req-12345678")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        correlation_id.reset(token)
    assert line["request_id"] == "req-12345678"
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "t", "failed")
    assert line["error_type"] == "ValueError" and line["stack"]
    assert MARKER not in json.dumps(line)


@pytest.mark.parametrize(
    ("value", "sane"),
    [
        ("0b7f6a0e8c1e4d559d8e3b0c0f4b2a11", True),
        ("portal-req.42:7", True),
        ("short", False),
        ("has space in it", False),
        ("x" * 65, False),
        ("I feel suicidal", False),
    ],
)
def test_only_sane_request_ids_are_accepted(value: str, sane: bool) -> None:
    assert sane_request_id(value) is sane


def test_gate_rules_are_logged_by_family_only() -> None:
    assert safe_rule("crisis.phrase:end it all") == "crisis.phrase"
    assert safe_rule("retrieval.answer") == "retrieval.answer"
    assert safe_rule("weird rule with spaces") == "weird"


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/v1/suggestions", headers={"X-Request-ID": "portal-req-00000001"})
    assert given.headers["x-request-id"] == "portal-req-00000001"
    generated = client.get("/v1/suggestions", headers={"X-Request-ID": "not sane!"})
    assert generated.headers["x-request-id"] != "not sane!" and sane_request_id(generated.headers["x-request-id"])
    assert client.get("/v1/nope").headers["x-request-id"]  # errors too


def test_logs_never_carry_questions_addresses_or_keys(knowledge_dir: Path, tmp_path: Path) -> None:
    keys = json.dumps([{"name": "portal-a", "sha256": hashlib.sha256(MARKED_KEY.encode()).hexdigest()}])
    server = start_server(
        knowledge_dir,
        tmp_path,
        env={
            "KETAMINE_QA_API_KEYS": keys,
            "KETAMINE_QA_TRUSTED_PROXIES": '["127.0.0.1"]',
            "KETAMINE_QA_RATE_LIMIT_ANONYMOUS": "40/minute",
            "KETAMINE_QA_DRAIN_SECONDS": "0",
        },
    )
    marked_headers = {
        "User-Agent": f"Mozilla/5.0 {MARKER}",
        "Referer": f"https://clinic.example/{MARKER}",
        "Cookie": f"session={MARKER}",
        "X-Forwarded-For": MARKED_IP,
        "X-Clinic-Note": MARKER,
    }
    questions = [
        f"Can I drive home after the infusion, {MARKER}?",  # answer
        f"My name is {MARKER.title()} and my phone is 555-123-4567, what about {MARKER} tea?",  # no_match
        f"Should I stop taking my {MARKER} medication before the infusion?",  # likely refer
        f"I want to end it all, {MARKER}",  # crisis
    ]
    statuses: list[int] = []
    request_ids: list[str] = []
    try:
        with httpx.Client(base_url=server.base_url, headers=marked_headers, timeout=10) as http:
            wrong = {"X-API-Key": f"{MARKER}-wrong"}
            statuses.append(http.post("/v1/ask", json={"question": MARKER}, headers=wrong).status_code)
            for i in range(60):  # more than the anonymous limit: 429s are logged too
                response = http.post(f"/v1/ask?{MARKER}=1", json={"question": questions[i % len(questions)]})
                statuses.append(response.status_code)
                request_ids.append(response.headers["x-request-id"])
            marked_key = {"X-API-Key": MARKED_KEY}
            keyed = http.post(
                "/v1/ask", json={"question": questions[1]}, headers={"Authorization": f"Bearer {MARKED_KEY}"}
            )
            assert keyed.status_code == 200
            comment = {"reply_id": keyed.json()["reply_id"], "helpful": False, "comment": f"{MARKER} did not help"}
            statuses.append(http.post("/v1/feedback", json=comment, headers=marked_key).status_code)
            statuses.append(http.get(f"/v1/{MARKER}/nothing", headers=marked_key).status_code)
            statuses.append(http.post("/v1/ask", json={"question": MARKER * 100}, headers=marked_key).status_code)
            statuses.append(http.post("/v1/ask", content=MARKER.encode() * 2000, headers=marked_key).status_code)
            statuses.append(http.get("/v1/admin/report", headers=marked_key).status_code)
            http.get(f"/readyz?{MARKER}")
    finally:
        server.stop()
    assert {200, 202, 429, 401, 404, 422, 413, 403} <= set(statuses)
    output = server.output()
    assert MARKER not in output.lower()
    assert MARKED_IP not in output
    assert MARKED_KEY not in output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "app.access"]
    assert len(access) >= 66
    assert {line["request_id"] for line in access} >= set(request_ids)
    asks = [line for line in access if line["route"] == "/v1/ask" and line["status"] == 200]
    assert {"answer", "no_match", "crisis"} <= {line.get("reply_kind") for line in asks}
    assert all(isinstance(line["duration_ms"], float) for line in access)
    assert not any("uvicorn.access" == line["logger"] for line in lines)
