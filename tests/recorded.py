"""A `bot.progress.Progress` that keeps what a run told it, for tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Recorded:
    queries: list[tuple[int, int]] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)
    """Each channel's end: True when it failed."""
    messages: list[int] = field(default_factory=list)
    """Each message's papers."""
    waits: list[tuple[str, float]] = field(default_factory=list)

    def queried(self, done: int, total: int) -> None:
        self.queries.append((done, total))

    def channels(self, total: int) -> None:
        self.totals.append(total)

    def channel_done(self, failed: bool) -> None:
        self.done.append(failed)

    def posted(self, papers: int) -> None:
        self.messages.append(papers)

    def waiting(self, reason: str, seconds: float) -> None:
        self.waits.append((reason, seconds))
