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


def test_numbers_and_look_alike_letters_stay_whole() -> None:
    # "220/130" used to reach the model as "2 2 0 / 1 3 0", and "k!ll" as "ketamine ! ll".
    assert corrector().correct("bp 220/130 after 2.5 mg") == "bp 220/130 after 2.5 mg"
    assert corrector().correct("gonna k!ll myself") == "going to k!ll myself"


def test_equally_close_words_go_to_the_one_the_knowledge_uses_most() -> None:
    # "suiside" is one letter from "subside" and from "suicide": the knowledge base's own word wins.
    speller = SpellingCorrector(["the effects subside", "suicide", "suicide prevention", "suicide"], frozenset())
    assert speller.correct("suiside") == "suicide"


def test_hyphenated_words_and_k_hole_stay_whole() -> None:
    assert corrector().correct("k hole?") == "k-hole ?"
    assert corrector().correct("is the k-hole real") == "is the k-hole real"
    assert corrector().correct("k is safe?") == "ketamine is safe ?"


def test_dose_typed_for_does_is_read_as_does_only_before_a_verb_of_meaning_or_duration() -> None:
    words = {"dose", "do", "give", "mean", "last", "dissociation", "how", "long"}
    speller = SpellingCorrector(KNOWN, DICTIONARY | words)
    assert speller.correct("how long dose the infusion last") == "how long does the infusion last"
    assert speller.correct("what dose dissociation mean") == "what does dissociation mean"
    assert speller.correct("what dose do you give") == "what dose do you give"


def test_a_short_word_with_one_slip_is_mended() -> None:
    # Under 80 % similar by ratio ("saef"/"safe" is 75 %), yet one swap of neighbours away.
    speller = SpellingCorrector(["Is the infusion safe?", "Does it hurt?", "the pain"], frozenset({"is", "it"}))
    assert speller.correct("is it saef") == "is it safe"
    assert speller.correct("does it hrut") == "does it hurt"
    assert speller.correct("paim") == "pain"
    # Two slips in a short word is too far to guess.
    assert speller.correct("sfea") == "sfea"


def test_clinical_abbreviations_are_spelt_out() -> None:
    assert corrector().correct("trd ketamine") == "treatment-resistant depression ketamine"
