import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app import knowledge, store
from app.embedder import FakeEmbedder
from app.retrieval import Discriminant, ExemplarIndex, PassageIndex, lexical_tokens
from tests.conftest import TODAY


def index(knowledge_dir: Path, out_of_scope: tuple[str, ...] = ()) -> tuple[PassageIndex, FakeEmbedder]:
    kb = knowledge.load(knowledge_dir)
    passages = kb.served(TODAY)
    texts = [p.text for p in passages] + [q for p in passages for q in p.questions] + list(out_of_scope)
    embedder = FakeEmbedder()
    built, _ = store.build(embedder, [store.Entry.of("t", str(i), t) for i, t in enumerate(texts)], None)
    return PassageIndex(passages, built, out_of_scope), embedder


def test_a_patients_example_question_finds_its_passage_but_is_never_named_or_vetted(knowledge_dir: Path) -> None:
    kb = knowledge.load(knowledge_dir)
    passages = kb.served(TODAY)
    example, declined = "zonked out afterwards, how long?", "what are your opening hours"
    texts = [p.text for p in passages] + [q for p in passages for q in p.questions] + [example, declined]
    embedder = FakeEmbedder()
    built, _ = store.build(embedder, [store.Entry.of("t", str(i), t) for i, t in enumerate(texts)], None)
    plain = PassageIndex(passages, built)
    idx = PassageIndex(passages, built, examples={"sleepy": [example]}, out_of_scope_examples=[declined])
    query = embedder.query_embed([example])[0]
    assert plain.search(query, example).hits[0].similarity < 0.99
    top = idx.search(query, example).hits[0]
    # The example scores its passage like a vetted question...
    assert top.passage.id == "sleepy" and np.isclose(top.similarity, 1.0, atol=1e-5)
    # ...but a reply names only a vetted question, and the safety gate's benign contrast (the best
    # vetted question) does not see it.
    assert top.matched_question in passages[0].questions
    assert idx.best_vetted_question(idx.similarities(query)) == plain.best_vetted_question(plain.similarities(query))
    assert len(idx.vetted_question_matrix) == len(plain.vetted_question_matrix)
    # A labelled out-of-scope question counts for declining, not for the gate's out-of-scope score.
    query = embedder.query_embed([declined])[0]
    assert np.isclose(idx.search(query, declined).out_of_scope, 1.0, atol=1e-5)
    assert idx.best_out_of_scope(query) == -1.0


def test_lexical_tokens_drop_stop_words_and_fillers_and_stem() -> None:
    assert lexical_tokens("Will I feel sleepy afterwards lol?") == ["feel", "sleepy", "afterward"]


def test_a_passage_scores_its_best_vetted_question(knowledge_dir: Path) -> None:
    idx, embedder = index(knowledge_dir)
    question = "Will I be tired after the infusion?"
    ranking = idx.search(embedder.query_embed([question])[0], question)
    top = ranking.hits[0]
    assert top.passage.id == "sleepy" and top.matched_question == question
    assert np.isclose(top.similarity, 1.0, atol=1e-5)
    assert ranking.out_of_scope == -1.0


def test_known_out_of_scope_questions_are_measured(knowledge_dir: Path) -> None:
    idx, embedder = index(knowledge_dir, ("How much does it cost?",))
    question = "how much does it cost"
    ranking = idx.search(embedder.query_embed([question])[0], question)
    assert ranking.out_of_scope > ranking.hits[0].similarity


def test_lexical_scores_are_scaled_to_the_best_passage(knowledge_dir: Path) -> None:
    idx, _ = index(knowledge_dir)
    scores = idx.lexical("drive home")
    assert scores.max() == 1.0 and idx.passages[int(scores.argmax())].id == "driving"
    assert not idx.lexical("zzzz").any()


def test_exemplar_similarity_is_the_best_cosine_per_group() -> None:
    embedder = FakeEmbedder()
    texts = ["i want to die", "what does it feel like"]
    built, _ = store.build(embedder, [store.Entry.of("x", t, t) for t in texts], None)
    exemplars = ExemplarIndex({"crisis": [texts[0]], "benign": [texts[1]]}, built)
    sims = exemplars.similarity(embedder.query_embed(["i want to die"])[0])
    assert np.isclose(sims["crisis"], 1.0) and sims["benign"] < 0.5


def _cloud(rng: np.random.Generator, centre: np.ndarray, n: int) -> np.ndarray:
    points = centre + 0.35 * rng.standard_normal((n, len(centre)))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_discriminant_separates_a_group_and_keeps_its_false_alarm_budget() -> None:
    rng = np.random.default_rng(7)
    dim = 32
    crisis_centre, ordinary_centre = np.eye(dim)[0], np.eye(dim)[1]
    crisis, ordinary = _cloud(rng, crisis_centre, 300), _cloud(rng, ordinary_centre, 1000)
    line = Discriminant(crisis, [ordinary[:600], ordinary[600:]], quantile=0.99)
    # At most 1 % of the texts it was told are ordinary fall past the line …
    assert np.mean([line.score(v) >= 0 for v in ordinary]) <= 0.011
    # … and new texts like the group mostly do, new ordinary ones mostly do not.
    assert np.mean([line.score(v) >= 0 for v in _cloud(rng, crisis_centre, 200)]) >= 0.9
    assert np.mean([line.score(v) >= 0 for v in _cloud(rng, ordinary_centre, 200)]) <= 0.05


def test_a_sentence_line_sits_at_its_own_higher_quantile() -> None:
    rng = np.random.default_rng(11)
    crisis, ordinary = _cloud(rng, np.eye(32)[0], 300), _cloud(rng, np.eye(32)[1], 2000)
    line = Discriminant(crisis, [ordinary], quantile=0.99, sentence_quantile=0.999)
    assert line.sentence_offset > 0
    # 1 in 100 ordinary texts is past the message's line, 1 in 1,000 past the sentence's.
    assert np.mean([line.score(v) >= 0 for v in ordinary]) == pytest.approx(0.01, abs=0.001)
    assert np.mean([line.score(v) - line.sentence_offset >= 0 for v in ordinary]) <= 0.0015
    assert Discriminant(crisis, [ordinary], quantile=0.99).sentence_offset == 0.0


def test_discriminant_needs_texts_on_both_sides() -> None:
    one = np.ones((1, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="two texts on each side"):
        Discriminant(one, [np.ones((5, 4), dtype=np.float32)], 0.99)
    with pytest.raises(ValueError, match="two texts on each side"):
        Discriminant(np.ones((5, 4), dtype=np.float32), [np.empty((0, 4), dtype=np.float32)], 0.99)


def test_the_service_does_not_load_scipy_for_bm25() -> None:
    """bm25s loads scipy.sparse when it is installed (~22 MB of the onnx service's memory budget)."""
    code = (
        "import sys, app.retrieval as r; assert not [m for m in sys.modules if m.startswith('scipy')], 'scipy loaded';"
        "import scipy.sparse"  # hidden only while bm25s loads: scipy still imports for anything else
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_bm25_is_lucene_bm25_over_each_passage(knowledge_dir: Path) -> None:
    """The textbook formula (Lucene idf, k1 1.5, b 0.75, bm25s's defaults), written out as an oracle:
    the numpy backend must score exactly what the library's scipy backend scored before."""
    idx, _ = index(knowledge_dir)
    documents = [lexical_tokens(" ".join((p.section, p.text, *p.questions))) for p in idx.passages]
    average = sum(map(len, documents)) / len(documents)
    for question in ("Will I feel sleepy after?", "can I drive home", "sleepy sleepy tired feel"):
        expected = np.zeros(len(documents))
        for token in (t for t in lexical_tokens(question) if t in idx._vocabulary):
            df = sum(token in d for d in documents)
            idf = math.log(1 + (len(documents) - df + 0.5) / (df + 0.5))
            for i, d in enumerate(documents):
                tf = d.count(token)
                expected[i] += idf * tf / (1.5 * (0.25 + 0.75 * len(d) / average) + tf)
        assert expected.max() > 0
        assert np.allclose(idx.lexical(question), expected / expected.max(), atol=1e-6)
