"""Feedback on replies (`POST /v1/feedback`) and the editors' report (`GET /v1/admin/report`).

Feedback names a reply by its id. The service remembers recent replies (id -> kind, passage,
version; never the question) in a bounded map, so feedback on a reply it never gave is a 404.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from app.security import Client, require_admin

if TYPE_CHECKING:
    from app.assistant import Reply
    from app.portal import Portal

log = logging.getLogger(__name__)

UNANSWERED_KINDS = ("no_match", "refer")


@dataclass(frozen=True)
class RememberedReply:
    kind: str
    passage_id: str | None
    passage_version: str | None


class ReplyMemory:
    """The most recent replies, oldest forgotten first. Thread-safe (sync routes run in threads)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._replies: OrderedDict[str, RememberedReply] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, reply_id: str, reply: RememberedReply) -> None:
        with self._lock:
            self._replies[reply_id] = reply
            while len(self._replies) > self.capacity:
                self._replies.popitem(last=False)

    def get(self, reply_id: str) -> RememberedReply | None:
        with self._lock:
            return self._replies.get(reply_id)

    def __len__(self) -> int:
        return len(self._replies)


def record_reply(request: Request, question: str, reply: Reply) -> None:
    """After a reply: remember it for feedback, count it, and queue an unanswered question
    for the editors. Never raises and never waits on the database."""
    portal: Portal | None = getattr(request.app.state, "portal", None)
    if portal is None:
        return
    try:
        passage = reply.passage
        portal.replies.remember(
            reply.reply_id,
            RememberedReply(reply.kind, passage.id if passage else None, passage.version if passage else None),
        )
        portal.metrics.count_reply(reply)
        if reply.kind in UNANSWERED_KINDS:
            nearest = reply.ranked[0] if reply.ranked else None
            portal.editors.record_unanswered(question, reply.kind, nearest, reply.score)
    except Exception as e:  # noqa: BLE001 - bookkeeping must not cost the patient their reply
        log.error("reply not recorded", extra={"error_type": type(e).__name__})


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reply_id": "0b7f6a0e-8c1e-4d55-9d8e-3b0c0f4b2a11", "helpful": True}]},
    )

    reply_id: StrictStr = Field(min_length=1, max_length=64, description="`reply_id` from /v1/ask.")
    helpful: StrictBool
    comment: StrictStr | None = Field(
        default=None,
        max_length=1000,
        description="Optional, up to 1000 characters. Stored for the clinic's editors after redaction.",
    )


class FeedbackAccepted(BaseModel):
    reply_id: str
    status: Literal["accepted"] = "accepted"


class QuestionGroupOut(BaseModel):
    example: str = Field(description="A redacted question; the group's most frequent wording.")
    count: int
    kinds: dict[str, int]
    variants: list[str]


class PassageRateOut(BaseModel):
    kind: str
    passage_id: str | None
    passage_version: str | None
    helpful: int
    votes: int
    rate: float


class EditorsReportOut(BaseModel):
    questions: int = Field(description="Unanswered questions stored in the period.")
    groups: list[QuestionGroupOut]
    passages: list[PassageRateOut]


router = APIRouter(prefix="/v1")


@router.post(
    "/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    tags=["patients"],
    responses={404: {"description": "No recent reply has this id."}},
)
def give_feedback(body: FeedbackRequest, request: Request) -> FeedbackAccepted:
    """Say whether a reply helped; the clinic's editors see the helpful rate per passage."""
    portal: Portal = request.app.state.portal
    reply = portal.replies.get(body.reply_id)
    if reply is None:
        raise HTTPException(404, "No recent reply has this reply_id.")
    comment = body.comment.strip() if body.comment and body.comment.strip() else None
    portal.editors.record_feedback(
        body.reply_id, reply.kind, reply.passage_id, reply.passage_version, body.helpful, comment
    )
    portal.metrics.feedback.labels(helpful="true" if body.helpful else "false").inc()
    return FeedbackAccepted(reply_id=body.reply_id)


@router.get("/admin/report", response_model=EditorsReportOut, tags=["admin"])
def editors_report(
    request: Request,
    _: Annotated[Client, Depends(require_admin)],
    top: Annotated[int, Query(ge=1, le=200)] = 20,
    days: Annotated[int, Query(ge=1, le=3650)] = 30,
) -> EditorsReportOut:
    """The most frequent unanswered questions (redacted, grouped) and the helpful rate per passage."""
    portal: Portal = request.app.state.portal
    report = portal.editors.report(top=top, since=datetime.now(UTC) - timedelta(days=days))
    return EditorsReportOut(
        questions=report.questions,
        groups=[
            QuestionGroupOut(example=g.example, count=g.count, kinds=g.kinds, variants=g.variants)
            for g in report.groups
        ],
        passages=[
            PassageRateOut(
                kind=p.kind,
                passage_id=p.passage_id,
                passage_version=p.passage_version,
                helpful=p.helpful,
                votes=p.votes,
                rate=round(p.rate, 3),
            )
            for p in report.passages
        ],
    )
