"""Figure 1, the busy day: a 3,469-row announcement day (2,169 rows in cs) read whole
through arXiv's 2,000-row cap (issue 21).

The real `ArxivSource` and `bot.listing_guard.read_day` against the fake feed, which caps,
orders and types its answers as arXiv's server does (`tests/fakes/arxiv_server.py`,
`announced_rows`), at the scaled request interval of figure 1. The first day starts from one
request; the next (another 3,469-row day) from the split the first remembered. Wall time is
compared with the pacing floor, `(requests - 1) × interval`: what arXiv's terms cost anyway.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date

from bench.arxiv_requests import INTERVAL
from bench.common import Row, ratio
from bot.arxiv_source import ArxivSource
from bot.listing_guard import DayRead, ListingMemory, read_day
from bot.settings import ArxivSettings
from tests.announcement_days import busy_day
from tests.fakes.arxiv_server import FakeArxiv

MONDAY, TUESDAY = date(2026, 12, 7), date(2026, 12, 8)


async def _read(
    fake: FakeArxiv, categories: list[str], memory: ListingMemory | None, day: date
) -> tuple[DayRead, float]:
    settings = ArxivSettings.model_validate(
        fake.settings(request_interval=INTERVAL, categories=categories)
    )
    source = ArxivSource(settings)
    started = time.perf_counter()
    read = await read_day(source.listing_part, categories, memory, today=day)
    return read, time.perf_counter() - started


async def measure() -> list[Row]:
    rows: list[Row] = []
    with FakeArxiv() as fake:
        for categories, name in (([], "every archive"), (["cs"], 'categories = ["cs"]')):
            fake.listing = busy_day(MONDAY).listing
            first, first_wall = await _read(fake, categories, None, MONDAY)
            fake.listing = busy_day(TUESDAY, month=11, seed=22).listing
            later, later_wall = await _read(fake, categories, first.memory, TUESDAY)
            for label, read, wall in (("first", first, first_wall), ("next", later, later_wall)):
                floor = (read.requests - 1) * INTERVAL
                rows.append(
                    Row(
                        "1",
                        f"busy day (3,469 rows), {name}, {label} day: listing requests, wall",
                        f"{read.requests} requests, {wall:.2f} s, {len(read.listing.items)} rows",
                        f"floor {floor:.2f} s",
                        ratio(wall, floor) if floor else "—",
                    )
                )
    return rows


def run(_redis_url: str) -> list[Row]:
    return asyncio.run(measure())
