"""Retrieval: every numpy operation of the service lives here.

Vectors are L2-normalised, so a dot product is a cosine similarity in [-1, 1].
A passage is represented by its own text and each of its vetted alternate questions; it scores
the best of those (a patient's question usually looks more like another question than like
the answer paragraph).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.knowledge import Passage
from app.store import VectorStore


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    # The vetted question that matched best, or None when the passage text itself did.
    matched_question: str | None


class PassageIndex:
    """Dense search over the served passages and their vetted alternate questions."""

    def __init__(self, passages: Sequence[Passage], store: VectorStore) -> None:
        self.passages = tuple(passages)
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
        self._matrix = store.matrix(texts)
        self._owners = np.asarray(owners, dtype=np.int64)
        self._questions = questions

    def search(self, query: np.ndarray, k: int = 3) -> list[Hit]:
        """The k best passages for a normalised query vector, best first."""
        if not self.passages:
            return []
        sims = self._matrix @ query.astype(np.float32)
        best = np.full(len(self.passages), -np.inf, dtype=np.float32)
        np.maximum.at(best, self._owners, sims)
        order = np.argsort(-best, kind="stable")[:k]
        hits = []
        for i in order:
            rows = np.flatnonzero(self._owners == i)
            row = rows[int(np.argmax(sims[rows]))]
            hits.append(Hit(self.passages[int(i)], float(best[i]), self._questions[row]))
        return hits


class ExemplarIndex:
    """Best cosine of a query to each curated exemplar set (crisis, refer, benign…)."""

    def __init__(self, exemplars: Mapping[str, Sequence[str]], store: VectorStore) -> None:
        self._groups = {name: store.matrix(list(texts)) for name, texts in exemplars.items() if texts}

    def similarity(self, query: np.ndarray) -> dict[str, float]:
        return {name: float(np.max(matrix @ query)) for name, matrix in self._groups.items()}
