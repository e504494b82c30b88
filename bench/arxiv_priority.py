"""Figure Q: how long the digest's listing request waits behind members' commands (issue 22,
finding 3). `python -m bench.arxiv_priority` (a minute on the code before the fix).

N members each send 20 `/papers recent` at once (the command limit's default, a keyword
nobody follows each time) through the real `Commands`, `ArxivSource` and `RedisStore`,
against the fake arXiv; once arXiv has had two of them, the digest asks for the day's
listing. Measured: the command requests that reached arXiv before the listing, and the
listing's wait, at a request interval of `INTERVAL` (3 s / 30; the wait is given at 3 s).
Uses only what the code before the fix also has, so the same script measures both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis

from bench.common import redis_server
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands, Reply
from bot.models import Channel
from bot.settings import CommandSettings, Settings
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import FakeArxiv, make_paper

REAL_INTERVAL = 3.0
INTERVAL = 0.1
MEMBERS = (1, 2, 5)
PER_MEMBER = 20


def settings_for(fake: FakeArxiv) -> Settings:
    commands: dict[str, Any] = {}
    if "arxiv_share" in CommandSettings.model_fields:  # the same share of real capacity
        commands["arxiv_share"] = 0.5 * INTERVAL / REAL_INTERVAL
    return Settings.model_validate(
        {"arxiv": fake.settings(request_interval=INTERVAL), "commands": commands}
    )


async def measure(url: str, members: int) -> tuple[int, float, int]:
    """Requests ahead of the listing, its wait (s), commands answered (not refused)."""
    client = aioredis.Redis.from_url(url, decode_responses=True, max_connections=500)
    await client.flushdb()
    store = RedisStore(client, prefix="bench")
    papers = [make_paper(n, title=f"Subject study {n}") for n in range(1, 9)]
    with FakeArxiv(papers) as fake:
        settings = settings_for(fake)
        source = ArxivSource(settings.arxiv, shared=store)
        commands = Commands(settings, store, source)
        asks = [
            commands.handle(CommandContext(Channel("slack", "C1"), f"U{m}"), f"recent s m{m} k{i}")
            for i in range(PER_MEMBER)
            for m in range(members)
        ]
        tasks: list[asyncio.Task[Reply]] = [asyncio.create_task(a) for a in asks]
        # Two arrived: every command has got through its Redis calls and waits for arXiv.
        while len(fake.requests) < 2:  # noqa: ASYNC110 (recorded in the fake's thread)
            await asyncio.sleep(0.005)
        before = len(fake.requests)
        started = time.perf_counter()
        await source.listing_part("cs", None)
        waited = time.perf_counter() - started
        order = [r.path.startswith("/rss/") for r in fake.requests]
        await asyncio.gather(*tasks)
    answered = sum(t.result().ok for t in tasks)
    await client.aclose()
    return order.index(True) - before, waited, answered


async def main() -> None:
    logging.disable(logging.WARNING)  # one `arxiv_busy` line per refused command
    with redis_server() as url:
        for members in MEMBERS:
            ahead, waited, answered = await measure(url, members)
            real = waited * REAL_INTERVAL / INTERVAL
            print(
                f"members {members}: {ahead} requests ahead of the listing; waited "
                f"{waited / INTERVAL:.1f} intervals ({real:.0f} s at 3 s); "
                f"{answered} of {members * PER_MEMBER} commands answered, the rest refused"
            )


if __name__ == "__main__":
    asyncio.run(main())
