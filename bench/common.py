"""What every benchmark shares: a redis-server of its own (the tests' choice of binary,
tests/redis_binary.py), results rows, the machine."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.redis_binary import find_binaries

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table: a measurement and the baseline it is compared with."""

    figure: str
    measure: str
    value: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: str = "—"


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def ratio(value: float, baseline: float) -> str:
    if baseline == 0:
        return "—"
    r = value / baseline
    return f"{r:.2f}×" if r >= 0.1 else f"1/{baseline / value:.0f}" if value else "0"


def table(rows: list[Row]) -> str:
    head = ["Fig.", "Measure", "Value", "Baseline", "Ratio", "Target", "Met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.figure, r.measure, r.value, r.baseline, r.ratio, r.target, r.met]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    server = find_binaries().server
    redis_version = subprocess.run(
        [server, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    version = next((p[2:] for p in redis_version if p.startswith("v=")), "?")
    return (
        f"{os.cpu_count()} CPU(s) ({model}), Python {platform.python_version()} "
        f"on {platform.system()} {platform.release()}, {Path(server).name} {version}"
    )


def median(values: list[float]) -> float:
    return statistics.median(values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; yields its URL, stops it after."""
    binary = find_binaries().server
    with tempfile.TemporaryDirectory(prefix="papers-bench-redis-") as workdir:
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port, socket_connect_timeout=0.2)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.01)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)
