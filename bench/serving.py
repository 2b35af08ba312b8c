"""Start a Rasa server on a model and measure it from outside, as a client would."""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import requests

from supportbot.settings import PROJECT_ROOT


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resident_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MB (Linux /proc); ``field="VmHWM"``: its peak so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank: the smallest value with at least q% of them at or below it."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class RasaServer:
    """A Rasa server process started on a model."""

    process: subprocess.Popen
    url: str
    ready_seconds: float

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_rasa_server(model: Path, action_endpoint_url: str = "http://127.0.0.1:9/webhook",
                      timeout: float = 300.0, log_path: Optional[Path] = None) -> RasaServer:
    """Start ``rasa run`` on ``model`` and wait until it answers a message."""
    port = free_port()
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", PYTHONPATH=str(PROJECT_ROOT),
               ACTION_ENDPOINT_URL=action_endpoint_url, SQLALCHEMY_SILENCE_UBER_WARNING="1")
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "rasa", "run", "--model", str(model), "--port", str(port),
         "--interface", "127.0.0.1", "--credentials", str(PROJECT_ROOT / "credentials.yml"),
         "--endpoints", str(PROJECT_ROOT / "endpoints.yml")],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"rasa exited with {process.returncode} (log: {log_path})")
        try:
            reply = requests.post(f"{url}/webhooks/rest/webhook",
                                  json={"sender": "readiness", "message": "hello"}, timeout=5)
            if reply.status_code == 200:
                return RasaServer(process, url, time.monotonic() - started)
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("rasa did not become ready")


def sequential_latencies_ms(url: str, messages: Sequence[str], turns_per_conversation: int = 8,
                            rounds: int = 1) -> List[float]:
    """Latency of each message sent one at a time, fresh sender per conversation."""
    latencies = []
    with requests.Session() as session:
        for _ in range(rounds):
            sender = None
            for index, message in enumerate(messages):
                if index % turns_per_conversation == 0:
                    sender = f"bench-{uuid.uuid4().hex}"
                started = time.perf_counter()
                reply = session.post(f"{url}/webhooks/rest/webhook",
                                     json={"sender": sender, "message": message}, timeout=30)
                latencies.append((time.perf_counter() - started) * 1000)
                reply.raise_for_status()
    return latencies


def median(values: Sequence[float]) -> float:
    """Median of ``values``."""
    return statistics.median(values)
