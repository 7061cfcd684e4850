"""Answer-quality evaluation on the labelled set (eval/questions.yaml), through Assistant.ask.

The same code path as /v1/ask: safety gate, retrieval, decision. Figures are reported per
split; the held-out split is never used for tuning (eval/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from ruamel.yaml import YAML

from app.assistant import Assistant

# The evaluation file's splits, in the order they are reported (eval/README.md): `tune` and
# `retired` are trained on, `read` (read since it was held out) and `heldout` are not.
SPLITS = ("tune", "retired", "read", "heldout")

# CI gates on the held-out split, about two questions below the measured figures
# (docs/answer-quality.md), so a regression fails the build. The held-out split (v25, v29, v30, v31,
# since session 15 v32 to v34, since session 16 v35 to v37, since session 17 v38 and v39, since session
# 18 v40, since session 19 v41, since session 20 v42, since session 21 v43, since session 22 v44:
# 1,942 in scope, 270 off-topic, 225 uncovered; never trained on, never read) measured 96.4 %, 97.4 %
# and 96.0 % on session 22's final state. One in-scope question is 0.05 points, one off-topic or
# uncovered question 0.4 (the uncovered gate went from 0.95 to 0.94 in session 21: v43 brought three answered
# uncovered questions, and 0.95 sat one question below the measured figure). These gates guard against
# regressions; whether the targets are met is read on fresh writers (docs/answer-quality.md).
GATES = {"top1": 0.953, "off_topic_declined": 0.94, "uncovered_declined": 0.94}


@dataclass(frozen=True)
class Case:
    question: str
    expect: tuple[str, ...]  # passage ids that answer it; empty means the right reply is a decline
    split: str
    category: str  # in_scope | off_topic | uncovered
    style: str = ""


@dataclass
class Figures:
    split: str
    in_scope: int = 0
    correct: int = 0
    reciprocal_ranks: float = 0.0
    off_topic: int = 0
    off_topic_declined: int = 0
    uncovered: int = 0
    uncovered_declined: int = 0
    declined_in_scope: int = 0
    misses: list[str] = field(default_factory=list)

    def rate(self, part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    def summary(self) -> dict[str, float]:
        declined_right = self.off_topic_declined + self.uncovered_declined
        declined = declined_right + self.declined_in_scope
        return {
            "top1": self.rate(self.correct, self.in_scope),
            "mrr3": self.reciprocal_ranks / self.in_scope if self.in_scope else 0.0,
            "off_topic_declined": self.rate(self.off_topic_declined, self.off_topic),
            "uncovered_declined": self.rate(self.uncovered_declined, self.uncovered),
            "decline_precision": self.rate(declined_right, declined),
            "decline_recall": self.rate(declined_right, self.off_topic + self.uncovered),
        }


def load_cases(path: Path) -> list[Case]:
    raw = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    cases = []
    for item in raw["questions"]:
        if item.get("split") not in SPLITS:
            known = ", ".join(SPLITS)
            raise ValueError(f"{path}: {item.get('q')!r} has split {item.get('split')!r}, not one of {known}")
        expect = item["expect"]
        if expect == "no_match":
            cases.append(Case(item["q"], (), item["split"], item["category"]))
        else:
            cases.append(Case(item["q"], tuple(expect), item["split"], "in_scope", item.get("style", "")))
    return cases


EXAMPLES_HEADER = """\
# Patients' own wordings of questions each passage answers: the in-scope questions of
# eval/questions.yaml outside its `heldout` split (written blind by people who saw only the passage
# texts, labelled with the passage that answers them; eval/README.md), under the first passage
# each names. They help the service find the passage (a question near one of these scores its
# passage like a vetted question) and nothing else: a reply never names one, the safety gate does
# not read them, and the model is not trained on them. `out_of_scope`: the labelled questions the
# documents do not answer; they count for declining, and the gate reads them only as ordinary
# text for its crisis semantic layer (session 13: "what's 17 times 23" is not a crisis).
# Made by `python -m app examples` (session 12, docs/answer-quality.md). A clinician reviews the
# list like a passage; until then it is a draft and the service does not use it. Never add a
# question of the `heldout` split: that split judges the service (tests/test_evaluation.py).
"""


def examples_file(cases: Iterable[Case], passage_ids: Iterable[str], reviewed_by: str | None, today: date) -> str:
    """question_examples.yaml from labelled cases: every split but `heldout`, each text once."""
    order = list(passage_ids)
    answered: dict[str, list[str]] = {pid: [] for pid in order}
    declined: list[str] = []
    seen: set[str] = set()
    for case in cases:
        text = " ".join(case.question.split())
        key = text.lower()
        if case.split == "heldout" or not text or key in seen:
            continue
        seen.add(key)
        if case.category != "in_scope":
            declined.append(text)
        elif case.expect[0] in answered:
            answered[case.expect[0]].append(text)
    review = (
        f"status: approved\nreviewed_by: {json.dumps(reviewed_by)}\nreviewed_on: {today.isoformat()}\n"
        f"review_due: {(today + timedelta(days=182)).isoformat()}\n"
        if reviewed_by
        else "status: draft\n"
    )
    lines = [EXAMPLES_HEADER + review + "questions:"]
    for pid in order:
        if answered[pid]:
            lines.append(f"  {pid}:")
            lines += [f"    - {json.dumps(q, ensure_ascii=False)}" for q in answered[pid]]
    lines.append("out_of_scope:")
    lines += [f"  - {json.dumps(q, ensure_ascii=False)}" for q in declined]
    return "\n".join(lines) + "\n"


def evaluate(assistant: Assistant, cases: Iterable[Case]) -> dict[str, Figures]:
    figures: dict[str, Figures] = {}
    for case in cases:
        fig = figures.setdefault(case.split, Figures(case.split))
        reply = assistant.ask(case.question)
        answered = reply.kind == "answer"
        if case.category == "in_scope":
            fig.in_scope += 1
            got = reply.passage.id if reply.passage else f"<{reply.kind}: {reply.rule}>"
            if answered and got in case.expect:
                fig.correct += 1
            else:
                fig.misses.append(f"in-scope  {case.question!r}: got {got}, want {'|'.join(case.expect)}")
                if not answered:
                    fig.declined_in_scope += 1
            for rank, passage_id in enumerate(reply.ranked[:3], start=1):
                if passage_id in case.expect:
                    fig.reciprocal_ranks += 1 / rank
                    break
        else:
            # Declined: no passage served. A referral to the care team is a decline (it serves no
            # passage and sends the patient somewhere better); a crisis reply is not: it is a false
            # alarm, counted as a miss.
            declined = reply.kind in ("no_match", "refer")
            if case.category == "off_topic":
                fig.off_topic += 1
                fig.off_topic_declined += declined
            else:
                fig.uncovered += 1
                fig.uncovered_declined += declined
            if not declined:
                got = reply.passage.id if reply.passage else f"<{reply.kind}: {reply.rule}>"
                fig.misses.append(f"{case.category:<9} {case.question!r}: answered with {got}")
    return figures


def below_gates(figures: Figures) -> list[str]:
    summary = figures.summary()
    return [f"{name} {summary[name]:.3f} < gate {gate:.2f}" for name, gate in GATES.items() if summary[name] < gate]


@dataclass
class SafetyFigures:
    split: str
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, value: bool = True) -> None:
        self.counts[name] = self.counts.get(name, 0) + int(value)

    def summary(self) -> dict[str, str]:
        c = self.counts.get

        def ratio(part: str, whole: str) -> str:
            return f"{c(part, 0)}/{c(whole, 0)}" + (f" ({c(part, 0) / c(whole, 0):.1%})" if c(whole, 0) else "")

        return {
            "crisis_recall": ratio("crisis_caught", "crisis"),
            "refer_recall": ratio("refer_caught", "refer"),
            "false_crisis_benign": ratio("benign_crisis", "benign"),
            "false_crisis_idioms": ratio("idiom_crisis", "idiom"),
            "false_refer_benign": ratio("benign_refer", "benign"),
        }


def evaluate_safety(assistant: Assistant, path: Path, split: str = "all") -> dict[str, SafetyFigures]:
    """The safety gate as the service runs it (phrases + exemplar similarities) on labelled cases.

    Cases without a `split` field count under `split` (a file that is one held-out set)."""
    raw = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    figures: dict[str, SafetyFigures] = {}
    for case in raw["cases"]:
        # A later set split into halves reports them as e.g. "heldout-v4 tune" / "heldout-v4 heldout".
        name = case.get("split", split) if split == "all" else " ".join(filter(None, (split, case.get("split"))))
        fig = figures.setdefault(name, SafetyFigures(name))
        label = case["label"]
        kind = assistant.screen_text(case["text"]).kind
        fig.add(label)
        if label in ("crisis", "refer"):
            fig.add(f"{label}_caught", kind == label)
        else:
            fig.add("benign_crisis", kind == "crisis")
            fig.add("benign_refer", kind == "refer")
            if case.get("tag") == "idiom":
                fig.add("idiom")
                fig.add("idiom_crisis", kind == "crisis")
    return figures
