"""The /v1 routes. Thin: validation by schemas, all decisions in app.assistant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.assistant import Assistant
from app.errors import NotReady
from app.feedback import record_reply
from app.schemas import AskRequest, AskResponse, PassageList, PassageOut, Problem, SuggestionList, SuggestionOut

router = APIRouter(prefix="/v1", tags=["patients"])

PROBLEMS: dict[int | str, dict[str, object]] = {
    422: {"model": Problem, "description": "The question is missing, empty, too long or not text."},
    503: {"model": Problem, "description": "The service is still loading its model and index."},
}


def assistant(request: Request) -> Assistant:
    current: Assistant | None = request.app.state.assistant
    if current is None:
        raise NotReady()
    return current


@router.post("/ask", response_model=AskResponse, responses=PROBLEMS)
async def ask(body: AskRequest, request: Request) -> AskResponse:
    """Answer a patient's question with a vetted passage, a referral, crisis resources or a decline."""
    # async: the encode runs batched on the encoder thread (app/batching.py), never on the loop.
    reply = await request.app.state.ask_path.reply(assistant(request), body.question)
    request.state.reply_kind = reply.kind
    request.state.rule = reply.rule
    # Remember for feedback, count for /metrics, queue no_match/refer for editors (redacted, off-path).
    record_reply(request, body.question, reply)
    return AskResponse.from_reply(reply)


@router.get("/passages", response_model=PassageList, responses={503: PROBLEMS[503]})
def passages(
    request: Request,
    source: Annotated[str | None, Query(description="Only passages cut from this source document (file name).")] = None,
) -> PassageList:
    """The approved, in-review passages, for a portal FAQ page."""
    return PassageList(
        passages=[
            PassageOut(id=p.id, section=p.section, text=p.text, source=p.source, version=p.version)
            for p in assistant(request).passages
            if (source is None or p.source == source) and p.servable(request.app.state.settings.current_date())
        ]
    )


@router.get("/suggestions", response_model=SuggestionList, responses={503: PROBLEMS[503]})
def suggestions(request: Request) -> SuggestionList:
    """Vetted starter questions for a chat greeting."""
    return SuggestionList(
        suggestions=[SuggestionOut(passage_id=s.passage_id, question=s.question) for s in assistant(request).starters()]
    )
