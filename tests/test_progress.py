"""`papers-bot digest`'s live progress: shown on a terminal (a real pseudo-terminal), and
nothing but the log lines without one (real processes against the fake arXiv); the display
itself, drawn by rich on a clock of the test's."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from bot.live import LiveProgress
from tests.fakes.arxiv_server import FakeArxiv, make_paper

LOG_LINE = re.compile(r"time=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=[A-Z]+ logger=\S+ \S")
SUMMARY_LINE = re.compile(r"papers-bot: \S")
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
COLUMNS, ROWS = 160, 40


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    now = datetime.now(UTC)
    papers = [
        make_paper(n, title=f"Reward model number {n}", published=now - timedelta(hours=10 - n))
        for n in range(1, 4)
    ]
    with FakeArxiv(papers) as server:
        yield server


@pytest.fixture
def env(fake: FakeArxiv) -> dict[str, str]:
    inherited = ("PAPERS_BOT_", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS", "LINES")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(inherited)},
        "TERM": "xterm-256color",
        "PAPERS_BOT_REDIS_URL": "memory://",
        "PAPERS_BOT_ARXIV__API_URL": fake.url,
        "PAPERS_BOT_ARXIV__RSS_URL": fake.rss_url,
        "PAPERS_BOT_ARXIV__REQUEST_INTERVAL": "0",
        "PAPERS_BOT_ARXIV__RETRY_BACKOFF": "0",
        "PAPERS_BOT_ARXIV__MAX_RETRIES": "2",
    }


@dataclass
class Ran:
    code: int
    terminal: str
    """What the terminal received, as bytes decoded."""
    stdout: bytes = b""
    stderr: bytes = b""


def papers_bot(
    tmp_path: Path, env: dict[str, str], *args: str, stdout: bool = True, stderr: bool = True
) -> Ran:
    """`papers-bot ARGS` with stdout and stderr on one pseudo-terminal, or piped where
    `stdout` or `stderr` is False, as from a shell that redirects them."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout else subprocess.PIPE,
        stderr=slave if stderr else subprocess.PIPE,
    )
    os.close(slave)
    received = _read_until_closed(master, process)
    out, err = process.communicate(timeout=30)
    return Ran(process.returncode, received.decode(errors="replace"), out or b"", err or b"")


def _read_until_closed(master: int, process: subprocess.Popen[bytes], within: float = 60) -> bytes:
    """Everything the process writes to the terminal (read as it comes: a full terminal
    would block it), until it closes it."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None and not _pending(master):
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            process.kill()
    finally:
        os.close(master)
    return b"".join(chunks)


def _pending(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def plain(terminal: str) -> str:
    """The terminal's text with rich's colours and cursor moves taken out."""
    return ESCAPES.sub("", terminal)


def summary(text: str) -> re.Match[str]:
    found = re.search(r"(\d+) paper\(s\) delivered to (\d+) channel\(s\) with (\d+) arXiv", text)
    assert found is not None, text
    return found


def test_a_terminal_shows_channels_messages_requests_and_the_wait(
    tmp_path: Path, env: dict[str, str], fake: FakeArxiv
) -> None:
    fake.fail_next(429, headers={"Retry-After": "1"})  # the listing's first request
    ran = papers_bot(tmp_path, env, "digest", "--keyword", "reward model")
    text = plain(ran.terminal)
    assert ran.code == 0, text
    requests = summary(text).group(3)
    assert int(requests) >= 2  # the 429, then the listing again
    assert re.search(r"channels .*1/1 done", text), text
    assert re.search(r"messages +1 posted \(3 papers\)", text), text
    assert re.search(rf"arXiv +{requests} requests", text), text
    assert re.search(r"waiting +\d\.\ds: arXiv: HTTP 429, retrying the day's listing", text), text
    assert re.search(r"waited +1\.0s in all", text), text
    # The digest and the log lines print whole above the display.
    assert "Reward model number 3" in text
    assert re.search(r"level=WARNING logger=bot\.arxiv_source arxiv_retry .*HTTP 429", text)


def test_with_stdout_redirected_the_digest_is_the_same_and_progress_still_shows(
    tmp_path: Path, env: dict[str, str]
) -> None:
    shown = papers_bot(tmp_path, env, "digest", "--keyword", "reward model", stdout=False)
    piped = papers_bot(
        tmp_path, env, "digest", "--keyword", "reward model", stdout=False, stderr=False
    )
    assert shown.code == piped.code == 0
    assert re.search(r"channels .*1/1 done", plain(shown.terminal)), shown.terminal
    assert b"Reward model number 3" in shown.stdout
    assert shown.stdout == piped.stdout  # not a byte of the display on stdout


@pytest.mark.parametrize("stdout_on_terminal", [True, False])
def test_without_a_terminal_on_stderr_only_log_lines_appear(
    tmp_path: Path, env: dict[str, str], fake: FakeArxiv, stdout_on_terminal: bool
) -> None:
    """As `papers-bot digest 2>>digest.log` (from a terminal or not), and cron, CI, the
    service: every line on stderr is a log line or the closing summary."""
    fake.fail_next(429, headers={"Retry-After": "0.2"})
    ran = papers_bot(
        tmp_path,
        env,
        "digest",
        "--keyword",
        "reward model",
        stdout=stdout_on_terminal,
        stderr=False,
    )
    assert ran.code == 0
    err = ran.stderr.decode()
    lines = err.split("\n")
    assert lines.pop() == ""  # every line ends
    assert all(LOG_LINE.match(line) or SUMMARY_LINE.match(line) for line in lines), err
    assert any("arxiv_retry" in line for line in lines) and "digest_done" in err
    assert "\x1b" not in err and "\r" not in err
    summary(err)


def rendered(display: LiveProgress) -> str:
    out = io.StringIO()
    Console(file=out, width=100, force_terminal=True, color_system=None).print(display)
    return out.getvalue()


def test_the_display_counts_failures_and_shows_the_longest_of_concurrent_waits() -> None:
    now = [100.0]
    requests = [0]
    display = LiveProgress(lambda: requests[0], clock=lambda: now[0])
    assert "waiting for arXiv" in rendered(display) and "0 requests" in rendered(display)
    requests[0] = 1
    display.queried(1, 4)
    assert re.search(r"arXiv +1 request, queries 1/4\n", rendered(display))
    display.channels(3)
    display.channel_done(failed=False)
    display.channel_done(failed=True)
    display.posted(5)
    display.posted(0)
    text = rendered(display)
    assert re.search(r"channels .*2/3 done \(1 failed\)", text), text
    assert re.search(r"messages +2 posted \(5 papers\)", text), text
    display.waiting("Slack: HTTP 429 (Retry-After)", 30)
    display.waiting("arXiv's request interval (3s)", 3)
    now[0] += 1
    assert re.search(r"waiting +29\.0s \(and 1 more waits\): Slack: HTTP 429", rendered(display))
    now[0] += 29
    assert re.search(r"waited +33\.0s in all", rendered(display))
    assert "waiting" not in rendered(display)
    display.waiting("x" * 300, 1)
    assert max(len(line) for line in rendered(display).split("\n")) <= 100  # one line, cut
