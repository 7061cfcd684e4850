"""The crisis word model (app/crisis_words.py): its scoring, its file, its place in the gate."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ruamel.yaml import YAML
from typer.testing import CliRunner

from app.assistant import attach_speller
from app.cli import cli
from app.config import Settings
from app.crisis_words import WORDS_FILE, CrisisWords, TrainingSet, _fit, train, training_set, write
from app.embedder import FakeEmbedder
from app.errors import KnowledgeError
from app.knowledge import load as load_knowledge
from app.safety import GateDecision, SafetyGate, normalise
from tests.conftest import ROOT, SHIPPED_KNOWLEDGE

CRISIS = [
    "i want everything in order before i go through with it",
    "no point booking the next one, i have made my decision",
    "this is goodbye, thank you for trying",
    "i have saved up my pills for tonight",
    "it will all be over for good this week",
    "i wont need the next appointment, i will be gone",
]
ORDINARY = [
    "can you email me my records before my appointment",
    "what time is my next appointment",
    "do i need a driver after the infusion",
    "is there parking near the clinic",
    "how long does the infusion take",
    "will my insurance cover the next one",
]


def _data(quantile: float = 0.9) -> TrainingSet:
    texts = CRISIS + ORDINARY
    crisis = [True] * len(CRISIS) + [False] * len(ORDINARY)
    # Three "writers", each with crisis and ordinary messages, for the threshold's left-out folds.
    writers = [f"w{i % 3}" for i in range(len(CRISIS))] * 2
    return TrainingSet(tuple(texts), tuple(crisis), tuple(writers), quantile)


# The quantile knowledge/safety.yaml asks for: a file made for another one does not load.
QUANTILE = SafetyGate.load(SHIPPED_KNOWLEDGE / "safety.yaml", words=False).words_quantile


def _model_file(folder: Path, terms: dict[str, list[float]], threshold: float = 0.5, veto: float = -9.0) -> None:
    rows = [[gram, idf, weight] for gram, (idf, weight) in terms.items()]
    raw = {"data": "x", "quantile": QUANTILE, "threshold": threshold, "veto": veto, "intercept": -1.0, "terms": rows}
    (folder / WORDS_FILE).write_text(json.dumps(raw), encoding="utf-8")


def test_the_service_scores_exactly_as_scikit_learn_trained_it(tmp_path: Path) -> None:
    data = _data()
    words, figures = train(data)
    vectorizer, model = _fit(data.texts, data.crisis)
    probes = [*data.texts, "my records, then goodbye for good", "an appointment for my records", "", "zzz"]
    expected = model.decision_function(vectorizer.transform(probes))
    for probe, score in zip(probes, expected, strict=True):
        assert words.score(probe) == pytest.approx(score, abs=1e-4), probe
    # What the file holds is what the service reads back.
    write(words, figures, tmp_path / WORDS_FILE)
    again = CrisisWords.load(tmp_path / WORDS_FILE, data.quantile)
    assert again == words
    assert figures["writers"] == 3 and figures["crisis"] == len(CRISIS) and figures["ordinary"] == len(ORDINARY)


def test_the_veto_is_the_lowest_score_a_crisis_got_with_its_writer_left_out() -> None:
    data = _data()
    words, _ = train(data)
    left_out = []
    for writer in sorted(set(data.writer)):
        keep = [j for j, w in enumerate(data.writer) if w != writer]
        vectorizer, model = _fit([data.texts[j] for j in keep], [data.crisis[j] for j in keep])
        crises = [t for t, c, w in zip(data.texts, data.crisis, data.writer, strict=True) if c and w == writer]
        left_out += list(model.decision_function(vectorizer.transform(crises)))
    assert words.veto == pytest.approx(min(left_out), abs=1e-5) and words.veto <= min(left_out)
    assert not any(words.reads_ordinary(t) for t, c in zip(data.texts, data.crisis, strict=True) if c)


def test_a_judges_crisis_the_word_lists_catch_does_not_set_the_veto(tmp_path: Path) -> None:
    # Session 22: a crisis so misspelt that the word model knew none of its words scored -6.26 and
    # switched the veto off in effect; the fuzzy matcher catches it, so the veto cannot lose it.
    (tmp_path / "tests").mkdir()
    cases = [{"text": t, "label": "crisis"} for t in ("zebra crossing tonight", "I want to kill myself")]
    raw = {"tuned_on": False, "word_model": False, "cases": cases}
    (tmp_path / "tests" / "safety_heldout_w9.yaml").write_text(json.dumps(raw), encoding="utf-8")
    gate = SafetyGate.load(SHIPPED_KNOWLEDGE / "safety.yaml", words=False)
    knowledge = load_knowledge(SHIPPED_KNOWLEDGE)

    def both(caught: Callable[[str], bool]) -> TrainingSet:
        return training_set(knowledge, gate.exemplars, normalise, tmp_path, 0.9, caught=caught)

    every, lists = both(lambda _: False), both(lambda text: gate.check(text).kind == "crisis")
    assert (len(every.unseen), every.unseen_caught) == (2, 0)
    assert (lists.unseen, lists.unseen_caught) == ((normalise("zebra crossing tonight"),), 1)
    assert lists.fingerprint() != every.fingerprint()


def test_a_crisis_the_model_never_learnt_that_scores_lower_sets_the_veto() -> None:
    # Session 21: two new writers' hidden crises scored below every left-out writer's crisis, and the
    # veto had kept one of them from the sentence screen's crisis verdict. The judges' crises count too.
    hidden = normalise("what time is the parking near the clinic")  # a crisis in an ordinary message's words
    words, figures = train(_data())
    assert words.reads_ordinary(hidden)  # below the left-out writers' lowest crisis
    with_judges, figures = train(dataclasses.replace(_data(), unseen=(hidden,)))
    assert not with_judges.reads_ordinary(hidden) and with_judges.veto < words.veto
    assert figures["unseen_crises"] == 1 and figures["unseen_below_left_out_veto"] == 1
    # Nothing else about the model changes, but its fingerprint does: a new judge set means a retrain.
    same = ("terms", "weight", "intercept", "threshold")
    assert [getattr(with_judges, name) for name in same] == [getattr(words, name) for name in same]
    assert with_judges.data != words.data
    # A crisis above the line leaves it where it was.
    assert train(dataclasses.replace(_data(), unseen=(CRISIS[0],)))[0].veto == words.veto


def test_training_is_deterministic_and_the_threshold_follows_the_quantile() -> None:
    first, _ = train(_data())
    assert train(_data())[0] == first
    assert train(_data(quantile=0.5))[0].threshold < first.threshold


def _lists_catch(settings: Settings) -> Callable[[str], bool]:
    """Whether the shipped gate's word lists catch a message, read as the service reads it (its speller)."""
    lists = SafetyGate.load(SHIPPED_KNOWLEDGE / "safety.yaml", words=False)
    attach_speller(lists, settings, load_knowledge(SHIPPED_KNOWLEDGE), settings.current_date())
    return lambda text: lists.check(text).kind == "crisis"


def test_the_shipped_model_is_current_with_the_labelled_data(shipped_settings: Settings) -> None:
    # A changed idiom, exemplar, word list or labelled set changes what the model should have been
    # trained on (or which judges' crises set its veto): `python -m app crisis-words`, then the replay.
    gate = SafetyGate.load(SHIPPED_KNOWLEDGE / "safety.yaml")
    assert gate.words is not None and gate.words_quantile is not None
    caught = _lists_catch(shipped_settings)
    data = training_set(
        load_knowledge(SHIPPED_KNOWLEDGE), gate.exemplars, normalise, ROOT, gate.words_quantile, caught=caught
    )
    assert gate.words.data == data.fingerprint(), "run python -m app crisis-words"
    # Most judges' crises are caught by the word lists and do not set the veto (session 22).
    assert data.unseen and data.unseen_caught > len(data.unseen)
    # Judges are never trained on: their texts are not in the data.
    yaml = YAML(typ="safe")
    sets = sorted((ROOT / "tests").glob("safety_*.yaml"))
    judged = [p for p in sets if yaml.load(p.read_text(encoding="utf-8")).get("word_model") is False]
    assert judged, "the newest blind sets are kept as judges (word_model: false)"
    texts = set(data.texts)
    for path in judged:
        cases = yaml.load(path.read_text(encoding="utf-8"))["cases"]
        assert sum(normalise(c["text"].strip()) in texts for c in cases) < len(cases) / 20, path.name
    # Nor the held-out questions, which judge answer quality; the others are learnt as ordinary messages.
    questions = yaml.load((ROOT / "eval" / "questions.yaml").read_text(encoding="utf-8"))["questions"]
    # (Counts, not texts, in the assertions: a failure must not print the held-out questions. A few
    # short ones, "40 mins", are also other sets' texts.)
    heldout = [normalise(q["q"].strip()) in texts for q in questions if q["split"] == "heldout"]
    learnt = [normalise(q["q"].strip()) in texts for q in questions if q["split"] != "heldout"]
    assert len(heldout) > 500 and sum(heldout) < len(heldout) / 20
    assert all(learnt)


@pytest.fixture
def words_knowledge(knowledge_dir: Path) -> Path:
    """The fixture knowledge with a tiny word model: "credits" alone crosses its threshold."""
    _model_file(knowledge_dir, {"credits": [1.0, 5.0], "roll": [1.0, 0.0], "killing": [1.0, 5.0]})
    return knowledge_dir


def test_the_gate_reads_whole_messages_and_not_single_sentences(words_knowledge: Path) -> None:
    gate = SafetyGate.load(words_knowledge / "safety.yaml")
    assert gate.check("speedrunning the end credits tonight") == GateDecision("crisis", "crisis.words")
    # Sentence screening must not multiply its chances (it was chosen and measured on whole messages).
    assert gate.check("speedrunning the end credits tonight", sentence=True).kind == "pass"
    assert gate.check("what time should I arrive").kind == "pass"


def test_the_model_reads_the_whole_message_figures_of_speech_included(words_knowledge: Path) -> None:
    # It learnt the figures of speech from the labelled ones; what is left once one is taken out
    # ("my grandfather [died thirty years ago] today") reads as a crisis out of context.
    gate = SafetyGate.load(words_knowledge / "safety.yaml")
    assert gate.check("the wait is killing me, when do I hear back?") == GateDecision("crisis", "crisis.words")
    assert gate.check("the wait is killing me, speedrunning the end credits").rule == "crisis.words"


def test_the_shipped_model_lets_the_figures_of_speech_it_was_shown_through() -> None:
    # Messages a clinic added under `benign` because the model sent them to the crisis reply
    # (knowledge/safety_examples.yaml, session 14) pass once it is made again.
    gate = SafetyGate.load(SHIPPED_KNOWLEDGE / "safety.yaml")
    assert gate.words is not None
    for text in (
        "I plan to not eat after midnight, is that right?",
        "I'd be late to my own funeral, sorry, 10 minutes out",
    ):
        assert not gate.words.fires(normalise(text)), text
    assert gate.words.fires(normalise("i want everything in order before i go through with it"))


def test_a_knowledge_folder_without_the_file_runs_the_other_layers(knowledge_dir: Path) -> None:
    gate = SafetyGate.load(knowledge_dir / "safety.yaml")
    assert gate.words is None and gate.words_quantile == QUANTILE
    assert gate.check("i want to kill myself").kind == "crisis"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not a crisis word model"),
        ('{"terms": {}}', "is not a crisis word model"),
        (
            '{"data": "x", "quantile": 0.9, "threshold": 1, "veto": -3, "intercept": 0, "terms": [["a", 1, 2]]}',
            "quantile 0.9",
        ),
        # A file made before session 15 has no veto: made again, not read with a guessed one.
        (
            json.dumps({"data": "x", "quantile": QUANTILE, "threshold": 1, "intercept": 0, "terms": []}),
            "veto.*crisis-words",
        ),
    ],
)
def test_a_broken_or_stale_file_stops_the_gate_from_loading(knowledge_dir: Path, content: str, problem: str) -> None:
    (knowledge_dir / WORDS_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(KnowledgeError, match=problem):
        SafetyGate.load(knowledge_dir / "safety.yaml")


def test_a_crisis_only_the_word_model_finds_gets_the_crisis_reply_and_the_notice(
    words_knowledge: Path, settings: Settings
) -> None:
    from app.main import create_app

    question = {"question": "speedrunning the end credits tonight gg"}
    with TestClient(create_app(settings, embedder_factory=FakeEmbedder)) as client:
        body = client.post("/v1/ask", json=question).json()
        assert body["kind"] == "crisis" and body["passage"] is None
        assert body["answer"].endswith(body["notice"])
        assert any(r["href"] == "tel:988" for r in body["resources"])
        ordinary = client.post("/v1/ask", json={"question": "what should I wear to my infusion?"}).json()
        assert ordinary["kind"] != "crisis"
    # The same service without the model: the other layers let the message through.
    (words_knowledge / WORDS_FILE).unlink()
    with TestClient(create_app(settings, embedder_factory=FakeEmbedder)) as client:
        assert client.post("/v1/ask", json=question).json()["kind"] != "crisis"


def test_the_command_makes_the_file_and_checks_it(knowledge_dir: Path, tmp_path: Path) -> None:
    labelled = tmp_path / "labelled"
    (labelled / "tests").mkdir(parents=True)
    for i in range(3):
        cases = [{"text": t, "label": "crisis"} for t in CRISIS[i::3]]
        cases += [{"text": t, "label": "benign"} for t in ORDINARY[i::3]]
        raw = {"tuned_on": False, "cases": cases}
        (labelled / "tests" / f"safety_heldout_w{i}.yaml").write_text(json.dumps(raw), encoding="utf-8")
    judged = [{"text": t, "label": "crisis"} for t in ("zebra crossing tonight", "zebra crossing again")]
    judge = {"tuned_on": False, "word_model": False, "cases": judged}
    (labelled / "tests" / "safety_heldout_w9.yaml").write_text(json.dumps(judge), encoding="utf-8")
    (labelled / "eval").mkdir()
    questions = [
        {"q": q, "expect": "no_match", "category": "off_topic", "split": split}
        for q, split in [
            ("walrus tusks", "tune"),
            ("walrus food", "read"),
            ("narwhal a", "heldout"),
            ("narwhal b", "heldout"),
        ]
    ]
    (labelled / "eval" / "questions.yaml").write_text(json.dumps({"questions": questions}), encoding="utf-8")
    args = ["crisis-words", "--knowledge", str(knowledge_dir), "--labelled", str(labelled)]
    runner = CliRunner()
    assert runner.invoke(cli, [*args, "--check"]).exit_code == 1  # no file yet
    made = runner.invoke(cli, args)
    assert made.exit_code == 0, made.output
    assert "Writers left out one at a time (3)" in made.output
    assert runner.invoke(cli, [*args, "--check"]).exit_code == 0
    model = json.loads((knowledge_dir / WORDS_FILE).read_text(encoding="utf-8"))
    grams = {gram for gram, _, _ in model["terms"]}
    assert "zebra" not in grams and "tonight" in grams  # a judge's words are never learnt
    assert "walrus" in grams and "narwhal" not in grams  # nor the held-out questions' words
    # More labelled data: the file is stale until the command runs again.
    shutil.copy(labelled / "tests" / "safety_heldout_w0.yaml", labelled / "tests" / "safety_heldout_w3.yaml")
    assert runner.invoke(cli, [*args, "--check"]).exit_code == 1
