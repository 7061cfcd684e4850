from app.spelling import SpellingCorrector

KNOWN = ["How long does the infusion take?", "Will I feel dizzy during the treatment?", "ketamine"]
DICTIONARY = frozenset({"what", "happens", "to", "you", "the", "vending", "machine", "is", "there", "a"})


def corrector() -> SpellingCorrector:
    return SpellingCorrector(KNOWN, DICTIONARY)


def test_misspelt_knowledge_words_are_mended() -> None:
    assert corrector().correct("wat happens to u durin the infusoin") == "what happens to you during the infusion"
    assert corrector().correct("ketamin") == "ketamine"


def test_real_words_are_left_alone() -> None:
    # "vending" is close to nothing in the knowledge base by first letter; it must not become "ending".
    assert corrector().correct("is there a vending machine") == "is there a vending machine"


def test_typographic_apostrophes_and_punctuation_survive() -> None:
    assert corrector().correct("I’m dizzy?") == "I'm dizzy ?"
