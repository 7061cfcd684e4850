"""The /v1 routes. Thin: validation by schemas, all decisions in app.assistant."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.assistant import Assistant
from app.errors import NotReady
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
def ask(body: AskRequest, request: Request) -> AskResponse:
    """Answer a patient's question with a vetted passage, a referral, crisis resources or a decline."""
    reply = assistant(request).ask(body.question)
    request.state.reply_kind = reply.kind
    request.state.rule = reply.rule
    return AskResponse.from_reply(reply)


@router.get("/passages", response_model=PassageList, responses={503: PROBLEMS[503]})
def passages(request: Request) -> PassageList:
    """The approved, in-review passages, for a portal FAQ page."""
    return PassageList(
        passages=[
            PassageOut(id=p.id, section=p.section, text=p.text, source=p.source, version=p.version)
            for p in assistant(request).passages
        ]
    )


@router.get("/suggestions", response_model=SuggestionList, responses={503: PROBLEMS[503]})
def suggestions(request: Request) -> SuggestionList:
    """Vetted starter questions for a chat greeting."""
    return SuggestionList(
        suggestions=[SuggestionOut(passage_id=s.passage_id, question=s.question) for s in assistant(request).starters()]
    )
