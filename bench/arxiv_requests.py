"""Figure 1: arXiv requests and wall time of one digest with K keywords over 20 channels.

The real `DigestRunner`, `ArxivSource` (and so the real `arxiv` client) and `RedisStore`
run against the fake arXiv on loopback, which holds a week of synthetic papers (300 a
day) and serves each day's papers as that day's listing (all announced as new). Day 0 is
the first run (every keyword new); day 1 is a steady-state daily run, timed at a
scaled-down request interval; day 3 after a skipped day 2 is a catch-up run. Baselines,
counted in the same run against the same fake: one request per keyword and channel (a
per-channel bot) and one per keyword (the seed project: the latest 100 papers of each
keyword, every day).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from bench.common import Row, ratio, say, verdict
from bench.fake_process import RemoteFake
from bench.sinks import RecordingPublisher
from bench.synthetic import EPOCH, as_paper, keyword_pool, week_and_days
from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner, RunReport
from bot.fetching import Fetched
from bot.matching import assign, build_query
from bot.models import Channel
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import FakePaper

REAL_INTERVAL = 3.0
INTERVAL = 0.3
"""Scaled request interval: 3 s / 10. Above the ~0.1 s a 500-entry page takes to serve
and parse here, so the fixed per-request costs stay a small part of each interval."""
LATENCY = 0.1
"""Fake server latency for the sensitivity rows: 1 s at the real scale (an assumption)."""
CHANNELS = 20
PER_DAY = 300
KS = (10, 100, 500)
LATER_DAYS = 5
TARGET = 5
"""arXiv requests a digest may make, any K (issue 12); the moonshot is 3."""
MOONSHOT = 3


class TimedRunner(DigestRunner):
    """Records how long the arXiv phase took: the listing (and any catch-up) in `fetch`,
    then the details of the papers to post."""

    fetch_seconds = 0.0

    async def _fill_details(
        self, channels: Mapping[Channel, Sequence[str]], fetched: Fetched
    ) -> None:
        started = time.perf_counter()
        try:
            await super()._fill_details(channels, fetched)
        finally:
            self.fetch_seconds += time.perf_counter() - started

    async def fetch(
        self,
        keywords: Sequence[str],
        *,
        channels: Mapping[Channel, Sequence[str]],
        dry_run: bool = False,
    ) -> Fetched:
        started = time.perf_counter()
        try:
            return await super().fetch(keywords, channels=channels, dry_run=dry_run)
        finally:
            self.fetch_seconds = time.perf_counter() - started


class StallMonitor:
    """The longest time the event loop was unable to run a 10 ms timer on time: what a
    chat command arriving meanwhile would wait before its handler runs."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        tick = 0.01
        while True:
            before = time.perf_counter()
            await asyncio.sleep(tick)
            self.longest = max(self.longest, time.perf_counter() - before - tick)

    def __enter__(self) -> StallMonitor:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def subscriptions(keywords: Sequence[str], channels: int = CHANNELS) -> dict[Channel, list[str]]:
    """Every keyword followed by at least one channel; 3 to 25 keywords a channel."""
    per = min(25, len(keywords), max(3, math.ceil(2 * len(keywords) / channels)))
    return {
        Channel("slack", f"C{c:04d}"): [keywords[(c * per + j) % len(keywords)] for j in range(per)]
        for c in range(channels)
    }


def settings_for(url: str, interval: float) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": {
                "api_url": url,
                "oai_url": "",
                "rss_url": url.removesuffix("api/query") + "rss/",
                "request_interval": interval,
                "retry_backoff": 0,
                "max_retries": 1,
            }
        }
    )


@dataclass
class World:
    fake: RemoteFake
    store: RedisStore
    clock: Clock
    days: list[list[FakePaper]]

    def show_day(self, day: int) -> None:
        """The fake serves the window before day 0 plus days 1..day, and day `day`'s papers
        as its listing; the clock is at `day`."""
        self.fake.show_day(day)
        self.fake.show_listing(day, PER_DAY)
        self.clock.now = EPOCH + timedelta(days=day)


@dataclass
class Run:
    report: RunReport
    requests: int
    wall: float
    fetch: float
    stall: float
    delivered: int
    duplicates: int

    @property
    def floor(self) -> float:
        """Requests start one interval apart: the last starts (N - 1) intervals in."""
        return max(1, self.requests - 1) * INTERVAL


async def digest(
    world: World, subs: dict[Channel, list[str]], source: ArxivSource, interval: float
) -> Run:
    sink = RecordingPublisher()
    settings = settings_for(world.fake.url, interval)
    runner = TimedRunner(settings, world.store, source, {"slack": sink}, clock=world.clock)
    with StallMonitor() as stalls:
        started = time.perf_counter()
        report = await runner.run(subs)
        wall = time.perf_counter() - started
    if world.fake.requests() != report.arxiv_requests:
        raise AssertionError("the fake and the runner disagree on the number of requests")
    return Run(
        report=report,
        requests=report.arxiv_requests,
        wall=wall,
        fetch=runner.fetch_seconds,
        stall=stalls.longest,
        delivered=sink.total,
        duplicates=sink.duplicates,
    )


def expected_deliveries(subs: dict[Channel, list[str]], day: list[FakePaper]) -> int:
    """Papers of this day that each channel should get (at most the per-channel cap)."""
    matched = assign([as_paper(p) for p in day], sorted({k for kws in subs.values() for k in kws}))
    cap = Settings().digest.max_papers_per_channel
    return sum(min(len({p.id for k in kws for p in matched[k]}), cap) for kws in subs.values())


async def steady_day(
    world: World, subs: dict[Channel, list[str]], day: int, *, latency: float
) -> Run:
    world.show_day(day)
    world.fake.set_latency(latency)
    source = ArxivSource(settings_for(world.fake.url, INTERVAL).arxiv)
    try:
        return await digest(world, subs, source, INTERVAL)
    finally:
        world.fake.set_latency(0.0)


async def per_keyword_requests(world: World, keywords: Sequence[str]) -> dict[str, int]:
    """Requests of `latest(keyword, 100)` for each keyword, as the seed project asks daily."""
    source = ArxivSource(settings_for(world.fake.url, 0).arxiv)
    counts = {}
    for keyword in keywords:
        before = source.request_count
        await source.latest(keyword, 100)
        counts[keyword] = source.request_count - before
    return counts


def wall_row(what: str, run: Run, fixed: float | None = None) -> Row:
    """Fetch-phase wall time against the floor, measured at the scaled interval and
    projected to the real one. Without server latency, what exceeds the floor is this
    machine's own per-request work, which does not scale: real ≈ N × 3 s + that. With
    (scaled) latency, `fixed` is that same unscaled part, taken from the run without
    latency; the rest is scaled time: real ≈ 10 × (wall − fixed) + fixed."""
    factor = REAL_INTERVAL / INTERVAL
    real_floor = run.floor * factor
    if fixed is None:
        real = real_floor + max(0.0, run.fetch - run.floor)
        where = f"{REAL_INTERVAL:g} s"
    else:
        # never below the floor: `fixed` is only an estimate of the machine's own part
        real = max(real_floor, factor * max(0.0, run.fetch - fixed) + fixed)
        where = f"{REAL_INTERVAL:g} s, {LATENCY * factor:g} s latency"
    return Row(
        "1",
        f"{what}: arXiv-phase wall (listing, details) / floor ({run.requests} requests, "
        f"{run.floor:g} s of intervals); projected at {where}",
        f"{run.fetch:.2f} s",
        f"{run.floor:.2f} s",
        f"{ratio(run.fetch, run.floor)}; {ratio(real, real_floor)} projected",
        "≤ 1.10× (projected)",
        verdict(real <= 1.1 * real_floor),
    )


async def measure(redis_url: str) -> list[Row]:
    pool = keyword_pool(max(KS))
    window_days = Settings().arxiv.window_days
    days = week_and_days(pool, PER_DAY, window_days, LATER_DAYS)
    page_size = Settings().arxiv.page_size
    batch = Settings().arxiv.batch_size
    rows: list[Row] = []
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    with RemoteFake(len(pool), PER_DAY, window_days, LATER_DAYS) as fake:
        since = EPOCH - timedelta(days=window_days)
        checked = fake.check_agrees(
            [build_query(pool[:20], window=(since, EPOCH)), build_query([pool[3]])]
        )
        say(f"  arXiv: indexed fake agrees with FakeArxiv on {checked} queries")
        for k in KS:
            keywords = pool[:k]
            subs = subscriptions(keywords)
            n_subs = sum(len(v) for v in subs.values())
            tag = f"K={k}, {n_subs} subscriptions"
            await client.flushdb()
            world = World(fake, RedisStore(client, prefix=f"bench{k}"), Clock(EPOCH), days)

            world.show_day(0)
            first = await digest(world, subs, ArxivSource(settings_for(fake.url, 0).arxiv), 0)
            seed = await per_keyword_requests(world, keywords)
            per_keyword = sum(seed.values())
            per_channel = sum(seed[kw] for kws in subs.values() for kw in kws)
            now = await steady_day(world, subs, 1, latency=0.0)
            expected = expected_deliveries(subs, days[1])
            say(
                f"  arXiv K={k}: first run {first.requests} requests; steady {now.requests} "
                f"requests, fetch {now.fetch:.2f}s (floor {now.floor:.2f}s), total "
                f"{now.wall:.2f}s, stall {now.stall * 1000:.0f} ms; delivered "
                f"{now.delivered}/{expected}"
            )
            rows += [
                Row(
                    "1",
                    f"first run, {tag}: requests (the day's listing, then one id_list per "
                    "400 papers posted)",
                    str(first.requests),
                    f"{per_keyword} (1/keyword)",
                    ratio(first.requests, per_keyword),
                    f"≤ {TARGET}; moonshot ≤ {MOONSHOT}",
                    verdict(first.requests <= TARGET and first.report.ok)
                    + (" (moonshot met)" if first.requests <= MOONSHOT else ""),
                ),
                Row(
                    "1",
                    f"steady day, {tag}: requests",
                    str(now.requests),
                    f"{per_channel} (1/channel·keyword); {per_keyword} (1/keyword)",
                    f"{ratio(now.requests, per_channel)}; {ratio(now.requests, per_keyword)}",
                    f"≤ {TARGET}; moonshot ≤ {MOONSHOT}",
                    verdict(now.requests <= TARGET and now.report.ok)
                    + (" (moonshot met)" if now.requests <= MOONSHOT else ""),
                ),
                wall_row(f"steady day, {tag}", now),
                Row(
                    "1",
                    f"steady day, {tag}: whole run incl. Redis and {CHANNELS} channels; longest "
                    "event-loop stall",
                    f"{now.wall:.2f} s; {now.stall * 1000:.0f} ms",
                    "—",
                    "—",
                    "stall < 100 ms",
                    verdict(now.stall < 0.1),
                ),
                Row(
                    "1",
                    f"steady day, {tag}: papers delivered / new that day (≤ 50 a channel)",
                    f"{now.delivered} / {expected}; {now.duplicates} duplicates",
                    "—",
                    "—",
                    "equal; 0",
                    verdict(now.delivered == expected and now.duplicates == 0),
                ),
            ]
            if k == 100:
                # What arXiv's own answer time adds to the spacing; `fixed` is this machine's
                # own per-request work, from a run without latency.
                plain = await steady_day(world, subs, 2, latency=0.0)
                slow = await steady_day(world, subs, 3, latency=LATENCY)
                fixed = max(0.0, plain.fetch - plain.floor)
                name = f"steady day, {tag}, server latency {LATENCY:g} s (1 s real)"
                rows.append(wall_row(name, slow, fixed))
            # A missed listing (the bot was down): window queries for the missed days.
            caught = await steady_day(world, subs, LATER_DAYS, latency=0.0)
            bound = 1 + math.ceil(k / batch) * math.ceil(2 * PER_DAY * 5 / page_size) + 3
            rows.append(
                Row(
                    "1",
                    f"catch-up after a missed listing, {tag}: requests; papers delivered",
                    f"{caught.requests}; {caught.delivered}, {caught.duplicates} duplicates",
                    f"{per_keyword} (1/keyword)",
                    ratio(caught.requests, per_keyword),
                    "1 + ⌈K/20⌉ window pages + details; 0 duplicates",
                    verdict(caught.requests <= bound and caught.duplicates == 0),
                )
            )
    await client.aclose()
    return rows


def run(redis_url: str) -> list[Row]:
    return asyncio.run(measure(redis_url))


if __name__ == "__main__":
    from bench.common import redis_server, table

    with redis_server() as url:
        print(table(run(url)))
