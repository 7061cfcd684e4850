from pathlib import Path

from app.assistant import Assistant
from app.config import Settings
from app.embedder import FakeEmbedder


def test_related_suggestions_after_an_answer_are_close_matches_only(shipped_settings: Settings) -> None:
    assistant = Assistant.load(shipped_settings, FakeEmbedder())
    reply = assistant.ask("Are Ketamine Infusions Painful?")
    assert reply.kind == "answer" and reply.passage is not None and reply.passage.id == "faq-is-it-painful"
    # The vetted question matched exactly (1.0); the next-best passage is offered, and no
    # further ones, since none matched nearly as well.
    assert len(reply.suggestions) == 1 and reply.suggestions[0].passage_id != "faq-is-it-painful"


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
