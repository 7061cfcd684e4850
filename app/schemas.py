"""Request and response bodies at the HTTP edge. Domain types stay dataclasses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from app.assistant import Reply

MAX_QUESTION_CHARS = 500


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"question": "Does the needle hurt?"}]})

    question: StrictStr = Field(
        description="The patient's question: 1 to 500 characters after trimming spaces.",
        # Room for surrounding spaces, yet a body that stays under the 16 KiB limit however escaped.
        max_length=2 * MAX_QUESTION_CHARS,
    )

    @field_validator("question")
    @classmethod
    def _trimmed_length(cls, value: str) -> str:
        trimmed = value.strip()
        if not trimmed:
            raise ValueError("the question is empty; type a question")
        if len(trimmed) > MAX_QUESTION_CHARS:
            raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters; please shorten it")
        return trimmed


class PassageOut(BaseModel):
    id: str
    section: str
    text: str = Field(description="The vetted passage, verbatim from its source document.")
    source: str = Field(description="The source document's file name.")
    version: str = Field(description="Short content hash of `text`: the exact words shown.")


class SuggestionOut(BaseModel):
    passage_id: str
    question: str = Field(description="A vetted question; sending it as a question gets that passage.")


class ResourceOut(BaseModel):
    label: str
    href: str = Field(description="tel:, sms: or https: link the client can make tappable.")
    kind: str


class AskResponse(BaseModel):
    reply_id: str = Field(description="UUID of this reply (for feedback).")
    kind: Literal["answer", "no_match", "crisis", "refer"]
    answer: str = Field(description="Exactly what the patient sees; always ends with `notice`.")
    notice: str = Field(description="The consult-your-provider notice.")
    passage: PassageOut | None = Field(description="The vetted passage; non-null iff kind is 'answer'.")
    score: float | None = Field(
        description="Cosine similarity (0–1) of the question to the best passage or its vetted "
        "questions; comparable across questions. Null for crisis and refer."
    )
    suggestions: list[SuggestionOut]
    resources: list[ResourceOut] = Field(description="Crisis resources; empty unless kind is 'crisis'.")

    @classmethod
    def from_reply(cls, reply: Reply) -> AskResponse:
        p = reply.passage
        return cls(
            reply_id=reply.reply_id,
            kind=reply.kind,  # type: ignore[arg-type]
            answer=reply.answer,
            notice=reply.notice,
            passage=PassageOut(id=p.id, section=p.section, text=p.text, source=p.source, version=p.version)
            if p
            else None,
            score=reply.score,
            suggestions=[SuggestionOut(passage_id=s.passage_id, question=s.question) for s in reply.suggestions],
            resources=[ResourceOut(label=r.label, href=r.href, kind=r.kind) for r in reply.resources],
        )


class PassageList(BaseModel):
    passages: list[PassageOut]


class SuggestionList(BaseModel):
    suggestions: list[SuggestionOut]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = None


class Readiness(BaseModel):
    status: Literal["ready", "loading", "failed", "stopping"]
    passages_served: int = 0
    passages_due_soon: int = 0
    passages_overdue: int = 0
    detail: str | None = None
