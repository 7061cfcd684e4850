from pathlib import Path

from app.assistant import Assistant
from app.config import Settings
from app.embedder import FakeEmbedder


def test_related_suggestions_after_an_answer_are_close_matches_only(settings: Settings) -> None:
    assistant = Assistant.load(settings, FakeEmbedder())
    reply = assistant.ask("Will I be tired after the infusion?")
    assert reply.kind == "answer" and reply.passage is not None and reply.passage.id == "sleepy"
    # "driving" shares only "after the infusion": far below the answer's score, so not offered.
    assert all(s.passage_id != reply.passage.id for s in reply.suggestions)
    assert all(s.passage_id != "driving" for s in reply.suggestions)


def test_spelling_is_mended_only_in_the_matched_text(settings: Settings) -> None:
    assistant = Assistant.load(settings, FakeEmbedder())
    assert assistant.query_text("wil i be tird aftr the infusoin") != "wil i be tird aftr the infusoin"
    reply = assistant.ask("can i drve home aftr the infusoin")
    assert reply.kind == "answer" and reply.passage is not None and reply.passage.id == "driving"
    assert reply.answer.startswith(reply.passage.text)


def test_starters_are_vetted_questions(settings: Settings, knowledge_dir: Path) -> None:
    assistant = Assistant.load(settings, FakeEmbedder())
    starters = assistant.starters()
    vetted = {q for p in assistant.passages for q in p.questions}
    assert starters and all(s.question in vetted for s in starters)
