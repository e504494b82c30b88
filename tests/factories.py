"""Papers for tests that don't go through the fake arXiv, and a store that notes refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from bot.models import Channel, Digest, Paper
from bot.publishing import Delivered
from bot.state import Store
from bot.state.memory import MemoryStore
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import FakePaper

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def paper(
    n: int,
    *,
    title: str = "",
    summary: str = "",
    version: int = 1,
    comment: str | None = None,
    authors: tuple[str, ...] = ("Ada Lovelace", "Alan Turing"),
    categories: tuple[str, ...] = ("cs.LG",),
    published: datetime | None = None,
    journal_ref: str | None = None,
) -> Paper:
    when = published or BASE - timedelta(hours=n)
    return Paper(
        id=f"2611.{n:05d}",
        version=version,
        title=title or f"Paper number {n}",
        authors=authors,
        summary=summary or f"Abstract of paper {n}.",
        comment=comment,
        primary_category=categories[0],
        categories=categories,
        published=when,
        updated=when + timedelta(days=version - 1),
        journal_ref=journal_ref,
    )


class Recorder:
    platform = "slack"
    needs_recent = False

    def __init__(self) -> None:
        self.digests: list[Digest] = []

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        self.digests.append(digest)
        if digest.items:
            await delivered([item.paper.id for item in digest.items])

    def posted(self, channel: Channel) -> list[tuple[str, int, bool]]:
        return [
            (i.paper.id, i.paper.version, i.revised)
            for d in self.digests
            if d.channel == channel
            for i in d.items
        ]

    def clear(self) -> None:
        self.digests.clear()


class RefusedLocks(RedisStore):
    """A RedisStore that tells when an attempt at a lock found it taken (`refused`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused = asyncio.Event()

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        taken = await super().acquire(name, owner, ttl)
        if not taken:
            self.refused.set()
        return taken


class Clock:
    """A clock that says `now` until a test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def paper_from_fake(fake: FakePaper) -> Paper:
    """A paper as `bot.arxiv_source.to_paper` builds it (whitespace collapsed)."""
    return Paper(
        id=fake.id,
        version=fake.version,
        title=" ".join(fake.title.split()),
        authors=tuple(fake.authors),
        summary=" ".join(fake.summary.split()),
        comment=" ".join(fake.comment.split()) or None if fake.comment else None,
        primary_category=fake.primary_category,
        categories=tuple(fake.categories),
        published=fake.published,
        updated=fake.updated,
        journal_ref=" ".join(fake.journal_ref.split()) or None if fake.journal_ref else None,
    )


@contextlib.asynccontextmanager
async def either_store(
    kind: str, redis_url: str, clock: Clock, **options: Any
) -> AsyncIterator[Store]:
    """A MemoryStore (`kind` "memory") or a RedisStore on the flushed database at
    `redis_url` (prefix "t"), on `clock`: for tests of the contract both keep."""
    if kind == "memory":
        yield MemoryStore(clock=clock, **options)
        return
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    try:
        yield RedisStore(client, prefix="t", clock=clock, **options)
    finally:
        await client.aclose()
