"""The /v1/ask contract, with the fake embedder and the tiny knowledge base."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import date

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import Settings
from app.embedder import FakeEmbedder
from app.main import create_app
from tests.conftest import FIXTURES

SOURCE = (FIXTURES / "knowledge" / "sources" / "aftercare.txt").read_text(encoding="utf-8")


def ask(client: TestClient, question: object) -> dict:
    response = client.post("/v1/ask", json={"question": question})
    assert response.status_code == 200, response.text
    return response.json()


def test_vetted_question_gets_its_passage_verbatim_then_the_notice(client: TestClient) -> None:
    reply = ask(client, "Will I be tired after the infusion?")
    assert reply["kind"] == "answer"
    passage = reply["passage"]
    assert passage["id"] == "sleepy" and passage["source"] == "aftercare.txt"
    assert passage["text"] in SOURCE
    assert reply["answer"] == passage["text"] + "\n\n" + reply["notice"]
    assert "provider" in reply["notice"]
    assert len(passage["version"]) == 12
    uuid.UUID(reply["reply_id"])
    assert 0.0 <= reply["score"] <= 1.0001
    assert reply["resources"] == []


def test_unrelated_question_is_declined_with_vetted_suggestions(client: TestClient) -> None:
    reply = ask(client, "what is the wifi password")
    assert reply["kind"] == "no_match" and reply["passage"] is None
    assert reply["answer"].startswith("I'm sorry, I don't have a vetted answer")
    assert reply["answer"].endswith(reply["notice"])
    vetted = {
        "Will I feel sleepy afterwards?",
        "Will I be tired after the infusion?",
        "Can I drive home after the infusion?",
    }
    assert all(s["question"] in vetted for s in reply["suggestions"])
    assert len(reply["suggestions"]) <= 3


def test_crisis_is_routed_before_retrieval(client: TestClient) -> None:
    reply = ask(client, "will I be tired after the infusion, i dont want to be alive anymore")
    assert reply["kind"] == "crisis" and reply["passage"] is None and reply["score"] is None
    assert "988" in reply["answer"] and reply["answer"].endswith(reply["notice"])
    assert {"tel:911", "tel:988", "sms:988"} <= {r["href"] for r in reply["resources"]}


def test_personal_medication_question_is_referred(client: TestClient) -> None:
    reply = ask(client, "can I skip my lamotrigine the morning of the infusion?")
    assert reply["kind"] == "refer" and reply["passage"] is None
    assert "care team" in reply["answer"] and reply["answer"].endswith(reply["notice"])


def test_drafts_and_overdue_passages_are_never_served(client: TestClient) -> None:
    for question in ("What food should I start with?", "Can I eat a meal afterwards?"):
        reply = ask(client, question)
        assert not (reply["passage"] and reply["passage"]["id"] in {"eating", "eating-draft"})
    ids = {p["id"] for p in client.get("/v1/passages").json()["passages"]}
    assert ids == {"sleepy", "driving"}


def test_an_emergency_the_gate_does_not_escalate_still_gets_911_from_the_notice(client: TestClient) -> None:
    # With the real model a poisoning told as a question about one's own medicine is referred, not
    # escalated (docs/safety.md); whatever the gate decides, the default notice gives the numbers.
    reply = ask(client, "My baby chewed one of my buprenorphine strips. He's 14 months and seems really drowsy.")
    assert "911" in reply["answer"] and "988" in reply["answer"]
    assert reply["answer"].endswith(reply["notice"])


def test_notice_is_a_setting(settings: Settings) -> None:
    custom = settings.model_copy(update={"notice": "Ask Dr Rivers, your provider."})
    with TestClient(create_app(custom, embedder_factory=FakeEmbedder)) as client:
        reply = ask(client, "Can I drive home after the infusion?")
    assert reply["notice"] == "Ask Dr Rivers, your provider." and reply["answer"].endswith(
        "Ask Dr Rivers, your provider."
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"question": ""}, "empty"),
        ({"question": "   \n\t "}, "empty"),
        ({"question": "x" * 501}, "longer than 500"),
        ({"question": 42}, "must be a string"),
        ({"question": None}, "must be a string"),
        ({}, "question"),
        ({"question": "ok", "extra": 1}, "extra"),
    ],
)
def test_bad_questions_get_a_clear_422(client: TestClient, body: dict, words: str) -> None:
    response = client.post("/v1/ask", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422 and words in problem["detail"]


def test_malformed_json_gets_422(client: TestClient) -> None:
    response = client.post(
        "/v1/ask", content=b'{"question": "does it hurt"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "not valid JSON" in response.json()["detail"]


def test_500_question_characters_after_trimming_are_accepted(client: TestClient) -> None:
    assert client.post("/v1/ask", json={"question": "  " + "a" * 500 + "  "}).status_code == 200


def test_suggestions_are_vetted_questions(client: TestClient) -> None:
    suggestions = client.get("/v1/suggestions").json()["suggestions"]
    assert suggestions and all(s["question"].endswith("?") for s in suggestions)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.text(min_size=1, max_size=500).filter(lambda s: s.strip()))
def test_every_reply_of_every_kind_ends_with_the_notice(client: TestClient, question: str) -> None:
    reply = ask(client, question)
    assert reply["answer"].endswith(reply["notice"]) and "call 911" in reply["notice"]
    assert (reply["passage"] is not None) == (reply["kind"] == "answer")
    if reply["passage"]:
        assert reply["passage"]["text"] in SOURCE and reply["answer"].startswith(reply["passage"]["text"])


def test_readyz_is_503_until_model_and_index_are_loaded(settings: Settings) -> None:
    release = threading.Event()

    def slow_embedder() -> FakeEmbedder:
        release.wait(10)
        return FakeEmbedder()

    background = settings.model_copy(update={"background_load": True})
    with TestClient(create_app(background, embedder_factory=slow_embedder)) as client:
        assert client.get("/healthz").status_code == 200
        loading = client.get("/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        assert client.post("/v1/ask", json={"question": "does it hurt"}).status_code == 503
        release.set()
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            threading.Event().wait(0.02)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["passages_served"] == 2 and ready["passages_overdue"] == 1


def test_broken_knowledge_fails_readiness_with_the_named_field(settings: Settings) -> None:
    path = settings.knowledge_dir / "passages" / "aftercare.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Most patients feel drowsy", "Patients feel drowsy"))
    with TestClient(create_app(settings, embedder_factory=FakeEmbedder)) as client:
        body = client.get("/readyz")
    assert body.status_code == 503
    assert "entry 'sleepy', field 'text'" in body.json()["detail"]


def test_a_model_that_cannot_load_fails_readiness_and_is_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> FakeEmbedder:
        raise ValueError("KETAMINE_QA_EMBEDDER=onnx: the ONNX export in /somewhere is of another model")

    with caplog.at_level(logging.ERROR), TestClient(create_app(settings, embedder_factory=broken)) as client:
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        body = client.get("/readyz")
        asked = client.post("/v1/ask", json={"question": "does it hurt"})
    assert body.status_code == 503 and body.json()["status"] == "failed"
    assert "ValueError" in body.json()["detail"] and "/somewhere" not in body.json()["detail"]
    assert asked.status_code == 503
    assert any("cannot start" in r.getMessage() and "another model" in r.getMessage() for r in caplog.records)


def test_stale_index_is_rebuilt_at_start(settings: Settings) -> None:
    with TestClient(create_app(settings, embedder_factory=FakeEmbedder)) as client:
        assert client.get("/readyz").status_code == 200
    manifest = settings.embeddings_dir / "manifest.json"
    first = manifest.read_text()
    path = settings.knowledge_dir / "passages" / "aftercare.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "      - Can I drive home after the infusion?\n", "      - Who can drive me home?\n"
        )
    )
    with TestClient(create_app(settings, embedder_factory=FakeEmbedder)) as client:
        assert ask(client, "Who can drive me home?")["passage"]["id"] == "driving"
    assert manifest.read_text() != first


def test_stale_index_can_be_refused(settings: Settings) -> None:
    refuse = settings.model_copy(update={"stale_index": "refuse"})
    with TestClient(create_app(refuse, embedder_factory=FakeEmbedder)) as client:
        body = client.get("/readyz")
    assert body.status_code == 503 and "python -m app build" in body.json()["detail"]


def test_a_passage_falling_due_while_running_is_no_longer_served(settings: Settings) -> None:
    with TestClient(create_app(settings, embedder_factory=FakeEmbedder)) as client:
        assert ask(client, "Will I be tired after the infusion?")["passage"]["id"] == "sleepy"
        # The clock moves past sleepy's review_due (2026-12-31) without a reload.
        client.app.state.settings.today = date(2027, 1, 2)
        client.app.state.assistant.settings.today = date(2027, 1, 2)
        reply = ask(client, "Will I be tired after the infusion?")
        assert reply["passage"] is None or reply["passage"]["id"] not in {"sleepy", "driving"}
        assert all(s["passage_id"] not in {"sleepy", "driving"} for s in reply["suggestions"])
        assert client.get("/v1/passages").json()["passages"] == []
