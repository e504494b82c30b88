"""Figure 5: start-up. `papers-bot --help` and `papers-bot run` until /healthz answers,
against `python -c pass`; and which modules each one imports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.common import Row, free_port, median, ratio, say, verdict

FORBIDDEN = ("slack_bolt", "slack_sdk", "discord", "arxiv", "redis")
"""Libraries `--help` must not load (the last two: it talks to neither arXiv nor Redis)."""
CHAT = ("slack_bolt", "slack_sdk", "discord")
RUNS = 15


def console_script() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "papers-bot"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "bot"]  # not installed: the same entry point


def timed(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def modules_in(stderr: str) -> set[str]:
    """Top-level packages named in `-X importtime` output."""
    modules = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":
                modules.add(name.split(".")[0])
    return modules


def imported(args: Sequence[str], env: dict[str, str]) -> set[str]:
    """Top-level packages a Python command imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    return modules_in(proc.stderr)


def heaviest_imports(args: Sequence[str], env: dict[str, str], n: int = 3) -> str:
    """The `n` costliest imports one level below the top (cumulative ms, `-X importtime`)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    found: list[tuple[int, str]] = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3:
            continue
        cumulative, name = parts[1].strip(), parts[2]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        if depth == 1 and cumulative.isdigit():
            found.append((int(cumulative), name.strip()))
    found.sort(reverse=True)
    return ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in found[:n])


def run_until_ready(
    redis_url: str, env: dict[str, str], *, importtime: bool = False
) -> tuple[float, set[str]]:
    """Seconds from spawning `papers-bot run` to /healthz answering 200, and (with
    `importtime`) the packages it imported by then."""
    port = free_port()
    service_env = {
        **env,
        "PAPERS_BOT_REDIS_URL": redis_url,
        "PAPERS_BOT_KEY_PREFIX": f"startup{port}",
        "PAPERS_BOT_SERVICE__HEALTH_HOST": "127.0.0.1",
        "PAPERS_BOT_SERVICE__HEALTH_PORT": str(port),
        "PAPERS_BOT_ARXIV__API_URL": f"http://127.0.0.1:{free_port()}/api/query",
        "PAPERS_BOT_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-X", "importtime", "-m", "bot"] if importtime else console_script()
    with tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*argv, "run"],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=service_env,
            cwd=tempfile.gettempdir(),
        )
        try:
            ready = _wait_healthy(port, proc, started)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors.seek(0)
        return ready, modules_in(errors.read())


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], started: float) -> float:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() > started + 30:
            raise RuntimeError("papers-bot run did not become ready")
        time.sleep(0.005)


def run(redis_url: str) -> list[Row]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAPERS_BOT_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    base_argv = [sys.executable, "-c", "pass"]
    help_argv = [*console_script(), "--help"]
    timed(help_argv, env)  # warm the page cache and .pyc files
    base, helps = [], []
    for _ in range(RUNS):  # interleaved, so drift hits both alike
        base.append(timed(base_argv, env))
        helps.append(timed(help_argv, env))
    base_s, help_s = median(base), median(helps)
    base_mods = imported(["-c", "pass"], env)
    help_mods = imported(["-m", "bot", "--help"], env)
    bad = sorted(m for m in help_mods if m in FORBIDDEN)
    heavy = heaviest_imports(["-m", "bot", "--help"], env)
    say(f"  startup: --help {help_s * 1000:.0f} ms vs python {base_s * 1000:.0f} ms")

    ready_s = median([run_until_ready(redis_url, env)[0] for _ in range(5)])
    _, run_mods = run_until_ready(redis_url, env, importtime=True)
    chat = sorted(m for m in run_mods if m in CHAT)
    say(f"  startup: run ready in {ready_s * 1000:.0f} ms")
    return [
        Row(
            "5",
            f"`papers-bot --help` wall time (median of {RUNS})",
            f"{help_s * 1000:.0f} ms",
            f"{base_s * 1000:.0f} ms (`python -c pass`)",
            ratio(help_s, base_s),
            "—",
            "—",
        ),
        Row(
            "5",
            "`papers-bot --help`: modules imported (top-level packages)",
            f"{len(help_mods)}; heaviest: {heavy}",
            f"{len(base_mods)} (`python -c pass`)",
            ratio(len(help_mods), len(base_mods)),
            "none of " + "/".join(FORBIDDEN),
            verdict(not bad) + (f" ({', '.join(bad)})" if bad else ""),
        ),
        Row(
            "5",
            "`papers-bot run` (no chat settings) until /healthz answers (median of 5)",
            f"{ready_s * 1000:.0f} ms",
            f"{help_s * 1000:.0f} ms (`--help`)",
            ratio(ready_s, help_s),
            "no slack/discord imported",
            verdict(not chat) + (f" ({', '.join(chat)})" if chat else ""),
        ),
    ]


if __name__ == "__main__":
    from bench.common import redis_server, table

    with redis_server() as url:
        print(table(run(url)))
