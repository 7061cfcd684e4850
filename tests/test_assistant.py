from pathlib import Path

import pytest

from app.assistant import DISCRIMINANT_MIN_EXAMPLES, Assistant
from app.config import Settings
from app.embedder import FakeEmbedder
from app.safety import GateDecision
from tests.conftest import RecordingEmbedder


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


def test_a_crisis_in_one_sentence_of_an_ordinary_message_gets_the_crisis_reply(
    shipped_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = RecordingEmbedder()
    assistant = Assistant.load(shipped_settings, spy)
    whole = assistant.gate.check

    def check(
        text: str,
        similarity: dict[str, float] | None = None,
        sentence: bool = False,
        words_ordinary: bool | None = None,
    ) -> GateDecision:
        # Stands in for a sentence only its own embedding gives away (the real model: tests/test_quality.py).
        if text == "Cedar blue ocean falcon sings." and sentence:
            return GateDecision("crisis", "crisis.semantic")
        return whole(text, similarity, sentence, words_ordinary)

    monkeypatch.setattr(assistant.gate, "check", check)
    spy.calls.clear()
    reply = assistant.ask("Where do I park? Cedar blue ocean falcon sings.")
    assert reply.kind == "crisis" and reply.passage is None and "988" in reply.answer
    assert reply.rule == "crisis.sentence.semantic" and reply.answer.endswith(reply.notice)
    # One encode call: the message and each sentence.
    parts = ("Where do I park? Cedar blue ocean falcon sings.", "Where do I park?", "Cedar blue ocean falcon sings.")
    assert spy.calls == [[assistant.query_text(t) for t in parts]]
    # A one-sentence message is encoded once, and never screened by parts.
    spy.calls.clear()
    assistant.ask("Where do I park?")
    assert spy.calls == [[assistant.query_text("Where do I park?")]]


def test_a_sentence_is_held_to_a_stricter_crisis_bar_than_a_message(shipped_settings: Settings) -> None:
    assistant = Assistant.load(shipped_settings, FakeEmbedder())
    vector = assistant.embedder.query_embed(["My elderly father is starting treatment."])[0]
    whole, part = assistant.gate_similarity(vector), assistant.sentence_similarity(vector)
    # Only one-sentence crisis exemplars count, and a refer message is as good an alibi as a benign one.
    assert part["crisis"] <= whole["crisis"]
    assert part["benign"] == max(whole["benign"], whole["refer"])
    multi = [t for t in assistant.gate.exemplars["crisis"] if t.count("?") + t.count(". ") >= 1]
    assert multi and not assistant._one_sentence_crisis.all()
    # And the discriminant's line sits further out for a sentence (`sentence_quantile`, session 22).
    assert assistant.crisis_discriminant is not None and assistant.crisis_discriminant.sentence_offset > 0
    offset = assistant.crisis_discriminant.sentence_offset
    assert part["crisis_discriminant"] == pytest.approx(whole["crisis_discriminant"] - offset)


def test_a_referred_message_is_not_screened_by_sentence(
    shipped_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = Assistant.load(shipped_settings, FakeEmbedder())
    whole = assistant.gate.check
    seen: list[str] = []

    def check(text: str, similarity: dict[str, float] | None = None) -> GateDecision:
        seen.append(text)
        return whole(text, similarity)

    monkeypatch.setattr(assistant.gate, "check", check)
    reply = assistant.ask("I take lithium 900mg every day. Can I take it the morning of the infusion?")
    assert reply.kind == "refer" and seen == [
        "I take lithium 900mg every day. Can I take it the morning of the infusion?"
    ]


def test_the_crisis_word_lists_also_read_the_spelling_mended_question(shipped_settings: Settings) -> None:
    from app.safety import SafetyGate
    from tests.conftest import SHIPPED_KNOWLEDGE

    assistant = Assistant.load(shipped_settings, FakeEmbedder())
    text = "took like 30 of my sleping pils 10 mins ago"
    # The word lists alone miss it as written ("pils" is too short for the fuzzy matcher; the crisis
    # word model, left out here, reads it as a crisis too)…
    assert SafetyGate.load(SHIPPED_KNOWLEDGE / "safety.yaml", words=False).check(text).kind == "pass"
    assert SafetyGate.load(SHIPPED_KNOWLEDGE / "safety.yaml").check(text).rule == "crisis.words"
    # …and catch it in the service's spelling-mended text ("took like 30 of my sleeping pills").
    decision = assistant.gate.check(text)
    assert decision.kind == "crisis" and decision.rule.startswith("crisis.spelling.pattern")
    reply = assistant.ask(text)
    assert reply.kind == "crisis" and reply.answer.endswith(reply.notice)


def test_the_bm25_nudge_is_the_models_unless_the_clinic_sets_one(settings: Settings) -> None:
    from app.config import BASE_CALIBRATION

    assert Assistant.load(settings, FakeEmbedder()).index.lexical_weight == BASE_CALIBRATION["lexical_weight"]
    chosen = settings.model_copy(update={"lexical_weight": 0.0})
    assistant = Assistant.load(chosen, FakeEmbedder())
    assert assistant.index.lexical_weight == 0.0
    # Ranking then follows the dense similarity alone.
    question = "who drives me home, will i feel drowsy"
    ranking = assistant.index.search(assistant.embedder.query_embed([question])[0], question)
    assert ranking.hits and [h.rank_score for h in ranking.hits] == [h.similarity for h in ranking.hits]
