"""Retrieval: every numpy operation of the service lives here.

Vectors are L2-normalised, so a dot product is a cosine similarity in [-1, 1].
A passage is represented by its own text and each of its vetted alternate questions; it scores
the best of those (a patient's question usually looks more like another question than like
the answer paragraph).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from app.knowledge import Passage
from app.store import VectorStore


def _import_bm25s() -> ModuleType:
    """bm25s, imported without scipy.

    bm25s imports `scipy.sparse` whenever scipy is installed (sentence-transformers brings it) only
    to offer a sparse-matrix backend; its numpy backend gives the same scores. On the onnx service
    nothing else loads scipy, and that import alone is ~22 MB of a 300 MB budget
    (docs/benchmarks.md). So scipy is hidden while bm25s loads, and only then: a `None` entry in
    sys.modules makes an import raise ImportError, which bm25s handles.
    """
    if "bm25s" in sys.modules or "scipy.sparse" in sys.modules:
        import bm25s

        return bm25s
    hidden = {name: sys.modules.get(name) for name in ("scipy", "scipy.sparse")}
    sys.modules.update(dict.fromkeys(hidden))  # type: ignore[arg-type]  # None: "this import fails"
    try:
        import bm25s
    finally:
        for name, module in hidden.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
    return bm25s


bm25s = _import_bm25s()

# Words that carry no topic: dropped before lexical scoring. "after", "before" and "during" are
# kept: the time frame is what tells the during-the-infusion passage from the after one.
STOPWORDS = frozenset(
    "a an the is are was were be been being do does did doing i im i'm me my mine you your it its it's to of in on "
    "for and or but what whats how will would can could should shall may might there this that these those with "
    "at by from as about any have has had get gets got so if when just really very much "
    "some like am we us our they them their he she his her who which why where than then too also not no yes "
    "please hi hello thanks thank ok okay even lol actually basically literally kind sort stuff thing things "
    "gonna wanna um uh hey yeah yep".split()
)
SUFFIXES = ("ing", "ed", "es", "s", "ly")


def lexical_tokens(text: str) -> list[str]:
    """Lower-case word stems without stop words (a light stemmer: enough for patient questions)."""
    tokens = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS:
            continue
        for suffix in SUFFIXES:
            if len(word) > 4 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        tokens.append(word)
    return tokens


@dataclass(frozen=True)
class Hit:
    passage: Passage
    # Best cosine of the question to the passage text or one of its vetted questions (0–1 in
    # practice): the score shown in replies, comparable across questions.
    similarity: float
    # BM25 of the question against the passage, scaled so the best passage scores 1.
    lexical: float
    # What ranks passages: similarity plus a lexical nudge.
    rank_score: float
    # The vetted question that matched best, or None when the passage text itself did.
    matched_question: str | None


@dataclass(frozen=True)
class Ranking:
    hits: list[Hit]
    # Best cosine of the question to the known out-of-scope questions (-1 when there are none).
    out_of_scope: float


class PassageIndex:
    """Hybrid search over the served passages: dense (text + vetted questions) and BM25."""

    def __init__(
        self,
        passages: Sequence[Passage],
        store: VectorStore,
        out_of_scope: Sequence[str] = (),
        lexical_weight: float = 0.2,
        examples: Mapping[str, Sequence[str]] | None = None,
        out_of_scope_examples: Sequence[str] = (),
    ) -> None:
        """`examples`: patients' wordings by passage id (question_examples.yaml). They score their
        passage like a vetted question, but are never named as the matched question, are not vetted
        questions for the safety gate, and stay out of the BM25 documents. `out_of_scope_examples`:
        patients' questions the documents do not answer; they count for declining like
        `out_of_scope`; the safety gate reads them only as ordinary text for its crisis semantic
        layer (best_out_of_scope_example(); best_out_of_scope() leaves them out)."""
        self.passages = tuple(passages)
        self.lexical_weight = lexical_weight
        texts: list[str] = []
        owners: list[int] = []
        questions: list[str | None] = []
        for i, passage in enumerate(self.passages):
            texts.append(passage.text)
            owners.append(i)
            questions.append(None)
            for question in passage.questions:
                texts.append(question)
                owners.append(i)
                questions.append(question)
        shown = len(texts)
        for i, passage in enumerate(self.passages):
            for example in (examples or {}).get(passage.id, ()):
                texts.append(example)
                owners.append(i)
                questions.append(None)
        self._matrix = store.matrix(texts)
        self._owners = np.asarray(owners, dtype=np.int64)
        self._is_question = np.asarray([q is not None for q in questions], dtype=bool)
        # The rows a reply may name: the passage texts and vetted questions, never an example.
        self._rows = [np.flatnonzero(self._owners[:shown] == i) for i in range(len(self.passages))]
        self._questions = questions
        self._out_of_scope = store.matrix(list(out_of_scope))
        self._out_of_scope_examples = store.matrix(list(out_of_scope_examples))
        documents = [lexical_tokens(" ".join((p.section, p.text, *p.questions))) for p in self.passages]
        self._vocabulary = frozenset(t for d in documents for t in d)
        self._bm25 = bm25s.BM25(csc_backend="numpy")
        if self.passages:
            self._bm25.index(documents, show_progress=False)

    def lexical(self, question: str) -> np.ndarray:
        """BM25 per passage, scaled to [0, 1] by the best passage (all zeros when no word matches)."""
        tokens = [t for t in lexical_tokens(question) if t in self._vocabulary]
        if not tokens:
            return np.zeros(len(self.passages), dtype=np.float32)
        scores = np.asarray(self._bm25.get_scores(tokens), dtype=np.float32)
        best = float(scores.max())
        return scores / best if best > 0 else scores

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """Cosine of a normalised query vector to every passage text and vetted question."""
        return self._matrix @ query.astype(np.float32)

    def best_vetted_question(self, sims: np.ndarray) -> float:
        """The best cosine to any vetted question, from similarities() (-1 when there are none)."""
        return float(np.max(sims[self._is_question])) if self._is_question.any() else -1.0

    def best_out_of_scope(self, query: np.ndarray) -> float:
        """The best cosine to any known out-of-scope question (-1 when there are none)."""
        return float(np.max(self._out_of_scope @ query.astype(np.float32))) if len(self._out_of_scope) else -1.0

    def best_out_of_scope_example(self, query: np.ndarray) -> float:
        """Best cosine to a labelled out-of-scope question (-1 when there are none)."""
        if not len(self._out_of_scope_examples):
            return -1.0
        return float(np.max(self._out_of_scope_examples @ query.astype(np.float32)))

    @property
    def vetted_question_matrix(self) -> np.ndarray:
        return self._matrix[self._is_question]

    @property
    def out_of_scope_matrix(self) -> np.ndarray:
        return self._out_of_scope

    def search(
        self,
        query: np.ndarray,
        question: str,
        k: int = 3,
        sims: np.ndarray | None = None,
        out_of_scope: float | None = None,
        out_of_scope_example: float | None = None,
    ) -> Ranking:
        """The k best passages for a normalised query vector and its text, best first.

        `sims`, `out_of_scope`, `out_of_scope_example`: the query's similarities(),
        best_out_of_scope() and best_out_of_scope_example(), when the caller has them already."""
        query = query.astype(np.float32)
        if out_of_scope is None:
            out_of_scope = self.best_out_of_scope(query)
        if out_of_scope_example is None:
            out_of_scope_example = self.best_out_of_scope_example(query)
        out_of_scope = max(out_of_scope, out_of_scope_example)
        if not self.passages:
            return Ranking([], out_of_scope)
        if sims is None:
            sims = self.similarities(query)
        best = np.full(len(self.passages), -np.inf, dtype=np.float32)
        np.maximum.at(best, self._owners, sims)
        lexical = self.lexical(question)
        fused = best + self.lexical_weight * lexical

        order = np.argsort(-fused, kind="stable")[:k]
        hits = []
        for i in order:
            rows = self._rows[int(i)]
            row = rows[int(np.argmax(sims[rows]))]
            hits.append(
                Hit(self.passages[int(i)], float(best[i]), float(lexical[i]), float(fused[i]), self._questions[row])
            )
        return Ranking(hits, out_of_scope)


class ExemplarIndex:
    """Best cosine of a query to each curated exemplar set (crisis, refer, benign…)."""

    def __init__(self, exemplars: Mapping[str, Sequence[str]], store: VectorStore) -> None:
        groups = {name: list(texts) for name, texts in exemplars.items() if texts}
        # One product for all groups, then the best per group (~3,900 rows: 125 µs instead of 330).
        self._names = list(groups)
        self._stacked = store.matrix([t for texts in groups.values() for t in texts])
        bounds = np.cumsum([0] + [len(texts) for texts in groups.values()])
        self._starts = bounds[:-1]
        self._groups = {
            name: self._stacked[a:b] for name, a, b in zip(self._names, bounds[:-1], bounds[1:], strict=True)
        }

    def group(self, name: str) -> np.ndarray:
        """The vectors of one exemplar group (a view: no copy)."""
        return self._groups[name]

    def similarity(self, query: np.ndarray) -> dict[str, float]:
        if not self._names:
            return {}
        # float32 on both sides: a float64 query made numpy copy every matrix to float64 per call.
        best = np.maximum.reduceat(self._stacked @ query.astype(np.float32, copy=False), self._starts)
        return dict(zip(self._names, best.tolist(), strict=True))


class Discriminant:
    """Fisher's linear discriminant: one direction that best separates a group of texts (the crisis
    exemplars) from every other known text (refer and benign exemplars, vetted and out-of-scope
    questions), computed in closed form when the knowledge loads (~20 ms; nothing is stored).

    Nearest-neighbour similarity asks "is this close to one crisis message?"; the discriminant asks
    "which side of the line between crisis and ordinary text is it on?", so it also catches wording
    that sits between many crisis messages without being close to any one of them.
    `score()` is the projection minus the threshold: >= 0 when the query projects beyond the
    `quantile` of the other texts (0.998: only 1 in 500 known ordinary texts is past the line).
    `sentence_offset`: how much further the line sits for one sentence of a longer message (the
    `sentence_quantile` of the other texts; 0 without one)."""

    def __init__(
        self,
        group: np.ndarray,
        others: Sequence[np.ndarray],
        quantile: float,
        shrinkage: float = 0.03,
        sentence_quantile: float | None = None,
    ) -> None:
        others = [m for m in others if len(m)]
        if len(group) < 2 or sum(len(m) for m in others) < 2:
            raise ValueError("a discriminant needs at least two texts on each side")
        # Means and scatter accumulated matrix by matrix (no float64 copy of ~6,000 vectors: the
        # copies once added ~40 MB to the service's peak memory).
        group_mean, group_scatter = _moments([group])
        others_mean, others_scatter = _moments(others)
        within = (group_scatter / (len(group) - 1) + others_scatter / (sum(len(m) for m in others) - 1)) / 2
        # Shrink the covariance towards a multiple of the identity: 384 dimensions, ~1,000 examples.
        within += shrinkage * np.trace(within) / len(within) * np.eye(len(within))
        direction = np.linalg.solve(within, group_mean - others_mean).astype(np.float32)
        projections = np.concatenate([m @ direction for m in others])
        self.threshold = float(np.quantile(projections, quantile))
        self.sentence_offset = (
            max(0.0, float(np.quantile(projections, sentence_quantile)) - self.threshold)
            if sentence_quantile is not None
            else 0.0
        )
        self.direction = direction

    def score(self, query: np.ndarray) -> float:
        return float(query.astype(np.float32) @ self.direction) - self.threshold


def _moments(matrices: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean (float64) and scatter matrix sum((x - mean)(x - mean)^T) of the rows of all matrices."""
    count = sum(len(m) for m in matrices)
    mean = sum(m.sum(axis=0, dtype=np.float64) for m in matrices) / count
    scatter = sum((m.T @ m).astype(np.float64) for m in matrices) - count * np.outer(mean, mean)
    return mean, scatter
