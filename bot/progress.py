"""What a digest run tells whoever watches it: arXiv queries, channels done, messages, waits.

The core reports to `reporting()`, the `Progress` of the run in context: a `DigestRunner`
given one (`progress=`) sets it for everything its run calls (the arXiv source, the
publishers), so none of them takes it as an argument. Without one set it is `QUIET`, which
does nothing: the service, cron and CI print their log lines only. `papers-bot digest` on a
terminal gives the live display of `bot.live`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol


class Progress(Protocol):
    def queried(self, done: int, total: int) -> None:
        """Of the arXiv queries before delivery (the listing, then catch-up), `done` ended."""

    def channels(self, total: int) -> None:
        """Delivery starts for `total` channels."""

    def channel_done(self, failed: bool) -> None:
        """One channel's delivery ended, with an error when `failed`."""

    def posted(self, papers: int) -> None:
        """One message went out, carrying `papers` papers (0: a "no new papers" line)."""

    def waiting(self, reason: str, seconds: float) -> None:
        """A wait of `seconds` starts now: arXiv or a chat platform asked for it."""


class Quiet:
    """The `Progress` that shows nothing."""

    def queried(self, done: int, total: int) -> None:
        pass

    def channels(self, total: int) -> None:
        pass

    def channel_done(self, failed: bool) -> None:
        pass

    def posted(self, papers: int) -> None:
        pass

    def waiting(self, reason: str, seconds: float) -> None:
        pass


QUIET = Quiet()

_REPORTING: ContextVar[Progress] = ContextVar("papers_bot_progress", default=QUIET)


def reporting() -> Progress:
    """The run's `Progress` (`QUIET` outside a run that has one)."""
    return _REPORTING.get()


@contextlib.contextmanager
def reporting_to(progress: Progress) -> Iterator[None]:
    """Inside, `reporting()` is `progress` (tasks started inside keep it)."""
    token = _REPORTING.set(progress)
    try:
        yield
    finally:
        _REPORTING.reset(token)
