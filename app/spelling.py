"""Query spelling: chat abbreviations expanded and misspelt words corrected before embedding.

Patients type "wat happens durin the infusoin"; the embedding model splits unknown words into
meaningless pieces. A word is corrected only when it is neither an English word (the model's
own whole-word vocabulary) nor a word of the knowledge base, and a knowledge-base word is
close to it (rapidfuzz ratio). Only the text used for matching changes; what the patient sees
is always a vetted passage, and the safety gate reads the original question.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

ABBREVIATIONS = {
    "u": "you",
    "ur": "your",
    "r": "are",
    "y": "why",
    "wat": "what",
    "wut": "what",
    "wht": "what",
    "pls": "please",
    "plz": "please",
    "b4": "before",
    "bc": "because",
    "cuz": "because",
    "coz": "because",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "have to",
    "thx": "thanks",
    "ppl": "people",
    "abt": "about",
    "hw": "how",
    "wrk": "work",
    "gud": "good",
    "w": "with",
    "w/": "with",
    "wo": "without",
    "idk": "i do not know",
    "rn": "right now",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "2moro": "tomorrow",
    "2day": "today",
    "tonite": "tonight",
    "2nite": "tonight",
    "tnite": "tonight",
    "dr": "doctor",
    "appt": "appointment",
    "iv": "IV",
    "k": "ketamine",
    "ket": "ketamine",
    "sesh": "session",
    "trd": "treatment-resistant depression",
    "mdd": "major depression",
    "im": "i am",
    "ill": "i will",
    "ive": "i have",
    "dont": "do not",
    "doesnt": "does not",
    "didnt": "did not",
    "cant": "cannot",
    "wont": "will not",
    "isnt": "is not",
    "whats": "what is",
    "hows": "how is",
    "its": "it is",
    "thats": "that is",
    "theres": "there is",
    "youre": "you are",
}
# A word (look-alike characters and hyphens inside it kept: "k!ll", "su1cide", "k-hole"), a number
# ("220/130", "2.5"), or any other single character.
WORD = re.compile(r"[A-Za-z](?:[A-Za-z']|[!1@$0-9-](?=[A-Za-z]))*|\d+(?:[.,/:]\d+)*|\S")
# Slang the abbreviation table would break: "k hole" is not "ketamine hole". And "dose" typed for
# "does" ("how long dose the infusion last", "what dose dissociation mean"): a real word, so the
# speller passes it, and the embedding reads a question about dosing.
DOSE_FOR_DOES = r"\b(how long|how|what|why|when|where) dose\b(?=(?: \w+){1,3} (?:mean|lasts?|feel|hurt|work)\b)"
SLANG = (
    (re.compile(r"\bk[ -]?holes?\b", re.IGNORECASE), "k-hole"),
    (re.compile(DOSE_FOR_DOES, re.IGNORECASE), r"\1 does"),
)


def model_vocabulary(model_path: Path) -> frozenset[str]:
    """Whole English words from a WordPiece vocab.txt (pieces starting '##' are not words)."""
    vocab = model_path / "vocab.txt"
    try:
        lines = vocab.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset()
    return frozenset(w for w in lines if w.isalpha() and w.islower())


class SpellingCorrector:
    def __init__(self, known_texts: Iterable[str], dictionary: frozenset[str], min_score: float = 80.0) -> None:
        counts = Counter(w.lower() for t in known_texts for w in re.findall(r"[A-Za-z]{3,}", t))
        knowledge_words = set(counts)
        self._frequency = counts
        self.known = frozenset(knowledge_words) | dictionary
        # Candidates: the knowledge base's words and English words of 4+ letters.
        self.candidates = sorted(knowledge_words | {w for w in dictionary if len(w) >= 4})
        self.min_score = min_score
        self._correct_word = lru_cache(maxsize=20_000)(self._correct_uncached)

    def _correct_uncached(self, word: str) -> str:
        lower = word.lower()
        if lower in ABBREVIATIONS:
            return ABBREVIATIONS[lower]
        if len(lower) < 4 or not lower.isalpha() or lower in self.known:
            return word
        # Same first letter: typos rarely hit it, and "vending" must not become "ending".
        candidates = [c for c in self.candidates if c[0] == lower[0]]
        matches = process.extract(lower, candidates, scorer=fuzz.ratio, score_cutoff=self.min_score, limit=8)
        if not matches:
            # A short word with one slip ("saef", "paim") is under 80 % similar to its intended word:
            # accept one edit (a swap of neighbours counts as one) when nothing closer was found.
            matches = [
                (c, 100 - d, i)
                for c, d, i in process.extract(lower, candidates, scorer=OSA.distance, score_cutoff=1, limit=8)
            ]
        if not matches:
            return word
        # Equally close candidates ("suiside": "subside", "suicide"): the one the knowledge uses most.
        best = max(matches, key=lambda m: (m[1], self._frequency.get(m[0], 0)))
        return str(best[0])

    def correct(self, question: str) -> str:
        text = question.replace("’", "'")
        for pattern, replacement in SLANG:
            text = pattern.sub(replacement, text)
        return " ".join(self._correct_word(token) for token in WORD.findall(text))
