"""The ONNX path: the same MiniLM weights run by onnxruntime, with no torch in the process.

`export()` (run at set-up / build time, `python -m app export-onnx`) turns the installed
sentence-transformers model into embeddings/onnx/model.onnx with torch's exporter.
`OnnxEmbedder` serves it with onnxruntime + tokenizers + numpy mean pooling; it must never
import torch or sentence_transformers (that is the point: ~2 s start, ~200 MB).

The export is fp32, so its vectors equal the torch path's to ~1e-6 and it shares the torch
embedder's model_id: an index built by either serves both (tests/test_onnx.py pins this).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.embedder import model_id_for, resolve_model_path, tuned_weights

MODEL_FILE = "model.onnx"
META_FILE = "export.json"
TOKENIZER_FILE = "tokenizer.json"
# The exported graph changes when this does (inputs, opset, …): old exports are refused.
EXPORT_FORMAT = 1
OPSET = 17
# How long an idle intra-op pool thread spins before it sleeps, inside one run (see OnnxEmbedder).
SPIN_US = 100
# A batch of questions runs shortest first, this many per run, each run padded to its own longest
# text: one padded run of 32 spent most of its time on padding and on activations that no longer fit
# in cache. In-process, batches of 32 from the bench's mix: 273-297 -> 446-589 questions/s (chunks
# of 3-6 alike; 1: 407-442); vectors bit-identical. docs/benchmarks.md, Design.
QUERY_CHUNK = 4


def _fingerprint(path: Path) -> str:
    """Which weights an export came from: cheap enough to check at every start (no 90 MB read)."""
    # A tuned model (app/tuning.py) is retrained in place at the same size: its hash tells.
    tuned = tuned_weights(path)
    if tuned:
        return f"tuned:{tuned[:12]}"
    weights = path / "model.safetensors"
    if not weights.exists():
        weights = path / "pytorch_model.bin"
    return f"{weights.name}:{weights.stat().st_size}"


def _max_seq_length(path: Path) -> int:
    try:
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return int(config.get("max_seq_length", 256))
    except (OSError, ValueError):
        return 256


def export(model: str, target: Path) -> Path:
    """Export the model's transformer to target/model.onnx (+ tokenizer, pooling facts). Needs torch."""
    import torch
    from transformers import AutoModel

    source = resolve_model_path(model)
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ValueError(f"{model}: only mean-pooling models can be exported (1_Pooling/config.json)")
    bert = AutoModel.from_pretrained(str(source)).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        staged = Path(scratch)
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about Python-side branches it freezes; checked by tests/test_onnx.py.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHidden(bert),
                (ids, torch.ones_like(ids), torch.zeros_like(ids)),
                str(staged / MODEL_FILE),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    name: {0: "batch", 1: "tokens"}
                    for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")
                },
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        shutil.copy(source / TOKENIZER_FILE, staged / TOKENIZER_FILE)
        meta = {
            "format": EXPORT_FORMAT,
            "model": model,
            "model_id": model_id_for(model, source),
            "weights": _fingerprint(source),
            "dimension": int(bert.config.hidden_size),
            "max_seq_length": _max_seq_length(source),
            "opset": OPSET,
            "torch": torch.__version__,
        }
        (staged / META_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        # Meta last: a half-written export is never taken for a complete one.
        for name in (MODEL_FILE, TOKENIZER_FILE, META_FILE):
            os.replace(staged / name, target / name)
    return target / MODEL_FILE


def export_problem(model: str, directory: Path) -> str | None:
    """Why directory holds no usable export of model (None when it does)."""
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no ONNX export in {directory}"
    if meta.get("format") != EXPORT_FORMAT or not (directory / MODEL_FILE).exists():
        return f"the ONNX export in {directory} is from an older version of the exporter"
    if meta.get("model") != model or meta.get("weights") != _fingerprint(resolve_model_path(model)):
        return f"the ONNX export in {directory} is of {meta.get('model')!r}, not of the installed {model!r}"
    return None


class OnnxEmbedder:
    """all-MiniLM-L6-v2 as ONNX: onnxruntime, tokenizers, numpy mean pooling, L2 normalisation."""

    def __init__(self, model: str, directory: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        problem = export_problem(model, directory)
        if problem:
            raise ValueError(f"KETAMINE_QA_EMBEDDER=onnx: {problem}; run `python -m app export-onnx`")
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        options = ort.SessionOptions()
        # One encode at a time (the batcher's single worker): all cores go to that encode.
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Pool threads spin briefly between an encode's parallel sections, then sleep. With spinning
        # off, the second thread slept after every matmul / attention / layer norm and paid a wake-up
        # for the next: a lone question took 3.2-3.5 ms instead of 2.1-2.5 (2 cores, quiet). ORT's
        # default spin never stops between runs (it burnt a whole core while the encoder was idle,
        # the core the event loop needs), so the spin is capped inside a run (SPIN_US: a preempted
        # partner costs the spinner at most that) and ends when the run returns
        # (force_spinning_stop). Measurements: docs/benchmarks.md, Design.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_US))
        options.add_session_config_entry("session.force_spinning_stop", "1")
        self._session = ort.InferenceSession(
            str(directory / MODEL_FILE), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()  # one encode at a time: each already uses every core
        self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        # The shipped tokenizer.json pads every text to 128; sentence-transformers pads to the
        # longest text in the batch and truncates at max_seq_length. Do the same.
        self._tokenizer.enable_truncation(int(meta["max_seq_length"]))
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.model_id = str(meta["model_id"])
        self.dimension = int(meta["dimension"])

    def _encode(self, texts: Sequence[str], chunk: int = 0) -> np.ndarray:
        """chunk > 0: run the texts shortest first, `chunk` at a time, each run padded only to its
        own longest text (the vectors are the same: padding is masked out of attention and mean)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        if chunk <= 0 or len(texts) <= chunk:
            return self._run(ids, mask)
        lengths = mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            width = int(lengths[rows].max())  # padding is on the right
            vectors[rows] = self._run(ids[rows, :width], mask[rows, :width])
        return vectors

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            (hidden,) = self._session.run(["last_hidden_state"], feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def query_embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, QUERY_CHUNK)

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)
