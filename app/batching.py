"""The /v1/ask fast path: a repeat cache, then micro-batched query encodes, then the reply.

Micro-batching: questions that arrive together share one encode call.

One encode of 32 short questions costs a few times one encode of one question, not 32 times,
so under load the service answers at close to the model's batch rate. The event loop never
runs model work: callers await a future; one dedicated worker thread runs the encodes; its
results come back to the loop with call_soon_threadsafe.

Batching policy: at most one batch is being encoded at a time. While it runs, new questions
queue up, and the moment it finishes they all go together (up to max_batch). A question that
finds the worker idle waits at most max_wait for companions (0 by default: at low load any
wait is pure latency, and at high load the queue fills while the worker is busy anyway).

The repeat cache: suggested and common questions come back word for word. Their decision is
remembered per Assistant (a reload starts afresh); each reply still gets a new reply_id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from app.embedder import Embedder

if TYPE_CHECKING:
    from app.assistant import Assistant, Reply
    from app.config import Settings


class BatcherClosed(RuntimeError):
    """The batcher was closed (the service is stopping)."""


@dataclass
class _Waiter:
    embedder: Embedder
    text: str
    future: asyncio.Future[np.ndarray]


_STOP = None


@dataclass
class _LoopQueue:
    """The questions waiting on one event loop (the service has one; tests may run several)."""

    pending: deque[_Waiter] = field(default_factory=deque)
    busy: bool = False  # a batch from this loop is with the worker
    timer: asyncio.Handle | None = None


class QueryBatcher:
    """Encodes query texts in batches on one worker thread; `await query_embed(embedder, text)`."""

    def __init__(self, max_batch: int = 32, max_wait: float = 0.0) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not 0.0 <= max_wait <= 0.002:
            raise ValueError("max_wait must be between 0 and 2 ms")
        self.max_batch = max_batch
        self.max_wait = max_wait
        # Per event loop; each queue is only touched from its own loop's thread.
        self._queues: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}
        self._queues_lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, list[_Waiter]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        # For metrics and tests: how many encode calls, how many texts.
        self.batches = 0
        self.texts = 0

    async def query_embed(self, embedder: Embedder, text: str) -> np.ndarray:
        """The query vector of text, computed with embedder (in a batch with its neighbours)."""
        if self._closed:
            raise BatcherClosed("the query batcher is closed")
        loop = asyncio.get_running_loop()
        waiting = self._queues.get(loop) or self._bind(loop)
        waiter = _Waiter(embedder, text, loop.create_future())
        waiting.pending.append(waiter)
        if not waiting.busy:
            full = len(waiting.pending) >= self.max_batch
            if waiting.timer is not None and full:
                waiting.timer.cancel()  # no point waiting out the window
                waiting.timer = None
            if waiting.timer is None:
                # call_soon, not a direct dispatch: callers already runnable in this loop turn
                # (requests parsed from the same read) join the batch for free.
                if full or self.max_wait == 0.0:
                    waiting.timer = loop.call_soon(self._dispatch, loop)
                else:
                    waiting.timer = loop.call_later(self.max_wait, self._dispatch, loop)
        return await waiter.future

    def _bind(self, loop: asyncio.AbstractEventLoop) -> _LoopQueue:
        with self._queues_lock:
            # Loops that are gone (asyncio.run, a TestClient without `with`) are forgotten.
            for old in [old for old in self._queues if old.is_closed()]:
                del self._queues[old]
            waiting = self._queues.setdefault(loop, _LoopQueue())
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="query-encoder", daemon=True)
                self._thread.start()
        return waiting

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: hand its next batch to the worker, unless one of its batches is there."""
        waiting = self._queues.get(loop)
        if waiting is None:
            return
        waiting.timer = None
        if waiting.busy or not waiting.pending:
            return
        first = waiting.pending.popleft()
        batch = [first]
        # One embedder per batch: after a reload, old and new assistants' questions never mix.
        while waiting.pending and len(batch) < self.max_batch and waiting.pending[0].embedder is first.embedder:
            batch.append(waiting.pending.popleft())
        batch = [w for w in batch if not w.future.done()]  # callers that gave up
        if not batch:
            self._dispatch_soon(loop, waiting)
            return
        waiting.busy = True
        submit = getattr(first.embedder, "submit", None)
        if submit is not None:
            # An embedder with a thread of its own (app.embedder.OwnThread): encode there directly;
            # going through our worker would add a second thread hand-off to every batch.
            submit(self._encode, loop, batch)
        else:
            self._jobs.put((loop, batch))

    def _dispatch_soon(self, loop: asyncio.AbstractEventLoop, waiting: _LoopQueue) -> None:
        if waiting.pending and waiting.timer is None and not self._closed:
            waiting.timer = loop.call_soon(self._dispatch, loop)

    def _work(self) -> None:
        """The worker thread: one encode per batch."""
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            self._encode(*job)

    def _encode(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiter]) -> None:
        """Off the loop: one encode; the results go back to the batch's loop."""
        try:
            vectors = batch[0].embedder.query_embed([w.text for w in batch])
            if len(vectors) != len(batch):
                raise RuntimeError(f"the embedder returned {len(vectors)} vectors for {len(batch)} texts")
            outcome: np.ndarray | BaseException = vectors
        except Exception as e:  # every waiter of the batch gets the error
            outcome = e
        try:
            loop.call_soon_threadsafe(self._finish, loop, batch, outcome)
        except RuntimeError:  # that loop is closed: nobody is waiting for this batch any more
            pass

    def _finish(
        self, loop: asyncio.AbstractEventLoop, batch: Sequence[_Waiter], outcome: np.ndarray | BaseException
    ) -> None:
        """On the loop: resolve the batch's futures, then send its next batch at once."""
        self.batches += 1
        self.texts += len(batch)
        for i, waiter in enumerate(batch):
            if waiter.future.done():
                continue
            if isinstance(outcome, BaseException):
                waiter.future.set_exception(outcome)
            else:
                waiter.future.set_result(outcome[i])
        waiting = self._queues.get(loop)
        if waiting is not None:
            waiting.busy = False
            # Whoever queued during that encode has waited long enough: no extra wait.
            self._dispatch_soon(loop, waiting)

    async def aclose(self) -> None:
        """Stop the worker after the batch in hand; fail whoever is still queued."""
        if self._closed:
            return
        self._closed = True
        current = asyncio.get_running_loop()
        with self._queues_lock:
            queues = list(self._queues.items())
        for loop, waiting in queues:
            if loop is current:
                _fail_waiting(waiting)
            elif not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(_fail_waiting, waiting)
                except RuntimeError:
                    pass
        self._jobs.put(_STOP)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)


def _fail_waiting(waiting: _LoopQueue) -> None:
    if waiting.timer is not None:
        waiting.timer.cancel()
        waiting.timer = None
    while waiting.pending:
        waiter = waiting.pending.popleft()
        if not waiter.future.done():
            waiter.future.set_exception(BatcherClosed("the service is stopping"))


def cache_key(question: str) -> str:
    """Questions that differ only in spacing are one question (the gate, the lexical scorer and
    the tokenizer all ignore spacing; case is left alone so the key never over-reaches)."""
    return " ".join(question.split())


class ReplyCache:
    """The most recent distinct questions' replies, for one Assistant at a time."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._owner: Assistant | None = None
        self._replies: OrderedDict[str, Reply] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, assistant: Assistant, key: str) -> Reply | None:
        """A copy of the remembered reply with a fresh reply_id, or None."""
        with self._lock:
            reply = self._replies.get(key) if assistant is self._owner else None
            if reply is None:
                self.misses += 1
                return None
            self._replies.move_to_end(key)
            self.hits += 1
        return dataclasses.replace(reply, reply_id=str(uuid.uuid4()))

    def put(self, assistant: Assistant, key: str, reply: Reply) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            if assistant is not self._owner:  # the knowledge was reloaded: forget everything
                self._owner = assistant
                self._replies.clear()
            self._replies[key] = reply
            self._replies.move_to_end(key)
            while len(self._replies) > self.capacity:
                self._replies.popitem(last=False)


class AskPath:
    """What /v1/ask awaits: cache, then batched encode, then Assistant.reply (cheap numpy)."""

    def __init__(self, settings: Settings) -> None:
        self.batcher = QueryBatcher(settings.batch_max_size, settings.batch_max_wait_ms / 1000)
        self.cache = ReplyCache(settings.reply_cache_size)

    async def reply(self, assistant: Assistant, question: str) -> Reply:
        key = cache_key(question)
        # Replies are remembered for one day at most: a passage can fall due for review at midnight.
        dated = f"{assistant.settings.current_date().isoformat()}|{key}"
        cached = self.cache.get(assistant, dated)
        if cached is not None:
            return cached
        # The question and, when it has several sentences, each sentence: one micro-batch.
        texts = assistant.encode_texts(key)
        if len(texts) == 1:
            vectors = [await self.batcher.query_embed(assistant.embedder, texts[0])]
        else:
            vectors = await asyncio.gather(*(self.batcher.query_embed(assistant.embedder, t) for t in texts))
        reply = assistant.reply(key, vectors[0], np.stack(vectors[1:]) if len(vectors) > 1 else None)
        self.cache.put(assistant, dated, reply)
        return reply

    async def aclose(self) -> None:
        await self.batcher.aclose()
