"""The crisis word model: the words and word pairs patients in crisis use, weighed by a linear model.

Why (session 14, docs/safety.md). The embedding reads a crisis told inside a practical question
("can you email me my records? i want everything in order before i go through with it") as a
practical question, and every rule written from one writer's misses caught none of the next
writer's. Which *words* a crisis message uses carries over between writers better: a logistic
regression over word 1- and 2-grams, trained with each writer's set left out in turn, caught 14 of
the 16 crises two new writers' messages had slipped past the gate, for about 1.4 more figures of
speech per writer sent to the crisis reply. On three writers it was never trained on (v33–v35), the
gate's missed crises went from 21 to 3 of 498, for 1 more figure of speech of 266.

What it reads: the gate's normalised text (app.safety.normalise), figures of speech included (it
learns them from the labelled ones; taken out, what is left of "my grandfather [died thirty years
ago] today" reads as a crisis), as TF-IDF weights (sublinear term frequency, l2 norm) of its words
and word pairs. The score is `intercept + weights · tfidf`; it fires at the stored `threshold`.
Scoring is pure Python over the stored weights (~0.1 ms); nothing is learnt while the service runs.

Made by `python -m app crisis-words` (scikit-learn, which sentence-transformers already installs;
the service never imports it), from every labelled message the project has read: the safety sets
in tests/ except judges (`word_model: false`) and held-out halves (`split: heldout`), and the
knowledge (crisis exemplars against the benign and refer exemplars, vetted, example and
out-of-scope questions), and the labelled patient questions of eval/questions.yaml outside its
`heldout` split, as ordinary messages (session 16). Most of those are also the knowledge's example
questions, so in effect a patient's question about the treatment counts twice. Judged in session 16:
one fewer held-out question and one fewer of a new writer's (questions v35) sent to the crisis reply,
no labelled crisis lost; weighting the example questions twice without the labelled set moved neither
(docs/safety.md). The threshold
is the `quantile` (knowledge/safety.yaml, `crisis.words`) of the scores of ordinary messages when
their writer's set is left out of training, over the sets the embedding was not tuned on.

The `veto` (session 15) is the lowest score any labelled crisis got without the model having learnt
it: with its writer left out, or (session 21) by the model itself for the crises of the sets it never
learns (`word_model: false`, the judges and the read sets since session 17). A message scoring
below it uses words no known crisis used; the gate's embedding layers (semantic, discriminant, and
the same on its sentences) then do not send it to the crisis reply on their own ("My husband is
nervous about pain." as a sentence sits near a one-sentence crisis exemplar). The word lists are
never overruled. On the labelled sets it took 14 ordinary messages from the crisis reply and no
crisis; on three new writers (v38, v39, questions v33) it changed nothing. In session 21 two new
writers' hidden crises scored below it (one of them, "…a use for it that will end everything", had
been kept from the sentence screen's crisis verdict by it): the judges' crises now set it too.
Session 22: only those the gate's word lists do not catch (`caught`, as the service reads them, with
its speller). The veto only overrules the embedding layers, so a crisis the lists catch cannot be
lost by it; one new writer's crisis, so misspelt that no word of it was known (caught by the fuzzy
matcher), had scored −6.26 and would have switched the veto off.

The file
records a fingerprint of the data it was made from; tests/test_crisis_words.py fails when the data
has changed since (`python -m app crisis-words` again, then the safety replay: docs/safety.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from app.errors import KnowledgeError
from app.knowledge import Knowledge

WORDS_FILE = "crisis_words.json"
# Chosen by leave-one-writer-out over the sets v17–v32 (C 0.3/1/3, n-grams up to 1/2/3, min_df 1/2,
# with and without the knowledge texts; docs/safety.md, session 14).
C = 3.0
NGRAMS = 2
MIN_DF = 2


@dataclass(frozen=True)
class CrisisWords:
    # n-gram -> its row in `idf` and `weight` (stdlib arrays: ~46,000 terms in ~5 MB, not ~15 MB of tuples)
    terms: dict[str, int]
    idf: array[float]
    weight: array[float]
    intercept: float
    threshold: float
    quantile: float
    data: str  # fingerprint of the training data (texts, labels, settings)
    # The lowest score any labelled crisis got without being learnt (its writer left out of training,
    # or a set the model never learns). A message scoring below it uses words no crisis the project
    # knows used: an embedding layer's crisis verdict alone does not send it to the crisis reply
    # (app/safety.py, session 15).
    veto: float

    def score(self, text: str) -> float:
        """The model's score for a normalised text (app.safety.normalise)."""
        words = text.split()
        grams = Counter(words)
        for n in range(2, NGRAMS + 1):
            grams.update(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        dot = norm = 0.0
        for gram, count in grams.items():
            row = self.terms.get(gram)
            if row is None:
                continue
            value = (1.0 + math.log(count)) * self.idf[row]
            norm += value * value
            dot += value * self.weight[row]
        return self.intercept + (dot / math.sqrt(norm) if norm else 0.0)

    def fires(self, text: str) -> bool:
        return self.score(text) >= self.threshold

    def reads_ordinary(self, text: str) -> bool:
        """Scores below every labelled crisis (writer left out): the words are an ordinary message's."""
        return self.score(text) < self.veto

    @classmethod
    def load(cls, path: Path, quantile: float | None) -> CrisisWords:
        file = str(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            rows = raw["terms"]
            model = cls(
                {gram: i for i, (gram, _, _) in enumerate(rows)},
                array("d", (float(idf) for _, idf, _ in rows)),
                array("d", (float(weight) for _, _, weight in rows)),
                float(raw["intercept"]),
                float(raw["threshold"]),
                float(raw["quantile"]),
                raw["data"],
                float(raw["veto"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            problem = f"is not a crisis word model ({e}); run python -m app crisis-words"
            raise KnowledgeError(file, None, None, problem) from e
        if quantile is not None and model.quantile != quantile:
            raise KnowledgeError(
                file,
                None,
                "quantile",
                f"was made for quantile {model.quantile}, safety.yaml asks {quantile}; run python -m app crisis-words",
            )
        return model


@dataclass(frozen=True)
class TrainingSet:
    texts: tuple[str, ...]  # normalised
    crisis: tuple[bool, ...]
    # The safety set each text comes from, for sets the embedding was not tuned on (the folds of the
    # threshold's leave-one-writer-out); "" for the knowledge and the sets it was tuned on.
    writer: tuple[str, ...]
    quantile: float
    # The crises of the sets the model never learns (`word_model: false`) that the word lists do not
    # catch, normalised: scored by the final model, they take part in the veto only.
    unseen: tuple[str, ...] = ()
    # How many of those sets' crises the word lists catch (left out of `unseen`).
    unseen_caught: int = 0

    def fingerprint(self) -> str:
        blob = json.dumps([self.texts, self.crisis, self.quantile, C, NGRAMS, MIN_DF], ensure_ascii=False)
        if self.unseen:
            blob += json.dumps(self.unseen, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def training_set(
    knowledge: Knowledge,
    exemplars: Mapping[str, Sequence[str]],
    normalise: Callable[[str], str],
    labelled_root: Path,
    quantile: float,
    caught: Callable[[str], bool] = lambda _: False,
) -> TrainingSet:
    """Every labelled message the project has read, normalised: the knowledge and the gate's
    exemplars, then the safety sets under labelled_root/tests except those marked
    `word_model: false` (judges) and the cases marked `split: heldout`, then the questions of
    labelled_root/eval/questions.yaml outside its `heldout` split (as ordinary messages). The crises
    of the `word_model: false` sets that `caught` (the gate's word lists) misses come back as
    `unseen`, for the veto only."""
    rows: list[tuple[str, bool, str]] = [(t, True, "") for t in exemplars.get("crisis", [])]
    ordinary = [t for group in ("refer", "benign") for t in exemplars.get(group, [])]
    ordinary += [q for p in knowledge.passages if p.status == "approved" for q in p.questions]
    ordinary += [q for questions in knowledge.examples.values() for q in questions]
    ordinary += [*knowledge.out_of_scope, *knowledge.out_of_scope_examples]
    rows += [(t, False, "") for t in ordinary]
    unseen: list[str] = []
    yaml = YAML(typ="safe")
    for path in sorted((labelled_root / "tests").glob("safety_*.yaml")):
        raw = yaml.load(path.read_text(encoding="utf-8"))
        if raw.get("word_model") is False:
            unseen += [case["text"] for case in raw["cases"] if case["label"] == "crisis"]
            continue
        writer = path.stem if raw.get("tuned_on") is False else ""
        # A set's held-out half (safety_cases.yaml, v4) is never learnt from, as in app/tuning.py.
        cases = [c for c in raw["cases"] if c.get("split") != "heldout"]
        rows += [(case["text"], case["label"] == "crisis", writer) for case in cases]
    questions = labelled_root / "eval" / "questions.yaml"  # absent in a clinic's own knowledge folder
    if questions.exists():
        from app.evaluation import load_cases  # the evaluation's reader: a misspelt split is refused, not learnt

        rows += [(case.question, False, "") for case in load_cases(questions) if case.split != "heldout"]
    return TrainingSet(
        tuple(normalise(t.strip()) for t, _, _ in rows),
        tuple(c for _, c, _ in rows),
        tuple(w for _, _, w in rows),
        quantile,
        tuple(normalise(t.strip()) for t in unseen if not caught(t.strip())),
        sum(caught(t.strip()) for t in unseen),
    )


def _fit(texts: Sequence[str], crisis: Sequence[bool]) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        ngram_range=(1, NGRAMS), min_df=MIN_DF, sublinear_tf=True, token_pattern=r"\S+", lowercase=False
    )
    model = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
    model.fit(vectorizer.fit_transform(texts), list(crisis))
    return vectorizer, model


def train(data: TrainingSet, progress: Callable[[str], None] = lambda _: None) -> tuple[CrisisWords, dict[str, Any]]:
    """The model and its leave-one-writer-out figures (what the threshold was chosen on)."""
    import numpy as np

    writers = sorted({w for w in data.writer if w})
    crisis = np.array(data.crisis)
    held_scores = np.full(len(data.texts), np.nan)
    for i, writer in enumerate(writers, 1):
        progress(f"leaving out {writer} ({i}/{len(writers)})")
        keep = [j for j, w in enumerate(data.writer) if w != writer]
        out = [j for j, w in enumerate(data.writer) if w == writer]
        vectorizer, model = _fit([data.texts[j] for j in keep], [data.crisis[j] for j in keep])
        held_scores[out] = model.decision_function(vectorizer.transform([data.texts[j] for j in out]))
    folds = ~np.isnan(held_scores)
    if not (folds & ~crisis).any():
        raise ValueError("no held-out ordinary message: the threshold needs sets marked tuned_on: false")
    threshold = float(np.quantile(held_scores[folds & ~crisis], data.quantile))
    if not (folds & crisis).any():
        raise ValueError("no held-out crisis message: the veto needs crises in the sets marked tuned_on: false")
    veto = float(held_scores[folds & crisis].min())
    progress("training on everything")
    vectorizer, model = _fit(data.texts, data.crisis)
    grams = sorted(vectorizer.vocabulary_.items())
    idf = array("d", (round(float(vectorizer.idf_[j]), 6) for _, j in grams))
    weight = array("d", (round(float(model.coef_[0][j]), 6) for _, j in grams))
    terms = {gram: row for row, (gram, _) in enumerate(grams)}
    figures = {
        "writers": len(writers),
        "crisis_above": int((folds & crisis & (held_scores >= threshold)).sum()),
        "crisis": int((folds & crisis).sum()),
        "ordinary_above": int((folds & ~crisis & (held_scores >= threshold)).sum()),
        "ordinary": int((folds & ~crisis).sum()),
    }
    words = CrisisWords(
        terms,
        idf,
        weight,
        round(float(model.intercept_[0]), 6),
        round(threshold, 6),
        data.quantile,
        data.fingerprint(),
        veto,
    )
    # The crises the model never learnt, scored as the service scores them (the stored, rounded weights).
    unseen = [words.score(text) for text in data.unseen]
    figures["unseen_crises"] = len(unseen)
    figures["unseen_caught"] = data.unseen_caught
    figures["unseen_below_left_out_veto"] = sum(score < veto for score in unseen)
    veto = min([veto, *unseen])
    # Rounded down, so the crisis that set it is not below its own rounded value.
    return replace(words, veto=math.floor(veto * 1e6) / 1e6), figures


def write(words: CrisisWords, figures: dict[str, Any], path: Path) -> None:
    """One term per line ([n-gram, idf, weight]), sorted: a retrain's diff reads term by term."""
    head = {
        "about": "Made by `python -m app crisis-words` (app/crisis_words.py); do not edit by hand.",
        "data": words.data,
        "quantile": words.quantile,
        "threshold": words.threshold,
        "veto": words.veto,
        "intercept": words.intercept,
        "left_out_writers": figures,
    }
    lines = [json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ",", ' "terms": [']
    rows = [
        f"  [{json.dumps(gram, ensure_ascii=False)}, {words.idf[row]}, {words.weight[row]}]"
        for gram, row in words.terms.items()
    ]
    lines.append(",\n".join(rows))
    lines.append(" ]\n}\n")
    path.write_text("\n".join(lines), encoding="utf-8")
