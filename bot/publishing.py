"""The interface every output implements, declared here so the core never imports one."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from bot.models import Channel, Digest

Delivered = Callable[[Sequence[str]], Awaitable[None]]
"""Called by a publisher with the ids of the papers a message carried, once it is delivered."""


def message_key(channel: Channel, paper_ids: Sequence[str], text: str = "") -> str:
    """A 25-character name for one message of a digest, the same when a crashed run is
    retried: platforms that deduplicate on it (Discord's enforce_nonce) post it once."""
    material = "\n".join([channel.key, *sorted(paper_ids), "" if paper_ids else text])
    return hashlib.sha256(material.encode()).hexdigest()[:25]


class DeliveryError(Exception):
    """A channel that cannot take messages now: unknown, archived, no access, bad token.

    Its papers stay unseen so the next run tries again; other channels go on. `everywhere`
    says the output itself is refused (a revoked token): every channel of the platform would
    fail the same way, so the digest reports it once and skips the platform's other channels.
    """

    def __init__(self, channel: Channel, reason: str, *, everywhere: bool = False) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason
        self.everywhere = everywhere


class Publisher(Protocol):
    @property
    def platform(self) -> str:
        """`slack`, `discord`, `markdown` or `console`: matches a subscription's platform."""
        ...

    @property
    def needs_recent(self) -> bool:
        """True when the output shows each keyword's full recent list (Markdown)."""
        ...

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        """Post one channel's digest; call `delivered` after each message that went out.

        Raise DeliveryError when the channel cannot take messages.
        """
        ...
