from pathlib import Path

from app.assistant import DISCRIMINANT_MIN_EXAMPLES, Assistant
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


def test_crisis_discriminant_is_off_without_enough_labelled_messages(settings: Settings) -> None:
    # The fixture knowledge has only safety.yaml's hand-written exemplars: a line fitted to a few
    # dozen messages sent "my phone is 555-123-4567; what about … tea?" to the crisis reply.
    assistant = Assistant.load(settings, FakeEmbedder())
    assert len(assistant.gate.exemplars["crisis"]) < DISCRIMINANT_MIN_EXAMPLES
    assert assistant.crisis_discriminant is None
    assert "crisis_discriminant" not in assistant.gate_similarity(assistant.embedder.query_embed(["hello"])[0])


def test_crisis_discriminant_is_on_with_the_shipped_messages(shipped_settings: Settings) -> None:
    assistant = Assistant.load(shipped_settings, FakeEmbedder())
    assert assistant.crisis_discriminant is not None
    assert "crisis_discriminant" in assistant.gate_similarity(assistant.embedder.query_embed(["hello"])[0])
