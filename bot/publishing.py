"""The interface every output implements, declared here so the core never imports one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Protocol

from bot.models import Channel, Digest
from bot.progress import reporting

Delivered = Callable[[Sequence[str]], Awaitable[None]]
"""Called by a publisher with the ids of the papers a message carried, once it is delivered."""


def message_key(channel: Channel, paper_ids: Sequence[str], text: str = "") -> str:
    """A 25-character name for one message of a digest, the same when a crashed run is
    retried: platforms that deduplicate on it (Discord's enforce_nonce) post it once."""
    material = "\n".join([channel.key, *sorted(paper_ids), "" if paper_ids else text])
    return hashlib.sha256(material.encode()).hexdigest()[:25]


STOP_ASKED: ContextVar[asyncio.Event | None] = ContextVar("papers_bot_stop_asked", default=None)
"""Set by the digest runner for the publishers it calls: the event that says the run is
asked to stop (`DigestRunner.stop`). Publishers wait through `pause`, which watches it."""


async def pause(seconds: float, reason: str = "rate limited (429)") -> bool:
    """A publisher's wait (a rate limit's Retry-After): True once `seconds` passed, False as
    soon as the run is asked to stop, so that no wait outlives a stop. `reason` is shown by
    the run's progress display (`bot.progress`)."""
    reporting().waiting(reason, seconds)
    stop = STOP_ASKED.get()
    if stop is None:
        await asyncio.sleep(seconds)
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()


class ChannelPacer:
    """At most one call per `interval` seconds per channel (a chat channel's id, a webhook's
    URL), from the end of one to the start of the next; channels do not wait for each other.
    The slot is held while the call runs, so its retries count too."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._next: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, channel: str) -> AsyncIterator[None]:
        async with self._locks[channel]:
            wait = self._next.get(channel, 0.0) - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._next[channel] = self._clock() + self._interval


class DeliveryError(Exception):
    """A channel that cannot take messages now: unknown, archived, no access, bad token.

    Its papers stay unseen so the next run tries again; other channels go on. `everywhere`
    says the output itself is refused (a revoked token): every channel of the platform would
    fail the same way, so the digest reports it once and skips the platform's other channels.
    `gone` says the channel itself is gone (deleted, archived, unknown): after several runs in
    a row the digest drops its chat subscriptions (`[commands] drop_after_failures`).
    """

    def __init__(
        self, channel: Channel, reason: str, *, everywhere: bool = False, gone: bool = False
    ) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason
        self.everywhere = everywhere
        self.gone = gone


class Publisher(Protocol):
    @property
    def platform(self) -> str:
        """`slack`, `discord`, `markdown` or `console`: matches a subscription's platform."""
        ...

    @property
    def needs_recent(self) -> bool:
        """True when the output shows each keyword's full recent list (Markdown)."""
        ...

    @property
    def shows_everything(self) -> bool:
        """True when the output shows everything new at once (console, Markdown): a new
        keyword has no first-run limit, and nobody votes there (no ranking, no buttons)."""
        ...

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        """Post one channel's digest; call `delivered` after each message that went out.

        Raise DeliveryError when the channel cannot take messages.
        """
        ...

    async def aclose(self) -> None:
        """Let go of connections and clients; called once, when the job or service ends."""
        ...


def shows_everything(publisher: Publisher | None) -> bool:
    """`publisher.shows_everything`; False when there is no publisher, or for a plugin's
    publisher written before the attribute existed."""
    return bool(getattr(publisher, "shows_everything", False))
