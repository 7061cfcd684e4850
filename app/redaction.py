"""Strip what identifies a patient from a question before editors ever see it.

Deliberately greedy: a redacted word too many costs an editor a guess; one too few stores
a patient's name or phone number. Each match becomes a bracketed placeholder.
"""

from __future__ import annotations

import re

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_NAME = r"[A-Z][a-zA-Z'’-]+(?:\s+[A-Z][a-zA-Z'’-]+){0,2}"
_STREET = (
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"terrace|circle|parkway|pkwy|highway|hwy)"
)

# Order matters: emails and URLs before numbers, dates before phone numbers and digit runs.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[EMAIL]"),
    (re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE), "[URL]"),
    (
        re.compile(
            r"\b\d{1,6}\s+(?:[A-Za-z0-9'.-]+\s+){0,3}" + _STREET + r"\b\.?(?:\s*(?:apt|unit|suite|#)\s*\w+)?",
            re.IGNORECASE,
        ),
        "[ADDRESS]",
    ),
    (re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b"), "[DATE]"),
    (re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"), "[DATE]"),
    (re.compile(r"\b\d{1,2}/\d{1,2}\b"), "[DATE]"),
    (re.compile(r"\b" + _MONTHS + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?\b", re.IGNORECASE), "[DATE]"),
    (
        re.compile(r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTHS + r"\b\.?(?:,?\s+\d{4})?", re.IGNORECASE),
        "[DATE]",
    ),
    (re.compile(r"\d{5,}"), "[NUMBER]"),
    # Names people give: "my name is ann lee", "I'm Ann", "this is Ann", "call me Ann", "Dr Lee".
    (
        re.compile(
            r"(?i:(\bmy\s+name\s+is|\bmy\s+name's|\bname:))\s+[A-Za-z'’-]+(?:\s+[A-Za-z'’-]+)?(?:\s+[A-Z][a-zA-Z'’-]+)?"
        ),
        r"\1 [NAME]",
    ),
    (re.compile(r"(?i:(\b(?:i\s+am|i'm|i’m|im|this\s+is|call\s+me|it's|it’s)))\s+" + _NAME), r"\1 [NAME]"),
    (re.compile(r"(?i:(\b(?:dr|doctor|nurse|mr|mrs|ms|miss)\.?))\s+" + _NAME), r"\1 [NAME]"),
]
# A run of digits with phone-ish separators; a phone number only if it has 7 or more digits.
_PHONE = re.compile(r"(?<![\w/])\+?\(?\d{1,4}\)?(?:[\s.-]{0,2}\(?\d{2,4}\)?){1,5}(?![\w/])")


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    # A bare run of digits is left for [NUMBER]; a phone number has separators or a "+".
    return "[PHONE]" if sum(c.isdigit() for c in text) >= 7 and not text.isdigit() else text


def redact(text: str) -> str:
    """The text with emails, URLs, addresses, dates, phone numbers, long digit runs and
    self-introductions replaced by placeholders."""
    for i, (pattern, placeholder) in enumerate(_PATTERNS):
        if i == _PHONE_AT:
            text = _PHONE.sub(_phone, text)
        text = pattern.sub(placeholder, text)
    return text


_PHONE_AT = next(i for i, (_, placeholder) in enumerate(_PATTERNS) if placeholder == "[NUMBER]")
