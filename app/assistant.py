"""One question in, one reply out: safety gate, retrieval, decision, reply text.

This is the only path from a question to a reply; /v1/ask and `python -m app evaluate` both use
it. Reply text is assembled from vetted pieces only: a passage verbatim, or a fixed vetted
message, then the notice. Nothing is generated or reworded.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from app import knowledge as knowledge_files
from app import store as vector_store
from app.config import BASE_CALIBRATION, Settings
from app.embedder import Embedder, model_calibration, resolve_model_path
from app.knowledge import Knowledge, Passage
from app.retrieval import Discriminant, ExemplarIndex, Hit, PassageIndex, Ranking
from app.safety import GateDecision, Resource, SafetyGate, sentences
from app.spelling import SpellingCorrector, model_vocabulary

log = logging.getLogger(__name__)

SAFETY_FILE = "safety.yaml"
# After an answer, the next-best passage is offered as a related question, and further ones only
# when they matched nearly as well: a far-off suggestion reads as noise to an anxious patient.
RELATED_WITHIN = 0.2


@dataclass(frozen=True)
class Suggestion:
    passage_id: str
    question: str


@dataclass(frozen=True)
class Reply:
    reply_id: str
    kind: str  # answer | no_match | crisis | refer
    answer: str
    notice: str
    passage: Passage | None
    score: float | None
    suggestions: tuple[Suggestion, ...] = ()
    resources: tuple[Resource, ...] = ()
    # Which rule decided (gate rule, "retrieval.answer", "retrieval.below_threshold"…): for
    # metrics and tests. Never the question text.
    rule: str = ""
    ranked: tuple[str, ...] = field(default=(), repr=False)


def with_notice(body: str, notice: str) -> str:
    return f"{body}\n\n{notice}"


def index_entries(knowledge: Knowledge, gate: SafetyGate, today: date) -> list[vector_store.Entry]:
    """Every text the service compares questions against, for the vector store."""
    entries = []
    for passage in knowledge.served(today):
        entries.append(vector_store.Entry.of("passage", passage.id, passage.text))
        entries += [vector_store.Entry.of("question", passage.id, q) for q in passage.questions]
        entries += [vector_store.Entry.of("example", passage.id, q) for q in knowledge.examples.get(passage.id, ())]
    entries += [vector_store.Entry.of("out_of_scope", f"oos-{i}", q) for i, q in enumerate(knowledge.out_of_scope, 1)]
    entries += [
        vector_store.Entry.of("out_of_scope_example", f"oos-example-{i}", q)
        for i, q in enumerate(knowledge.out_of_scope_examples, 1)
    ]
    for group, texts in gate.exemplars.items():
        entries += [vector_store.Entry.of(group, f"{group}-{i}", t) for i, t in enumerate(texts, 1)]
    return entries


# A line through 384 dimensions needs hundreds of labelled crisis messages to mean anything: below
# this many (a knowledge base without safety_examples.yaml) the discriminant layer is off.
DISCRIMINANT_MIN_EXAMPLES = 300


def attach_speller(gate: SafetyGate, settings: Settings, knowledge: Knowledge, today: date) -> SpellingCorrector | None:
    """The query speller the service builds from the served knowledge, handed to the gate too: its
    known words decide which words are misspelt (fuzzy matching) and it mends the text the word lists
    read a second time. Also used by `python -m app crisis-words` to read crises as the service does."""
    if not settings.spelling_correction:
        return None
    passages = knowledge.served(today)
    speller = SpellingCorrector(
        [
            *(p.text for p in passages),
            *gate.exemplars.get("benign", []),
            *(q for p in passages for q in p.questions),
            *knowledge.out_of_scope,
            *gate.vocabulary,
        ],
        model_vocabulary(resolve_model_path(settings.model)),
    )
    gate.known_words = speller.known
    gate.mend = speller.correct
    return speller


class Assistant:
    def __init__(
        self,
        settings: Settings,
        knowledge: Knowledge,
        gate: SafetyGate,
        embedder: Embedder,
        store: vector_store.VectorStore,
    ) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.gate = gate
        self.embedder = embedder
        self.today = settings.current_date()
        self.passages = knowledge.served(self.today)
        # The thresholds belong to the model: a tuned model's cosines run higher than the base's.
        calibration = (
            dict(BASE_CALIBRATION) if embedder.model_id.startswith("fake:") else model_calibration(settings.model)
        )
        lexical_weight = (
            settings.lexical_weight if settings.lexical_weight is not None else calibration["lexical_weight"]
        )
        self.index = PassageIndex(
            self.passages,
            store,
            knowledge.out_of_scope,
            lexical_weight,
            knowledge.examples,
            knowledge.out_of_scope_examples,
        )
        self.exemplars = ExemplarIndex(gate.exemplars, store)
        # Every vector the service needs is copied out: free the whole store (~24 MB) before the
        # discriminant and the speller allocate their own, which lowers the start-up peak.
        del store
        self.crisis_discriminant = (
            Discriminant(
                self.exemplars.group("crisis"),
                [
                    *(self.exemplars.group(g) for g in ("refer", "benign") if gate.exemplars.get(g)),
                    self.index.vetted_question_matrix,
                    self.index.out_of_scope_matrix,
                ],
                gate.crisis.discriminant_quantile,
                sentence_quantile=gate.crisis.discriminant_sentence_quantile,
            )
            if gate.crisis.discriminant_quantile is not None
            and len(gate.exemplars.get("crisis", [])) >= DISCRIMINANT_MIN_EXAMPLES
            else None
        )
        # A crisis exemplar of several sentences ("do i need a driver? not that it matters, this is my
        # last try") also holds ordinary ones: a single sentence is compared only with the crisis
        # exemplars that are one sentence, or "so do you require a driver?" would look like a crisis.
        self._one_sentence_crisis = np.asarray([not sentences(t) for t in gate.exemplars.get("crisis", [])], dtype=bool)
        self.decline_text = knowledge.messages["no_match"].text
        self.answer_threshold = (
            settings.answer_threshold if settings.answer_threshold is not None else calibration["answer_threshold"]
        )
        self.out_of_scope_margin = (
            settings.out_of_scope_margin
            if settings.out_of_scope_margin is not None
            else calibration["out_of_scope_margin"]
        )
        if "crisis_semantic_margin" in calibration:
            gate.crisis = dataclasses.replace(gate.crisis, semantic_margin=calibration["crisis_semantic_margin"])
        if "crisis_semantic_threshold" in calibration:
            gate.crisis = dataclasses.replace(gate.crisis, semantic_threshold=calibration["crisis_semantic_threshold"])
        if "refer_lexical_guard" in calibration:
            gate.refer = dataclasses.replace(gate.refer, lexical_guard=calibration["refer_lexical_guard"])
        self.speller = attach_speller(gate, settings, knowledge, self.today)

    def gate_similarity(
        self,
        query: np.ndarray,
        sims: np.ndarray | None = None,
        out_of_scope: float | None = None,
        out_of_scope_example: float | None = None,
    ) -> dict[str, float]:
        """Best cosine of the query to each exemplar group, for the gate's semantic layer.

        Every vetted question is benign by definition (a question near one of them is not referred
        or escalated), so the benign score is also the best vetted-question match — read from the
        retrieval similarities (`sims`, computed once per question) rather than multiplied twice."""
        similarity = self.exemplars.similarity(query)
        vetted = self.index.best_vetted_question(self.index.similarities(query) if sims is None else sims)
        similarity["benign"] = max(similarity.get("benign", -1.0), vetted)
        if out_of_scope is None:
            out_of_scope = self.index.best_out_of_scope(query)
        similarity["out_of_scope"] = out_of_scope
        # Patients' labelled off-topic questions ("what's 17 times 23", "sing me a song") are not
        # crises either: the crisis semantic layer counts them as ordinary text (docs/safety.md).
        if out_of_scope_example is None:
            out_of_scope_example = self.index.best_out_of_scope_example(query)
        similarity["out_of_scope_example"] = out_of_scope_example
        if self.crisis_discriminant is not None:
            similarity["crisis_discriminant"] = self.crisis_discriminant.score(query)
            similarity["ordinary"] = max(similarity["benign"], out_of_scope)
        return similarity

    def query_text(self, question: str) -> str:
        """The text matched against the knowledge base: the question with its spelling mended."""
        return self.speller.correct(question) if self.speller else question

    def encode_texts(self, question: str) -> list[str]:
        """What to encode for a trimmed question: the whole text, then each of its sentences when
        it has several (the gate screens them one by one). One encode call (or one micro-batch)."""
        return [self.query_text(question), *(self.query_text(s) for s in sentences(question))]

    def sentence_similarity(self, vector: np.ndarray) -> dict[str, float]:
        """gate_similarity() for one sentence of a longer message, made stricter for crisis."""
        similarity = self.gate_similarity(vector)
        if self._one_sentence_crisis.any():
            crisis = self.exemplars.group("crisis") @ vector.astype(np.float32, copy=False)
            similarity["crisis"] = float(crisis[self._one_sentence_crisis].max())
        # A lone sentence says less than a message: it must be clearly nearer a crisis message
        # than any benign *or refer* one ("My elderly father is starting treatment." sits between
        # "my elderly father says he wants to die" and "Am I too old for this treatment?").
        similarity["benign"] = max(similarity.get("benign", -1.0), similarity.get("refer", -1.0))
        # And past the discriminant's sentence line (`sentence_quantile`, a little further out).
        if self.crisis_discriminant is not None and "crisis_discriminant" in similarity:
            similarity["crisis_discriminant"] -= self.crisis_discriminant.sentence_offset
        return similarity

    def screen(
        self,
        question: str,
        query: np.ndarray,
        sentence_queries: np.ndarray | None = None,
        sims: np.ndarray | None = None,
        out_of_scope: float | None = None,
        out_of_scope_example: float | None = None,
    ) -> GateDecision:
        """The safety gate's decision: the whole message first; if it passes, each sentence.

        `sentence_queries`: the vectors of encode_texts(question)[1:], in order (encoded here when
        the caller has none: a blocking call)."""
        decision = self.gate.check(question, self.gate_similarity(query, sims, out_of_scope, out_of_scope_example))
        parts = sentences(question)
        if decision.kind != "pass" or not parts:
            return decision
        if sentence_queries is None:
            sentence_queries = self.embedder.query_embed([self.query_text(s) for s in parts])
        words_ordinary = self.gate.reads_ordinary(question)
        for sentence, vector in zip(parts, sentence_queries, strict=True):
            similarity = self.sentence_similarity(vector)
            part = self.gate.check(sentence, similarity, sentence=True, words_ordinary=words_ordinary)
            if part.kind == "crisis":
                # "crisis.semantic" -> "crisis.sentence.semantic": which layer fired, and on a sentence.
                return GateDecision("crisis", "crisis.sentence." + part.rule.split(".", 1)[1])
        return decision

    def screen_text(self, question: str) -> GateDecision:
        """screen() for a question not yet encoded (evaluation and tests): the same texts, encoded
        in one blocking call, as the service encodes in one micro-batch."""
        question = question.strip()
        vectors = self.embedder.query_embed(self.encode_texts(question))
        return self.screen(question, vectors[0], vectors[1:])

    @classmethod
    def load(cls, settings: Settings, embedder: Embedder, log_line: Callable[[str], None] = log.warning) -> Assistant:
        """Validate knowledge, load (or rebuild) the index. Raises InvalidKnowledge / StaleIndex."""
        knowledge = knowledge_files.load(settings.knowledge_dir)
        gate = SafetyGate.load(settings.knowledge_dir / SAFETY_FILE)
        wanted = index_entries(knowledge, gate, settings.current_date())
        # No local name for the store: __init__ holds its only reference and drops it as soon as the
        # matrices are copied out (the whole store and the copies together set the peak memory).
        return cls(
            settings,
            knowledge,
            gate,
            embedder,
            vector_store.ensure(embedder, wanted, settings.embeddings_dir, settings.stale_index, log_line),
        )

    def ask(self, question: str) -> Reply:
        question = question.strip()
        vectors = self.embedder.query_embed(self.encode_texts(question))
        return self.reply(question, vectors[0], vectors[1:])

    def reply(self, question: str, query: np.ndarray, sentence_queries: np.ndarray | None = None) -> Reply:
        """The reply to a trimmed question whose vectors were already computed (batching): `query`
        for encode_texts(question)[0], `sentence_queries` for the rest."""
        notice = self.settings.notice
        # Computed once per question, read by both the gate and retrieval.
        sims = self.index.similarities(query)
        out_of_scope = self.index.best_out_of_scope(query)
        out_of_scope_example = self.index.best_out_of_scope_example(query)
        decision = self.screen(question, query, sentence_queries, sims, out_of_scope, out_of_scope_example)
        if decision.kind == "crisis":
            body, resources = self.gate.crisis_reply(self.settings.clinic_name, self.settings.clinic_phone)
            return Reply(
                _new_id(),
                "crisis",
                with_notice(body, notice),
                notice,
                None,
                None,
                resources=tuple(resources),
                rule=decision.rule,
            )
        if decision.kind == "refer":
            body = self.gate.refer_reply()
            return Reply(_new_id(), "refer", with_notice(body, notice), notice, None, None, rule=decision.rule)

        ranking = self.index.search(
            query,
            self.query_text(question),
            k=max(self.settings.max_suggestions + 1, 3),
            sims=sims,
            out_of_scope=out_of_scope,
            out_of_scope_example=out_of_scope_example,
        )
        # A passage whose review fell due after this index was built is never served or suggested.
        today = self.settings.current_date()
        if any(not h.passage.servable(today) for h in ranking.hits):
            ranking = Ranking([h for h in ranking.hits if h.passage.servable(today)], ranking.out_of_scope)
        hits = ranking.hits
        ranked = tuple(h.passage.id for h in hits)
        verdict = self._verdict(ranking)
        if verdict == "retrieval.answer":
            top = hits[0]
            return Reply(
                _new_id(),
                "answer",
                with_notice(top.passage.text, notice),
                notice,
                top.passage,
                round(top.similarity, 4),
                self._suggest(hits[1:2] + [h for h in hits[2:] if h.similarity >= top.similarity - RELATED_WITHIN]),
                rule=verdict,
                ranked=ranked,
            )
        score = round(hits[0].similarity, 4) if hits else None
        return Reply(
            _new_id(),
            "no_match",
            with_notice(self.decline_text, notice),
            notice,
            None,
            score,
            self._suggest(hits),
            rule=verdict,
            ranked=ranked,
        )

    def _verdict(self, ranking: Ranking) -> str:
        """Answer only when the best passage is close, clearly ahead, and not out of scope."""
        if not ranking.hits:
            return "retrieval.empty"
        top = ranking.hits[0]
        if top.similarity < self.answer_threshold:
            return "retrieval.below_threshold"
        if ranking.out_of_scope >= top.similarity + self.out_of_scope_margin:
            return "retrieval.out_of_scope"
        if len(ranking.hits) > 1 and top.rank_score - ranking.hits[1].rank_score < self.settings.answer_margin:
            return "retrieval.ambiguous"
        return "retrieval.answer"

    def _suggest(self, hits: list[Hit]) -> tuple[Suggestion, ...]:
        suggestions = []
        for hit in hits:
            question = hit.matched_question or (hit.passage.questions[0] if hit.passage.questions else None)
            if question:
                suggestions.append(Suggestion(hit.passage.id, question))
        return tuple(suggestions[: self.settings.max_suggestions])

    def starters(self, count: int = 4) -> tuple[Suggestion, ...]:
        """Opening suggestions: the first vetted question of the first FAQ-style passages."""
        chosen = [p for p in self.passages if p.questions]
        chosen.sort(key=lambda p: (not p.id.startswith("faq-"), self.passages.index(p)))
        return tuple(Suggestion(p.id, p.questions[0]) for p in chosen[:count])


def _new_id() -> str:
    return str(uuid.uuid4())
