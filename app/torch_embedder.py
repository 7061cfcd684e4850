"""The torch path, lean: a BERT encoder in ~50 lines of torch, tokenizers and safetensors.

sentence-transformers pulls in transformers, scikit-learn and friends: ~180 MB of RSS and
~2 s of start-up for a model that is six plain BERT layers and a mean. This module runs the
same weights with the same arithmetic (tests/test_onnx.py pins its vectors to
sentence-transformers') and imports neither. Models that are not a BERT with mean pooling
fall back to SentenceTransformerEmbedder (see `supports`).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer

# A batch of questions runs shortest first, this many per run, each run padded to its own longest
# text (one padded run of 32 wastes work on padding and outgrows the cache). In-process, batches of
# 32 from the bench's mix: 302-303 -> 413-431 questions/s (chunks of 4: 380-434, of 2: 296-332);
# vectors equal to 3e-7. docs/benchmarks.md, Design.
QUERY_CHUNK = 8


def supports(path: Path) -> bool:
    """A BERT encoder with mean pooling, its tokenizer.json and safetensors weights."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    known = {
        "sentence_transformers.models.Transformer",
        "sentence_transformers.models.Pooling",
        "sentence_transformers.models.Normalize",
    }
    return (
        config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and bool(pooling.get("pooling_mode_mean_tokens"))
        and sum(bool(v) for k, v in pooling.items() if k.startswith("pooling_mode")) == 1
        and all(m.get("type") in known for m in modules)
        and (path / "tokenizer.json").exists()
        and (path / "model.safetensors").exists()
    )


class BertEncoder(torch.nn.Module):
    """BERT's encoder stack (post-norm, exact GELU), reading Hugging Face's weight names."""

    def __init__(self, weights: dict[str, torch.Tensor], heads: int, eps: float) -> None:
        super().__init__()
        self.w = {k.removeprefix("bert."): v for k, v in weights.items()}
        self.heads = heads
        self.eps = eps
        self.layers = sum(1 for k in self.w if re.fullmatch(r"encoder\.layer\.\d+\.attention\.self\.query\.weight", k))

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _dense(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, tokens = ids.shape
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][:tokens] + w["embeddings.token_type_embeddings.weight"][0]
        x = self._norm(x, "embeddings.LayerNorm")
        # Padding positions are never attended to (a boolean mask: True = attend).
        attend = mask.bool()[:, None, None, :]
        size = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, tokens, self.heads, size).transpose(1, 2)

            q = split(self._dense(x, f"{p}.attention.self.query"))
            k = split(self._dense(x, f"{p}.attention.self.key"))
            v = split(self._dense(x, f"{p}.attention.self.value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, scale=1 / math.sqrt(size))
            context = context.transpose(1, 2).reshape(batch, tokens, self.heads * size)
            x = self._norm(x + self._dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            hidden = F.gelu(self._dense(x, f"{p}.intermediate.dense"))
            x = self._norm(x + self._dense(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x


class TorchEmbedder:
    """all-MiniLM-L6-v2 on torch without sentence-transformers: same vectors, less memory."""

    def __init__(self, path: Path, model_id: str, threads: int | None = None) -> None:
        self._threads = threads or torch.get_num_threads()
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        try:
            max_tokens = int(
                json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"]
            )
        except (OSError, ValueError, KeyError):
            max_tokens = 256
        max_tokens = min(max_tokens, int(config["max_position_embeddings"]))
        self._encoder = BertEncoder(
            load_file(str(path / "model.safetensors")),
            int(config["num_attention_heads"]),
            float(config.get("layer_norm_eps", 1e-12)),
        ).eval()
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # tokenizer.json pads every text to 128; sentence-transformers pads to the batch's longest.
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self._lock = threading.Lock()  # one encode at a time: each already uses every core
        self.model_id = model_id
        self.dimension = int(config["hidden_size"])

    def _encode(self, texts: Sequence[str], threads: int, chunk: int = 0) -> np.ndarray:
        """chunk > 0: run the texts shortest first, `chunk` at a time, each run padded only to its
        own longest text (padding is masked out of attention and the mean)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        with self._lock, torch.inference_mode():
            torch.set_num_threads(threads)
            if chunk <= 0 or len(texts) <= chunk:
                return self._run(ids, mask)
            lengths = mask.sum(dim=1)
            order = torch.argsort(lengths, stable=True)
            vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
            for start in range(0, len(order), chunk):
                rows = order[start : start + chunk]
                width = int(lengths[rows].max())  # padding is on the right
                vectors[rows.numpy()] = self._run(ids[rows, :width], mask[rows, :width])
            return vectors

    def _run(self, ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        hidden = self._encoder(ids, mask)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        vectors = F.normalize(pooled, p=2, dim=1)
        return vectors.numpy().astype(np.float32, copy=False)

    def query_embed(self, texts: Sequence[str]) -> np.ndarray:
        # Every core, for a lone question and for a batch. One thread per batch was tried (cheaper
        # per question, 3.7 vs 4.4 core-ms, and it won under a noisy neighbour: c=32 180 vs 143
        # req/s) but on a quiet machine, once numpy's BLAS threads stopped spinning (app/__init__),
        # every core won: c=32 293 vs 260 req/s, p99 198 vs 205 ms (docs/benchmarks.md).
        return self._encode(texts, self._threads, QUERY_CHUNK)

    def passage_embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._threads)  # build time: nothing else needs the cores
