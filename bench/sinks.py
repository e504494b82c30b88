"""Stand-ins for the chat adapters: they count what they were asked to post."""

from __future__ import annotations

from collections import Counter

from bot.models import Channel, Digest
from bot.publishing import Delivered


class RecordingPublisher:
    """Posts nothing; splits each digest into messages of `per_message` papers and reports
    each as delivered, as a chat adapter does after each successful post."""

    needs_recent = False
    shows_everything = False

    def __init__(self, platform: str = "slack", per_message: int = 10) -> None:
        self.platform = platform
        self.per_message = per_message
        self.messages = 0
        self.papers: Counter[Channel] = Counter()
        self.duplicates = 0
        self._seen: set[tuple[Channel, str]] = set()

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        ids = [item.paper.id for item in digest.items]
        for start in range(0, len(ids), self.per_message):
            chunk = ids[start : start + self.per_message]
            self.messages += 1
            for pid in chunk:
                key = (digest.channel, pid)
                self.duplicates += key in self._seen
                self._seen.add(key)
            self.papers[digest.channel] += len(chunk)
            await delivered(chunk)

    async def aclose(self) -> None:
        pass

    @property
    def total(self) -> int:
        return sum(self.papers.values())

    def reset_counts(self) -> None:
        self.messages = 0
        self.papers.clear()
