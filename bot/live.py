"""The live progress display of `papers-bot digest` (and `markdown`) on a terminal, by rich.

It stays at the bottom of the terminal while the run goes on: the arXiv requests made and
the queries done before delivery, channels done out of all, messages posted, and the wait in
progress with its reason (arXiv's request interval or Retry-After, a chat's rate limit).
Log lines, and the console's digests when stdout is the same terminal, print above it.
Only `bot.jobs` imports this, and only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO, cast

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bot.progress import Progress

REFRESHES = 4
"""Redraws of the display per second."""
BAR_WIDTH = 30
"""Characters of the channels' bar."""


class LiveProgress:
    """The display's state, updated by the run (`bot.progress.Progress`), drawn by rich."""

    def __init__(
        self,
        requests: Callable[[], int],
        *,
        clock: Callable[[], float] = time.monotonic,
        redraw: Callable[[], None] = lambda: None,
    ) -> None:
        self._requests = requests
        self._clock = clock
        self._started = clock()
        self.redraw = redraw
        """Called when a wait starts, so that even a short one is seen."""
        self._queries = (0, 0)
        self._channels: int | None = None
        self._done = self._failed = 0
        self._messages = self._papers = 0
        self._waits: list[tuple[float, str]] = []  # (when it ends, why); replaced, not changed
        self._waited = 0.0

    def queried(self, done: int, total: int) -> None:
        self._queries = (done, total)

    def channels(self, total: int) -> None:
        self._channels = total

    def channel_done(self, failed: bool) -> None:
        self._done += 1
        self._failed += failed

    def posted(self, papers: int) -> None:
        self._messages += 1
        self._papers += papers

    def waiting(self, reason: str, seconds: float) -> None:
        now = self._clock()
        self._waits = [w for w in self._waits if w[0] > now] + [(now + seconds, reason)]
        self._waited += seconds
        self.redraw()

    def __rich__(self) -> RenderableType:
        now = self._clock()
        grid = Table.grid(padding=(0, 1))
        grid.add_row(Text("arXiv", style="bold"), self._arxiv())
        grid.add_row(Text("channels", style="bold"), self._channel_bar())
        messages = f"{self._messages} posted ({self._papers} papers)"
        grid.add_row(Text("messages", style="bold"), Text(messages))
        grid.add_row(Text("elapsed", style="bold"), Text(_clock_time(now - self._started)))
        waits = [(end, why) for end, why in self._waits if end > now]
        if waits:
            end, why = max(waits)
            more = f" (and {len(waits) - 1} more waits)" if len(waits) > 1 else ""
            line = Text(
                f"{end - now:.1f}s{more}: {why}", "yellow", no_wrap=True, overflow="ellipsis"
            )
            grid.add_row(Text("waiting", style="bold yellow"), line)
        elif self._waited:
            grid.add_row(Text("waited", style="bold"), Text(f"{self._waited:.1f}s in all"))
        return grid

    def _arxiv(self) -> Text:
        made = self._requests()
        text = f"{made} request" + ("" if made == 1 else "s")
        done, total = self._queries
        if total > 1:
            text += f", queries {done}/{total}"
        return Text(text)

    def _channel_bar(self) -> RenderableType:
        if self._channels is None:
            return Text("waiting for arXiv", style="dim")
        bar = ProgressBar(total=max(self._channels, 1), completed=self._done, width=BAR_WIDTH)
        count = f"{self._done}/{self._channels} done"
        if self._failed:
            count += f" ({self._failed} failed)"
        grid = Table.grid(padding=(0, 1))
        grid.add_row(bar, Text(count))
        return grid


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class Above(io.TextIOBase):
    """A text stream whose lines print above the live display, unwrapped, as written."""

    def __init__(self, console: Console, terminal: TextIO) -> None:
        super().__init__()
        self._console = console
        self._terminal = terminal
        self._partial = ""
        self._lock = threading.Lock()  # log lines come from worker threads too

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
        if lines:  # one print, so one redraw of the display below them
            self._console.print(Text("\n".join(lines)), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            self._console.print(Text(partial), soft_wrap=True, end="")

    def isatty(self) -> bool:
        return self._terminal.isatty()

    def fileno(self) -> int:
        return self._terminal.fileno()


@contextlib.contextmanager
def shown(requests: Callable[[], int]) -> Iterator[Progress]:
    """The live display on stderr while inside; `requests` counts arXiv requests so far.
    Log lines on stderr, and stdout when it is the same kind of terminal, print above it."""
    terminal = sys.stderr
    console = Console(file=terminal, highlight=False)
    display = LiveProgress(requests)
    live = Live(
        display,
        console=console,
        refresh_per_second=REFRESHES,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    display.redraw = live.refresh
    above = cast(TextIO, Above(console, terminal))  # a TextIOBase is no `typing.TextIO`
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream is terminal
    ]
    with contextlib.ExitStack() as stack:
        stack.enter_context(live)
        stack.callback(above.flush)
        stack.enter_context(_logging_to(handlers, above))
        stack.enter_context(contextlib.redirect_stderr(above))
        if sys.stdout.isatty():
            stack.enter_context(contextlib.redirect_stdout(above))
        yield display


@contextlib.contextmanager
def _logging_to(
    handlers: Sequence[logging.StreamHandler[TextIO]], stream: TextIO
) -> Iterator[None]:
    before = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(stream)
    try:
        yield
    finally:
        for handler, old in zip(handlers, before, strict=True):
            handler.setStream(old)
