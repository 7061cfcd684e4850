"""/metrics: request counts, latency histogram, replies by kind, decline ratio, crisis count."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.config import Settings
from app.embedder import FakeEmbedder

MARKER = "zebracactus"


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{sample} not in /metrics"
    return float(match.group(1))


def test_metrics_count_replies_without_their_text(client: TestClient) -> None:
    for question in [
        "Can I drive home after the infusion?",
        "Will I feel sleepy afterwards?",
        f"Is there {MARKER} parking at the clinic?",
    ]:
        client.post("/v1/ask", json={"question": question})
    client.post("/v1/ask", json={"question": ""})
    client.get(f"/v1/{MARKER}")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert value(text, 'ketamine_qa_replies_total{kind="answer"}') == 2
    assert value(text, 'ketamine_qa_replies_total{kind="no_match"}') == 1
    assert value(text, 'ketamine_qa_replies_total{kind="crisis"}') == 0
    assert value(text, "ketamine_qa_crisis_replies_total") == 0
    assert abs(value(text, "ketamine_qa_decline_ratio") - 1 / 3) < 1e-9
    assert value(text, 'http_requests_total{handler="/v1/ask",method="POST",status="2xx"}') == 3
    assert value(text, 'http_requests_total{handler="/v1/ask",method="POST",status="4xx"}') == 1
    assert 'http_request_duration_seconds_bucket{handler="/v1/ask",le="0.1",method="POST"}' in text
    assert 'handler="none"' in text  # unknown paths are grouped, never labelled with the raw path
    assert MARKER not in text


def test_crisis_replies_are_counted(client: TestClient) -> None:
    reply = client.post("/v1/ask", json={"question": "I want to kill myself"}).json()
    assert reply["kind"] == "crisis"
    text = client.get("/metrics").text
    assert value(text, "ketamine_qa_crisis_replies_total") == 1
    assert value(text, 'ketamine_qa_replies_total{kind="crisis"}') == 1


def test_rate_limited_requests_and_feedback_are_counted(settings: Settings) -> None:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"rate_limit_anonymous": "2/minute"}), embedder_factory=FakeEmbedder)
    with TestClient(app) as client:
        reply = client.post("/v1/ask", json={"question": "Can I drive home after the infusion?"}).json()
        client.post("/v1/feedback", json={"reply_id": reply["reply_id"], "helpful": True})
        client.get("/v1/suggestions")
        text = client.get("/metrics").text
    assert value(text, 'ketamine_qa_rate_limited_total{client="anonymous"}') == 1
    assert value(text, 'ketamine_qa_feedback_total{helpful="true"}') == 1


def test_metrics_can_be_turned_off(settings: Settings) -> None:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"metrics_enabled": False}), embedder_factory=FakeEmbedder)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
