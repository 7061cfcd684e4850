"""Questions are redacted before editors see them: contact details, dates, numbers, names."""

from __future__ import annotations

import pytest

from app.redaction import redact


@pytest.mark.parametrize(
    ("text", "gone", "placeholder"),
    [
        ("email me at jane.doe+qa@example.co.uk please", "jane.doe", "[EMAIL]"),
        ("call me back on 555-123-4567", "555-123-4567", "[PHONE]"),
        ("my cell is (415) 555 0199", "555 0199", "[PHONE]"),
        ("uk number +44 20 7946 0958", "7946", "[PHONE]"),
        ("my infusion is on 03/14/2026", "03/14/2026", "[DATE]"),
        ("booked for 2026-09-01 at noon", "2026-09-01", "[DATE]"),
        ("is March 3rd, 2026 too soon?", "March 3rd", "[DATE]"),
        ("since 14 September I feel fine", "14 September", "[DATE]"),
        ("my MRN is 123456789", "123456789", "[NUMBER]"),
        ("my name is jane doe and I am worried", "jane doe", "[NAME]"),
        ("Hi, I'm Sarah Connor. Can I eat first?", "Sarah", "[NAME]"),
        ("this is Bob, can I drive after?", "Bob", "[NAME]"),
        ("Dr. Patel said I could", "Patel", "[NAME]"),
        ("I live at 42 Wallaby Way, can someone pick me up", "Wallaby", "[ADDRESS]"),
        ("see https://portal.example/record/889 for my notes", "portal.example", "[URL]"),
    ],
)
def test_identifying_details_are_replaced(text: str, gone: str, placeholder: str) -> None:
    redacted = redact(text)
    assert gone not in redacted
    assert placeholder in redacted


@pytest.mark.parametrize(
    "text",
    [
        "Can I drive home after the infusion?",
        "Will 0.5 mg per kg make me sleepy for 40 to 60 minutes?",
        "Is it normal to feel floaty for 2 hours?",
        "I am nervous about the needle",
    ],
)
def test_ordinary_questions_are_untouched(text: str) -> None:
    assert redact(text) == text
