"""The micro-batcher and the repeat cache, with fake embedders (no model, no timing targets)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.assistant import Assistant
from app.batching import BatcherClosed, QueryBatcher, ReplyCache, cache_key
from app.config import Settings
from app.embedder import FakeEmbedder
from tests.conftest import RecordingEmbedder

QUESTIONS = [f"question number {i} about the infusion" for i in range(40)]


async def _held_then_burst(batcher: QueryBatcher, embedder: RecordingEmbedder, texts: list[str]) -> list[object]:
    """Occupy the worker with texts[0], queue the rest behind it, then let it go."""
    embedder.hold.clear()
    first = asyncio.ensure_future(batcher.query_embed(embedder, texts[0]))
    await asyncio.to_thread(embedder.entered.wait, 10)
    rest = [asyncio.ensure_future(batcher.query_embed(embedder, t)) for t in texts[1:]]
    await asyncio.sleep(0)
    embedder.hold.set()
    return list(await asyncio.gather(first, *rest, return_exceptions=True))


def test_each_caller_gets_its_own_vector_in_order() -> None:
    embedder = RecordingEmbedder()
    expected = FakeEmbedder().query_embed(QUESTIONS)

    async def run() -> list[object]:
        batcher = QueryBatcher(max_batch=8)
        try:
            return await _held_then_burst(batcher, embedder, QUESTIONS)
        finally:
            await batcher.aclose()

    vectors = asyncio.run(run())
    for got, want in zip(vectors, expected, strict=True):
        assert isinstance(got, np.ndarray)
        assert np.array_equal(got, want)
    # Arrival order is kept inside and across batches, and the queue really was batched.
    assert [t for call in embedder.calls for t in call] == QUESTIONS
    assert [len(c) for c in embedder.calls] == [1, 8, 8, 8, 8, 7]


def test_an_error_reaches_every_waiter_of_its_batch_and_only_those() -> None:
    embedder = RecordingEmbedder(fail_on="question number 3 about the infusion")

    async def run() -> tuple[list[object], np.ndarray]:
        batcher = QueryBatcher(max_batch=4)
        try:
            results = await _held_then_burst(batcher, embedder, QUESTIONS[:9])
            after = await batcher.query_embed(embedder, "does it hurt")  # the worker survived
            return results, after
        finally:
            await batcher.aclose()

    results, after = asyncio.run(run())
    assert [len(c) for c in embedder.calls] == [1, 4, 4, 1]
    failed = [i for i, r in enumerate(results) if isinstance(r, RuntimeError)]
    assert failed == [1, 2, 3, 4]  # the batch that held question 3
    assert all(isinstance(r, np.ndarray) for i, r in enumerate(results) if i not in failed)
    assert after.shape == (embedder.dimension,)


def test_a_wrong_number_of_vectors_is_an_error_not_a_mix_up() -> None:
    class Short(FakeEmbedder):
        def query_embed(self, texts: Sequence[str]) -> np.ndarray:
            return super().query_embed(texts)[:1]

    async def run() -> list[object]:
        batcher = QueryBatcher(max_wait=0.002)
        short = Short()
        try:
            calls = (batcher.query_embed(short, t) for t in QUESTIONS[:3])
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            await batcher.aclose()

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(run()))


def test_questions_for_different_embedders_never_share_a_batch() -> None:
    old, new = RecordingEmbedder(), RecordingEmbedder()

    async def run() -> None:
        batcher = QueryBatcher()
        try:
            await asyncio.gather(*(batcher.query_embed(old if i % 2 else new, t) for i, t in enumerate(QUESTIONS[:6])))
        finally:
            await batcher.aclose()

    asyncio.run(run())
    assert sorted(t for c in old.calls for t in c) == sorted(QUESTIONS[1:6:2])
    assert sorted(t for c in new.calls for t in c) == sorted(QUESTIONS[0:6:2])


def test_an_idle_encoder_waits_at_most_max_wait_for_company() -> None:
    embedder = RecordingEmbedder()

    async def run() -> tuple[float, list[int]]:
        batcher = QueryBatcher(max_wait=0.002)
        try:
            submitted = time.monotonic()
            lone = await batcher.query_embed(embedder, "alone")
            assert lone.shape == (embedder.dimension,)
            waited = embedder.started[0] - submitted
            # Within the window, companions join the same encode.
            await asyncio.gather(*(batcher.query_embed(embedder, t) for t in QUESTIONS[:5]))
            return waited, [len(c) for c in embedder.calls]
        finally:
            await batcher.aclose()

    waited, sizes = asyncio.run(run())
    assert waited < 0.002 + 0.1  # the window plus generous scheduling slack; never "until full"
    assert sizes == [1, 5]
    with pytest.raises(ValueError, match="2 ms"):
        QueryBatcher(max_wait=0.01)


def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    embedder = RecordingEmbedder()

    async def run() -> list[object]:
        batcher = QueryBatcher()
        try:
            embedder.hold.clear()
            first = asyncio.ensure_future(batcher.query_embed(embedder, "first"))
            await asyncio.to_thread(embedder.entered.wait, 10)
            quitter = asyncio.ensure_future(batcher.query_embed(embedder, "quitter"))
            stayer = asyncio.ensure_future(batcher.query_embed(embedder, "stayer"))
            await asyncio.sleep(0)
            quitter.cancel()
            embedder.hold.set()
            return list(await asyncio.gather(first, stayer))
        finally:
            await batcher.aclose()

    _, stayer = asyncio.run(run())
    assert isinstance(stayer, np.ndarray)
    assert np.array_equal(stayer, FakeEmbedder().query_embed(["stayer"])[0])
    assert all("quitter" not in call for call in embedder.calls)


def test_closing_fails_queued_callers_and_refuses_new_ones() -> None:
    embedder = RecordingEmbedder()

    async def run() -> tuple[list[object], BaseException | None]:
        batcher = QueryBatcher()
        embedder.hold.clear()
        first = asyncio.ensure_future(batcher.query_embed(embedder, "first"))
        await asyncio.to_thread(embedder.entered.wait, 10)
        queued = asyncio.ensure_future(batcher.query_embed(embedder, "queued"))
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(batcher.aclose())
        await asyncio.sleep(0)
        embedder.hold.set()
        await closing
        results = list(await asyncio.gather(first, queued, return_exceptions=True))
        try:
            await batcher.query_embed(embedder, "late")
        except BatcherClosed as e:
            return results, e
        return results, None

    (first, queued), refused = asyncio.run(run())
    assert isinstance(first, np.ndarray)  # the batch in hand finishes
    assert isinstance(queued, BatcherClosed)
    assert isinstance(refused, BatcherClosed)


def test_a_batcher_outlives_its_event_loop() -> None:
    """A TestClient without `with` runs each request in a new loop; the batcher follows."""
    batcher, embedder = QueryBatcher(), FakeEmbedder()
    first = asyncio.run(batcher.query_embed(embedder, "first"))
    second = asyncio.run(batcher.query_embed(embedder, "second"))
    assert np.array_equal(second, embedder.query_embed(["second"])[0])
    assert not np.array_equal(first, second)
    asyncio.run(batcher.aclose())


def test_two_running_event_loops_share_one_encoder() -> None:
    """A TestClient's loop and a test's own ASGI client can both be live at once."""
    batcher, embedder = QueryBatcher(), RecordingEmbedder()
    other: list[np.ndarray] = []
    embedder.hold.clear()
    thread = threading.Thread(target=lambda: other.append(asyncio.run(batcher.query_embed(embedder, "other loop"))))
    thread.start()
    assert embedder.entered.wait(10)

    async def here() -> np.ndarray:
        pending = asyncio.ensure_future(batcher.query_embed(embedder, "this loop"))
        await asyncio.sleep(0.01)
        embedder.hold.set()
        return await pending

    mine = asyncio.run(here())
    thread.join(10)
    assert np.array_equal(mine, FakeEmbedder().query_embed(["this loop"])[0])
    assert np.array_equal(other[0], FakeEmbedder().query_embed(["other loop"])[0])
    assert embedder.calls == [["other loop"], ["this loop"]]
    asyncio.run(batcher.aclose())


# --- the repeat cache ---------------------------------------------------------------------------


def _assistant(settings: Settings) -> Assistant:
    return Assistant.load(settings, FakeEmbedder())


def test_cache_gives_a_fresh_reply_id_and_forgets_on_reload(settings: Settings) -> None:
    first, reloaded = _assistant(settings), _assistant(settings)
    cache = ReplyCache(capacity=2)
    reply = first.ask("Does the needle hurt?")
    cache.put(first, cache_key("Does the needle hurt?"), reply)

    again = cache.get(first, cache_key(" Does  the needle hurt? "))
    assert again is not None
    assert again.reply_id != reply.reply_id
    same = ("kind", "answer", "passage", "score", "suggestions", "rule")
    assert [getattr(again, f) for f in same] == [getattr(reply, f) for f in same]
    # A reloaded knowledge base answers anew.
    assert cache.get(reloaded, cache_key("Does the needle hurt?")) is None
    cache.put(reloaded, "a", reply)
    assert cache.get(first, cache_key("Does the needle hurt?")) is None


def test_cache_is_bounded_least_recent_first(settings: Settings) -> None:
    assistant = _assistant(settings)
    reply = assistant.ask("Does the needle hurt?")
    cache = ReplyCache(capacity=2)
    for key in ("a", "b"):
        cache.put(assistant, key, reply)
    assert cache.get(assistant, "a") is not None  # "a" is now the most recent
    cache.put(assistant, "c", reply)
    assert cache.get(assistant, "b") is None
    assert cache.get(assistant, "a") is not None and cache.get(assistant, "c") is not None
    off = ReplyCache(capacity=0)
    off.put(assistant, "a", reply)
    assert off.get(assistant, "a") is None


def test_ask_route_caches_repeats_but_never_repeats_a_reply_id(client: TestClient) -> None:
    path = client.app.state.ask_path  # type: ignore[attr-defined]
    first = client.post("/v1/ask", json={"question": "Does the needle hurt?"})
    second = client.post("/v1/ask", json={"question": "Does the  needle hurt?"})
    assert first.status_code == second.status_code == 200
    a, b = first.json(), second.json()
    assert a["reply_id"] != b["reply_id"]
    assert {k: v for k, v in a.items() if k != "reply_id"} == {k: v for k, v in b.items() if k != "reply_id"}
    assert (path.cache.hits, path.batcher.texts) == (1, 1)  # the repeat never reached the encoder


def test_a_message_of_several_sentences_is_encoded_whole_and_by_sentence_in_one_batch(client: TestClient) -> None:
    path = client.app.state.ask_path  # type: ignore[attr-defined]
    question = "Does the needle hurt? I am nervous about it. Thanks"
    reply = client.post("/v1/ask", json={"question": question})
    assert reply.status_code == 200
    # The message and its two sentences (the one-word fragment joins the second): one encode call.
    assert (path.batcher.batches, path.batcher.texts) == (1, 3)
