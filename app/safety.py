"""The safety gate: crisis and emergencies, then personal medical advice, before any retrieval.

Layered and explainable; nothing is generated:
1. normalise the text (unicode, case, apostrophes, look-alike digits, repeated letters);
2. remove curated idioms ("dying to know", "the wait is killing me") so they cannot trip a rule;
3. crisis phrases (exact, then fuzzy for misspellings) and crisis patterns, on the text as
   written and on the service's spelling-mended text;
4. refer patterns (the patient's own medications, doses, eligibility, symptoms);
5. semantic similarity of the question to curated crisis / refer exemplars, re-using the one
   query embedding (computed by app.retrieval), as a safety net for phrasings no list has;
   for crisis also a linear discriminant of that embedding (crisis exemplars against every
   ordinary text), unless a figure of speech was found;
6. the crisis word model (app/crisis_words.py): a linear model of the words and word pairs of
   crisis messages, for a crisis told in an ordinary frame; whole messages only. Its `veto`: on a
   message whose words score below every labelled crisis, the embedding layers of 5 and 7 do not
   decide crisis on their own (the word lists of 3 always do);
7. a message of several sentences that passed as a whole is screened again sentence by sentence
   (`sentences()`): one embedding of "where do I park? I'm in my car with the hose in the window"
   is mostly about parking, and a crisis buried in an ordinary question must not be averaged away.
The lexical layers alone catch every crisis case in tests/safety_cases.yaml, so safety never
depends on the model. All lists and messages are data in knowledge/safety.yaml.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from rapidfuzz import fuzz, process

from app.crisis_words import WORDS_FILE, CrisisWords
from app.errors import InvalidKnowledge, KnowledgeError
from app.knowledge import _review_fields, read_yaml

Kind = Literal["crisis", "refer", "pass"]
# Labelled patient messages used as more exemplars for the semantic layer (docs/safety.md).
EXAMPLES_FILE = "safety_examples.yaml"
IDIOM_STRICTNESS = 0.25
# A linear score is wild on texts with almost no words ("....." scored as a crisis); the phrase
# lists cover the short crisis messages ("kms", "want to die"). It is as wild on keyboard mash with
# no word any dictionary knows ("qwpoeiru zzz mnb" scored as a crisis): such a text must hold one
# known word. (Heavily misspelt and Spanish crises keep a third or more of their words known.)
DISCRIMINANT_MIN_WORDS = 3
# A short message (at most this many words) must also clear the semantic crisis margin against the
# known out-of-scope questions: "do you take apple pay", "write me a poem about the sea" and "what is
# 17 times 23" sat nearer a crisis message than any benign one and got the crisis reply. For every
# message this cost 3 read crises hidden in long logistics questions (an account deletion, a refund,
# an autopsy); up to 8 words it cost none (session 12, docs/safety.md).
SHORT_WORDS = 8

# Sentence screening: a sentence of fewer words joins the next one ("I can't. Not again."), and a
# long message is cut into at most this many runs of consecutive sentences (one encode each).
SENTENCE_MIN_WORDS = 3
MAX_SENTENCES = 8
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\s*\n+\s*")

NUMBERS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
    "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30",
    "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100",
}  # fmt: skip
NUMBER_WORDS = re.compile(r"(?<= )(" + "|".join(NUMBERS) + r")(?= )")

LOOKALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s"})
# A number glued to a unit or an ordinal ("50mg", "10am", "3rd", "2x") is a number, not look-alike
# letters: read as "50 mg", where "50mg" had become "somg" and no dose pattern saw it (session 20).
NUMBER_UNIT = re.compile(
    r"(?<![a-z0-9@$])(\d+(?:\.\d+)?)"
    r"(mg|mgs|mcg|ml|g|kg|kgs|lb|lbs|cm|mm|ft|am|pm|h|hr|hrs|min|mins|x|k|st|nd|rd|th|s|yo|yr|yrs)(?![a-z0-9@$])"
)
APOSTROPHES = re.compile(r"[\u2019\u2018\u02bc`´']")


def normalise(text: str) -> str:
    """Lower-case ASCII words separated by single spaces; runs of 3+ letters cut to 2."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = APOSTROPHES.sub("", text)
    # "!" or "|" between letters stands for an i ("k!ll", "su|cide"), and so does a censoring "*"
    # ("k*ll", "su*cide": the vowel most often starred in these words).
    text = re.sub(r"(?<=[a-z])[!|*](?=[a-z])", "i", text)
    text = NUMBER_UNIT.sub(r"\1 \2", text)
    # Digits inside words are look-alike letters ("k1ll", "d1e"); stand-alone numbers stay.
    text = re.sub(
        r"[a-z]*[0-9@$][a-z0-9@$]*",
        lambda m: m.group(0).translate(LOOKALIKES) if re.search(r"[a-z]", m.group(0)) else m.group(0),
        text,
    )
    text = re.sub(r"[^a-z0-9]+", " ", text)
    text = re.sub(r"([a-z])\1{2,}", r"\1\1", text)
    # Counts of ten and more as digits, so "took twenty of my trazodone" reads like "took 20 of my…".
    text = NUMBER_WORDS.sub(lambda m: NUMBERS[m.group(1)], f" {text.strip()} ")
    return text


def sentences(text: str) -> list[str]:
    """The message's sentences, for screening one at a time; [] when it is a single sentence.

    Fragments under SENTENCE_MIN_WORDS words join the next sentence (or the last one), and a
    message of more than MAX_SENTENCES sentences is cut into that many runs of neighbours."""
    parts: list[str] = []
    pending = ""
    for piece in SENTENCE_END.split(text.strip()):
        pending = f"{pending} {piece}".strip() if pending else piece.strip()
        if len(pending.split()) >= SENTENCE_MIN_WORDS:
            parts.append(pending)
            pending = ""
    if pending:
        if parts:
            parts[-1] = f"{parts[-1]} {pending}"
        else:
            parts.append(pending)
    if len(parts) > MAX_SENTENCES:
        size = -(-len(parts) // MAX_SENTENCES)
        parts = [" ".join(parts[i : i + size]) for i in range(0, len(parts), size)]
    return parts if len(parts) > 1 else []


def squeeze(text: str) -> str:
    """Every run of a repeated letter cut to one: 'kiiill' and 'kill' both become 'kil'."""
    return re.sub(r"([a-z])\1+", r"\1", text)


@dataclass(frozen=True)
class Resource:
    label: str
    href: str
    kind: str  # call | text | chat | web


@dataclass(frozen=True)
class SafetyMessage:
    text: str
    reviewed_by: str
    reviewed_on: date
    review_due: date


@dataclass(frozen=True)
class GateDecision:
    kind: Kind
    # Which rule fired, from the curated lists ("crisis.phrase:end it all"); never the question.
    rule: str


@dataclass(frozen=True)
class _Rules:
    phrases: tuple[str, ...]  # normalised
    patterns: tuple[re.Pattern[str], ...]
    semantic_threshold: float
    semantic_margin: float
    # Squeezed phrases of 7+ letters, by word count, for fuzzy matching of misspellings.
    fuzzy: dict[int, list[str]] = field(default_factory=dict)
    # The phrases as sets (as written, and squeezed), and their lengths in words.
    phrase_set: frozenset[str] = frozenset()
    squeezed_set: frozenset[str] = frozenset()
    lengths: tuple[int, ...] = ()
    # Fisher discriminant (crisis only): fires past the given quantile of ordinary texts' scores,
    # when the best crisis exemplar also beats the best ordinary text by `discriminant_margin`.
    discriminant_quantile: float | None = None
    discriminant_margin: float = 0.0
    # For one sentence of a longer message, the line sits at this (higher) quantile: a lone sentence
    # says less than a message (session 22, docs/safety.md). None: the message's line.
    discriminant_sentence_quantile: float | None = None
    # Refer only, set by a model's calibration: a refer word or pattern ("my pills") is overruled
    # when the whole message is nearer an ordinary text than any refer message by this much.
    lexical_guard: float | None = None
    # Refer only: a question about the treatment in general, told with one's own medication history
    # ("I've been on three SSRIs, does ketamine also take weeks?"). A refer word or pattern is
    # overruled when one of `general` matches and no word of `personal` ("safe", "stop", "dose")
    # asks for advice. The semantic refer layer still reads the message.
    general: tuple[re.Pattern[str], ...] = ()
    personal: re.Pattern[str] | None = None
    # Refer only: patterns that ask for oneself and that neither `lexical_guard` nor `general`
    # overrules ("do I qualify if…", "can I get a longer infusion?"): near a vetted question in
    # wording, personal in what they ask (docs/safety.md, session 18).
    firm: tuple[re.Pattern[str], ...] = ()


@dataclass
class SafetyGate:
    crisis_message: SafetyMessage
    clinic_line: str
    resources: tuple[Resource, ...]
    refer_message: SafetyMessage
    idioms: tuple[re.Pattern[str], ...]
    crisis: _Rules
    refer: _Rules
    fuzzy_threshold: float
    exemplars: dict[str, list[str]] = field(default_factory=dict)
    # Correctly spelt words (set by the service from the model's vocabulary); empty: always fuzzy.
    known_words: frozenset[str] = frozenset()
    # The curated lists' and phrases' terms (medication names, conditions, crisis words): given to
    # the query speller so it never "corrects" "seroquel" into "sequel" or "suiside" into "subside".
    vocabulary: tuple[str, ...] = ()
    # The service's query speller (set by the service): the crisis word lists also read its output.
    mend: Callable[[str], str] | None = None
    # The crisis word model (app/crisis_words.py), from crisis_words.json beside this file when
    # safety.yaml asks for it (`crisis.words`); made for `words_quantile`.
    words_quantile: float | None = None
    words: CrisisWords | None = None

    @classmethod
    def load(cls, path: Path, words: bool = True) -> SafetyGate:
        """The gate from safety.yaml, its examples beside it, and (`words`) its crisis word model."""
        problems: list[KnowledgeError] = []
        raw = read_yaml(path, problems)
        examples_path = path.with_name(EXAMPLES_FILE)
        examples = read_yaml(examples_path, problems) if examples_path.exists() else None
        if problems:
            raise problems[0]
        try:
            gate = _parse(path, raw)
            if examples is not None:
                for group, texts in _parse_examples(examples_path, examples).items():
                    gate.exemplars[group] = [*gate.exemplars.get(group, []), *texts]
        except InvalidKnowledge as e:
            raise e.problems[0] from e
        # A knowledge folder without the file (a test's, a new clinic's before its first
        # `python -m app crisis-words`) runs the other layers; the shipped one has it (tests).
        words_path = path.with_name(WORDS_FILE)
        if words and gate.words_quantile is not None and words_path.exists():
            gate.words = CrisisWords.load(words_path, gate.words_quantile)
        return gate

    def check(
        self,
        question: str,
        similarity: Mapping[str, float] | None = None,
        sentence: bool = False,
        words_ordinary: bool | None = None,
    ) -> GateDecision:
        """The decision for a message, or (`sentence`) for one sentence of a longer message, which
        the crisis word model does not read: it was chosen and measured on whole messages. For a
        sentence, `words_ordinary` is the whole message's `reads_ordinary()`."""
        normalised = normalise(question)
        score = None if self.words is None or sentence else self.words.score(normalised)
        if words_ordinary is None:
            words_ordinary = score is not None and self.words is not None and score < self.words.veto
        text, squeezed, misspelt, idiomatic, words = self._words(normalised)
        # The embedding still sees a removed figure of speech ("dead to the world"): when one was
        # found, the semantic crisis layer must clear a higher bar.
        strictness = IDIOM_STRICTNESS if idiomatic else 0.0
        # Crisis outranks refer at every layer: a crisis that also names a medication is a crisis.
        rule = self._lexical("crisis", self.crisis, text, squeezed, misspelt, fuzzy=True)
        if not rule and self.mend is not None:
            # The word lists again on the spelling-mended text ("thinkng about jumpin off the brige",
            # "took like 30 of my sleping pils"): misspellings beyond the fuzzy matcher's reach.
            mended = normalise(self.mend(question))
            if mended != normalised:
                found = self._lexical("crisis", self.crisis, *self._words(mended)[:3], fuzzy=True)
                rule = found and "crisis.spelling." + found.split(".", 1)[1]
        # The embedding layers (semantic, discriminant) do not decide alone on a message whose words
        # score below every labelled crisis (docs/safety.md, session 15): "My husband is nervous about
        # pain." sits near a one-sentence crisis exemplar; its words are an ordinary message's.
        embedding_decides = not words_ordinary
        if rule or (
            embedding_decides
            and self._semantic(self.crisis, "crisis", similarity, strictness, short=words <= SHORT_WORDS)
        ):
            return GateDecision("crisis", rule or "crisis.semantic")
        if (
            embedding_decides
            and not idiomatic
            and words >= DISCRIMINANT_MIN_WORDS
            and self._knows_a_word(text)
            and self._discriminant(self.crisis, similarity)
        ):
            return GateDecision("crisis", "crisis.discriminant")
        # The word model reads the figures of speech too: it learnt them from the labelled ones, and
        # what is left once one is taken out ("my grandfather [died thirty years ago] today") reads
        # as a crisis out of context.
        if score is not None and self.words is not None and score >= self.words.threshold:
            return GateDecision("crisis", "crisis.words")
        firm = next((p for p in self.refer.firm if p.search(text)), None)
        if firm is not None:
            return GateDecision("refer", f"refer.firm:{firm.pattern[:40]}")
        rule = self._lexical("refer", self.refer, text, squeezed, misspelt, fuzzy=False)
        if rule and (self._reads_as_ordinary(self.refer, similarity) or self._general(self.refer, text)):
            rule = None
        if rule or self._semantic(self.refer, "refer", similarity):
            return GateDecision("refer", rule or "refer.semantic")
        return GateDecision("pass", "pass")

    def reads_ordinary(self, question: str) -> bool:
        """The crisis word model scores the message below every labelled crisis (its `veto`): the
        embedding layers alone do not send it, or any of its sentences, to the crisis reply."""
        return self.words is not None and self.words.reads_ordinary(normalise(question))

    def _words(self, normalised: str) -> tuple[str, str, bool, bool, int]:
        """The normalised text with idioms removed, the same with unknown words squeezed, whether a
        word is unknown, whether an idiom was removed, and how many words are left."""
        text = normalised
        idiomatic = False
        for idiom in self.idioms:
            text, found = idiom.subn(" ", text)
            idiomatic = idiomatic or found > 0
        # Squeeze repeated letters only in words no dictionary knows ("kiiill" -> "kil"), so that a
        # real word is never folded into another one ("noose" must not become "nose").
        words = text.split()
        unknown = [bool(self.known_words) and w not in self.known_words for w in words]
        if not self.known_words:
            unknown = [True] * len(words)
        squeezed = " ".join(squeeze(w) if u else w for w, u in zip(words, unknown, strict=True))
        return text, squeezed, any(unknown), idiomatic, len(words)

    @staticmethod
    def _semantic(
        rules: _Rules, kind: str, similarity: Mapping[str, float] | None, strictness: float = 0.0, short: bool = False
    ) -> bool:
        """Past the threshold and the margin over the best benign text (for crisis, over the best
        labelled off-topic question too; for a `short` crisis candidate, over the best vetted
        out-of-scope question as well), and no refer message nearer."""
        if not similarity:
            return False
        score = similarity.get(kind, -1.0) - strictness
        ordinary = similarity.get("benign", -1.0)
        if short:
            ordinary = max(ordinary, similarity.get("out_of_scope", -1.0))
        if kind == "crisis":
            # Patients' labelled off-topic questions, at every length (docs/safety.md, session 13).
            ordinary = max(ordinary, similarity.get("out_of_scope_example", -1.0))
        # A question nearer a refer message than any crisis message ("should I skip my trazodone the
        # night before?") is not a semantic crisis; a stated crisis is still caught by the lexical layers.
        rival = similarity.get("refer", -1.0) if kind == "crisis" else -1.0
        return score >= rules.semantic_threshold and score - ordinary >= rules.semantic_margin and score > rival

    @staticmethod
    def _reads_as_ordinary(rules: _Rules, similarity: Mapping[str, float] | None) -> bool:
        """A refer word in a question the embedding reads as an ordinary one about the treatment
        ("how quick does it work, do i have to wait weeks like with my pills?"): nearer a vetted
        question or benign message than any refer message by the model's `lexical_guard`."""
        if not similarity or rules.lexical_guard is None:
            return False
        return similarity.get("benign", -1.0) - similarity.get("refer", -1.0) >= rules.lexical_guard

    def _knows_a_word(self, text: str) -> bool:
        return not self.known_words or any(w in self.known_words for w in text.split())

    @staticmethod
    def _general(rules: _Rules, text: str) -> bool:
        """A general question about the treatment (`general`), asking no personal advice (`personal`)."""
        if not any(p.search(text) for p in rules.general):
            return False
        return rules.personal is None or not rules.personal.search(text)

    @staticmethod
    def _discriminant(rules: _Rules, similarity: Mapping[str, float] | None) -> bool:
        """Past the crisis discriminant's line, and nearer a crisis exemplar than any ordinary text."""
        if not similarity or rules.discriminant_quantile is None or "crisis_discriminant" not in similarity:
            return False
        nearest_ordinary = similarity.get("ordinary", similarity.get("benign", -1.0))
        return (
            similarity["crisis_discriminant"] >= 0
            and similarity.get("crisis", -1.0) - nearest_ordinary >= rules.discriminant_margin
        )

    def _lexical(self, kind: str, rules: _Rules, text: str, squeezed: str, misspelt: bool, fuzzy: bool) -> str | None:
        # Every phrase is a run of whole words: look up the question's word n-grams in a set, as
        # written and, when a word is unknown, with repeated letters squeezed.
        plain = text.split()
        for words, phrase_set in ((plain, rules.phrase_set), (squeezed.split(), rules.squeezed_set)):
            for n in rules.lengths:
                for i in range(len(words) - n + 1):
                    if phrase_set is rules.squeezed_set and words[i : i + n] == plain[i : i + n]:
                        continue  # only grams with a squeezed (unknown) word are looked up squeezed
                    gram = " ".join(words[i : i + n])
                    if gram in phrase_set:
                        return f"{kind}.phrase:{gram}"
            if not misspelt:
                break
        for pattern in rules.patterns:
            if pattern.search(text):
                return f"{kind}.pattern:{pattern.pattern[:40]}"
        if fuzzy and misspelt:
            # Only a question with a word no dictionary knows can hold a misspelt phrase.
            words = squeezed.split()
            # One C-level scan of the phrase list per window of the question (rapidfuzz.process).
            for n, targets in rules.fuzzy.items():
                for i in range(len(words) - n + 1):
                    window = " ".join(words[i : i + n])
                    match = process.extractOne(window, targets, scorer=fuzz.ratio, score_cutoff=self.fuzzy_threshold)
                    if match:
                        return f"{kind}.fuzzy:{match[0]}"
        return None

    def crisis_reply(self, clinic_name: str, clinic_phone: str | None) -> tuple[str, list[Resource]]:
        text, resources = self.crisis_message.text, list(self.resources)
        if clinic_phone:
            text = f"{text}\n\n{self.clinic_line.format(clinic_name=clinic_name, clinic_phone=clinic_phone)}"
            digits = re.sub(r"[^0-9+]", "", clinic_phone)
            resources.append(Resource(f"Call {clinic_name}", f"tel:{digits}", "call"))
        return text, resources

    def refer_reply(self) -> str:
        return self.refer_message.text


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """re.compile, kept for the life of the process. `serve` checks the knowledge files and the
    service then loads them again; re's own cache holds 512 patterns, fewer than the gate and the
    libraries use, so the second load compiled most of ~500 patterns again (~0.2 s of start-up)."""
    return re.compile(pattern)


def _word_alternation(words: Iterable[str]) -> str:
    """One pattern matching any of the (normalised) words or phrases as whole words."""
    return r"\b(?:" + "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)) + r")\b"


def _parse(path: Path, raw: Any) -> SafetyGate:
    file = str(path)

    def fail(entry: str | None, name: str | None, problem: str) -> KnowledgeError:
        return KnowledgeError(file, entry, name, problem)

    if not isinstance(raw, dict):
        raise fail(None, None, "must be a mapping with crisis, refer and idioms")

    def section(name: str) -> dict[str, Any]:
        value = raw.get(name)
        if not isinstance(value, dict):
            raise fail(name, None, "is missing")
        return value

    def message(entry: str, value: dict[str, Any]) -> SafetyMessage:
        if value.get("status") != "approved":
            raise fail(entry, "status", "must be 'approved' for a message the service sends")
        text = value.get("message")
        if not isinstance(text, str) or not text.strip():
            raise fail(entry, "message", "is required")
        by, on, due = value.get("reviewed_by"), value.get("reviewed_on"), value.get("review_due")
        if not isinstance(by, str) or not by.strip():
            raise fail(entry, "reviewed_by", "is required")
        for name, when in (("reviewed_on", on), ("review_due", due)):
            if not isinstance(when, date):
                raise fail(entry, name, f"must be a date like 2027-05-31, not {when!r}")
        return SafetyMessage(text.strip(), by, on, due)  # type: ignore[arg-type]

    def strings(entry: str, name: str, value: Any, required: bool = True, strip: bool = True) -> list[str]:
        """The list's texts. Regular expressions keep their spaces: a leading " " is what anchors
        a pattern at the start of a word (the normalised text starts and ends with a space)."""
        if value is None and not required:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail(entry, name, "must be a list of text")
        return [v.strip() if strip else v for v in value]

    def compile_all(entry: str, name: str, values: Iterable[str], substitutions: Mapping[str, str]) -> tuple:
        compiled = []
        for value in values:
            for key, alternatives in substitutions.items():
                value = value.replace("{" + key + "}", alternatives)
            try:
                compiled.append(_compiled(value))
            except re.error as e:
                raise fail(entry, name, f"has a pattern that is not a valid regular expression ({e})") from e
        return tuple(compiled)

    def quantile(entry: str, name: str, value: Any, shape: str) -> float | None:
        """The quantile of a `{quantile: 0.5–0.999…, …}` setting (discriminant, word model), or None."""
        if value is None:
            return None
        found = value.get("quantile") if isinstance(value, dict) else None
        if not isinstance(found, float) or not 0.5 <= found < 1:
            raise fail(entry, name, f"must be {shape}")
        return found

    def rules(entry: str, value: dict[str, Any], substitutions: Mapping[str, str]) -> _Rules:
        phrases = tuple(normalise(p).strip() for p in strings(entry, "phrases", value.get("phrases")))
        patterns = compile_all(
            entry, "patterns", strings(entry, "patterns", value.get("patterns"), False, strip=False), substitutions
        )
        semantic = value.get("semantic") or {}
        general = value.get("general") or {}
        if not isinstance(general, dict):
            raise fail(entry, "general", "must be {patterns: [...], personal: [...]}")
        personal = [normalise(w).strip() for w in strings(entry, "general", general.get("personal"), False)]
        discriminant = value.get("discriminant")
        shape = "{quantile: 0.5–0.999…, sentence_quantile: quantile–0.999…, margin: number}"
        discriminant_quantile = quantile(entry, "discriminant", discriminant, shape)
        sentence_quantile = None
        if discriminant_quantile is not None and isinstance(discriminant, dict):
            sentence_quantile = discriminant.get("sentence_quantile")
            if sentence_quantile is not None and (
                not isinstance(sentence_quantile, float) or not discriminant_quantile <= sentence_quantile < 1
            ):
                raise fail(entry, "discriminant", f"must be {shape}")
        fuzzy: dict[int, list[str]] = {}
        squeezed = tuple(squeeze(p) for p in phrases)
        for phrase in squeezed:
            if len(phrase) >= 7:
                fuzzy.setdefault(len(phrase.split()), []).append(phrase)
        return _Rules(
            phrases,
            patterns,
            float(semantic.get("threshold", 1.01)),
            float(semantic.get("margin", 0.0)),
            fuzzy,
            frozenset(phrases),
            frozenset(squeezed),
            tuple(sorted({len(p.split()) for p in phrases})),
            discriminant_quantile,
            float(discriminant.get("margin", 0.0)) if discriminant else 0.0,
            sentence_quantile,
            general=compile_all(
                entry, "general", strings(entry, "general", general.get("patterns"), False, strip=False), substitutions
            ),
            personal=compile_all(entry, "general", [_word_alternation(personal)], {})[0] if personal else None,
            firm=compile_all(
                entry, "firm", strings(entry, "firm", value.get("firm"), False, strip=False), substitutions
            ),
        )

    crisis, refer = section("crisis"), section("refer")
    for name in ("firm", "general"):
        # Read for refer only: under crisis they would be parsed and never used.
        if name in crisis:
            raise fail("crisis", name, "is a refer setting: move it under refer")
    lists = raw.get("lists") or {}
    substitutions = {
        name: "(?:" + "|".join(re.escape(normalise(v).strip()) for v in strings("lists", name, values)) + ")"
        for name, values in lists.items()
    }
    resources = []
    for i, item in enumerate(crisis.get("resources") or [], 1):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("label", "href", "kind")):
            raise fail("crisis", "resources", f"item {i} needs label, href and kind")
        if not re.match(r"^(tel:|sms:|https://)", item["href"]):
            raise fail("crisis", "resources", f"item {i} href must start with tel:, sms: or https://")
        resources.append(Resource(item["label"], item["href"], item["kind"]))
    if not resources:
        raise fail("crisis", "resources", "must list the crisis lines")
    clinic_line = crisis.get("clinic_line")
    if not isinstance(clinic_line, str) or "{clinic_phone}" not in clinic_line:
        raise fail("crisis", "clinic_line", "must be a sentence containing {clinic_phone}")
    exemplars = {
        name: strings(name, "exemplars", section(name).get("exemplars"))
        for name in ("crisis", "refer", "benign")
        if isinstance(raw.get(name), dict) and raw[name].get("exemplars") is not None
    }
    idioms = compile_all("idioms", "", strings("idioms", "", raw.get("idioms"), strip=False), substitutions)
    words_quantile = quantile("crisis", "words", crisis.get("words"), "{quantile: 0.5–0.999…}")
    return SafetyGate(
        crisis_message=message("crisis", crisis),
        clinic_line=clinic_line,
        resources=tuple(resources),
        refer_message=message("refer", refer),
        idioms=idioms,
        crisis=rules("crisis", crisis, substitutions),
        refer=rules("refer", refer, substitutions),
        fuzzy_threshold=float(raw.get("fuzzy_threshold", 90)),
        exemplars=exemplars,
        words_quantile=words_quantile,
        vocabulary=(
            *(v for values in lists.values() for v in strings("lists", "", values)),
            *(p for section_ in (crisis, refer) for p in strings("", "", section_.get("phrases"))),
            # The words of the figures of speech: the speller knew no "cheesecake", made it
            # "chesapeake", and the idiom around it no longer matched the mended text.
            *sorted({w for idiom in idioms for w in re.findall(r"[a-z]{4,}", idiom.pattern)}),
        ),
    )


def _parse_examples(path: Path, raw: Any) -> dict[str, list[str]]:
    """safety_examples.yaml: reviewed lists of labelled messages, by group (crisis, refer, benign)."""
    file = str(path)

    def err(name: str, problem: str) -> None:
        raise KnowledgeError(file, None, name, problem)

    if not isinstance(raw, dict):
        raise KnowledgeError(file, None, None, "must be a mapping with crisis, refer and benign lists")
    if raw.get("status") != "approved":
        err("status", "must be 'approved'")
    _review_fields(raw, err)
    groups = {}
    for group in ("crisis", "refer", "benign"):
        texts = raw.get(group, [])
        if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
            raise KnowledgeError(file, group, None, "must be a list of text")
        groups[group] = [t.strip() for t in texts]
    return groups
