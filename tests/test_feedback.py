"""POST /v1/feedback, the reply memory, and no_match/refer questions reaching the editors."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.editors import feedback as feedback_table
from app.editors import unanswered
from app.feedback import RememberedReply, ReplyMemory, record_reply

ANSWERED = {"question": "Can I drive home after the infusion?"}
UNANSWERED = {"question": "My name is Jane Doe, is there parking for my car at the clinic? 555-123-4567"}


def rows(client: TestClient, table: object) -> list[object]:
    portal = client.app.state.portal  # type: ignore[attr-defined]
    portal.editors.flush()
    with portal.editors.engine.connect() as db:
        return list(db.execute(select(table)))  # type: ignore[call-overload]


def test_feedback_on_a_reply_is_accepted_and_stored(client: TestClient) -> None:
    reply = client.post("/v1/ask", json=ANSWERED).json()
    assert reply["kind"] == "answer"
    response = client.post(
        "/v1/feedback",
        json={"reply_id": reply["reply_id"], "helpful": True, "comment": "Clear, thanks. I'm Ann Lee, 555-123-4567"},
    )
    assert response.status_code == 202
    assert response.json() == {"reply_id": reply["reply_id"], "status": "accepted"}
    (row,) = rows(client, feedback_table)
    assert (row.reply_id, row.kind, row.passage_id, row.passage_version, row.helpful) == (
        reply["reply_id"],
        "answer",
        reply["passage"]["id"],
        reply["passage"]["version"],
        True,
    )
    assert "Ann" not in row.comment and "555" not in row.comment


def test_feedback_on_an_unknown_reply_is_404(client: TestClient) -> None:
    response = client.post("/v1/feedback", json={"reply_id": "00000000-0000-4000-8000-000000000000", "helpful": False})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        {"helpful": True},
        {"reply_id": "x", "helpful": "yes"},
        {"reply_id": "x", "helpful": True, "comment": "c" * 1001},
        {"reply_id": "x", "helpful": True, "rating": 5},
    ],
)
def test_invalid_feedback_is_422(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_no_match_questions_reach_the_editors_redacted(client: TestClient) -> None:
    reply = client.post("/v1/ask", json=UNANSWERED).json()
    assert reply["kind"] == "no_match"
    client.post("/v1/ask", json=ANSWERED)
    (row,) = rows(client, unanswered)
    assert row.kind == "no_match"
    assert "parking" in row.question and "Jane" not in row.question and "555" not in row.question


def test_only_no_match_and_refer_are_stored(client: TestClient) -> None:
    """Answers and crisis replies are not kept; refer and no_match are (hooked at the route)."""
    from starlette.requests import Request

    answered = client.post("/v1/ask", json=ANSWERED).json()
    request = Request({"type": "http", "app": client.app, "headers": []})
    assistant = client.app.state.assistant  # type: ignore[attr-defined]
    base = assistant.ask("Can I drive home after the infusion?")
    for kind in ("refer", "crisis", "answer"):
        record_reply(request, f"{kind} question", replace(base, kind=kind, reply_id=f"id-{kind}"))
    stored = sorted(row.question for row in rows(client, unanswered))
    assert stored == ["refer question"]
    assert answered["reply_id"]


def test_the_reply_memory_is_bounded() -> None:
    memory = ReplyMemory(capacity=100)
    for i in range(150):
        memory.remember(str(i), RememberedReply("answer", "p", "v"))
    assert len(memory) == 100
    assert memory.get("0") is None and memory.get("149") is not None


def test_a_broken_editor_store_does_not_fail_the_reply(client: TestClient) -> None:
    portal = client.app.state.portal  # type: ignore[attr-defined]

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database is on fire")

    portal.editors.record_unanswered = broken
    response = client.post("/v1/ask", json=UNANSWERED)
    assert response.status_code == 200 and response.json()["kind"] == "no_match"
