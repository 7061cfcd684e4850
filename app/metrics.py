"""Prometheus counters for /metrics: counts only, and no label ever carries a patient's words.

One registry per app (not the process-global one) so tests and reloads start from zero.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from app.assistant import Reply

REPLY_KINDS = ("answer", "no_match", "crisis", "refer")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.replies = Counter(
            "ketamine_qa_replies", "Replies to patients' questions, by kind.", ["kind"], registry=self.registry
        )
        self.crisis = Counter(
            "ketamine_qa_crisis_replies", "Questions answered with crisis resources.", registry=self.registry
        )
        self.decline_ratio = Gauge(
            "ketamine_qa_decline_ratio",
            "Declines over in-scope replies since start: no_match / (answer + no_match).",
            registry=self.registry,
        )
        self.feedback = Counter(
            "ketamine_qa_feedback", "Feedback received, by helpfulness.", ["helpful"], registry=self.registry
        )
        self.rate_limited = Counter(
            "ketamine_qa_rate_limited", "Requests refused with 429, by client kind.", ["client"], registry=self.registry
        )
        self.editor_records = Counter(
            "ketamine_qa_editor_records",
            "Unanswered questions and feedback for editors, by outcome (stored, failed, dropped).",
            ["outcome"],
            registry=self.registry,
        )
        for kind in REPLY_KINDS:
            self.replies.labels(kind=kind)
        for helpful in ("true", "false"):
            self.feedback.labels(helpful=helpful)
        for outcome in ("stored", "failed", "dropped"):
            self.editor_records.labels(outcome=outcome)
        self._lock = threading.Lock()
        self._answered = 0
        self._declined = 0

    def count_reply(self, reply: Reply) -> None:
        kind = reply.kind if reply.kind in REPLY_KINDS else "other"
        self.replies.labels(kind=kind).inc()
        if kind == "crisis":
            self.crisis.inc()
        if kind in ("answer", "no_match"):
            with self._lock:
                if kind == "answer":
                    self._answered += 1
                else:
                    self._declined += 1
                self.decline_ratio.set(self._declined / (self._answered + self._declined))
