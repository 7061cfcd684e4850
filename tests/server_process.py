"""A real `python -m app serve` subprocess on a free loopback port, for tests that need real
uvicorn behaviour: its stdout/stderr, signals, chunked bodies, concurrency. Not a test module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")


def start_server(
    knowledge_dir: Path, work_dir: Path, env: dict[str, str] | None = None, ready_timeout: float = 90.0
) -> ServerProcess:
    port = free_port()
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("KETAMINE_QA_")}
    full_env.update(
        {
            "KETAMINE_QA_EMBEDDER": "fake",
            "KETAMINE_QA_KNOWLEDGE_DIR": str(knowledge_dir),
            "KETAMINE_QA_EMBEDDINGS_DIR": str(work_dir / "embeddings"),
            "KETAMINE_QA_DATA_DIR": str(work_dir / "data"),
            "KETAMINE_QA_TODAY": "2026-09-01",
            "PYTHONUNBUFFERED": "1",
        }
    )
    full_env.update(env or {})
    stdout_path, stderr_path = work_dir / f"server-{port}.out", work_dir / f"server-{port}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    server = ServerProcess(process, port, stdout_path, stderr_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.output()[-4000:]}")
        try:
            if httpx.get(server.base_url + "/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server not ready after {ready_timeout}s:\n{server.output()[-4000:]}")
