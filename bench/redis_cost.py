"""Figure 4: what a digest costs Redis.

(a) Round trips (client side: one per command or pipeline sent) and commands (server side:
`INFO commandstats` deltas) per channel, as the number of new papers per channel grows,
and per keyword for the fetch phase. (b) Memory (`INFO memory` used_memory, and
`MEMORY USAGE` per key) after 365 simulated daily digests of 100 keywords, sampled along
the way to show whether it levels off after the retention window (`seen_retention_days`).

(c) Memory under `/papers add` and `/papers remove` churn at the command rate limit (issue
22): one member adding and removing a new keyword each time, and the ceiling a channel and a
keyword can hold.

All drive the real `DigestRunner`, `Commands` and `RedisStore` on a real redis-server; arXiv
is replaced by a canned `ArxivSource` (no HTTP), so a simulated year takes seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from bench.common import Row, ratio, say, verdict
from bench.sinks import RecordingPublisher
from bench.synthetic import EPOCH, PaperMaker, as_paper, keyword_pool
from bot.arxiv_queue import DIGEST, Caller
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner
from bot.fetching import Fetched
from bot.keywords import normalize
from bot.listing import Announcement, Listing
from bot.matching import assign
from bot.models import Channel, Paper, newest_first
from bot.settings import Settings
from bot.state.limits import PAPER_KEPT
from bot.state.redis import RedisStore

PER_MESSAGE = 10
"""Papers per chat message in the recording publisher (one `mark_seen` per message)."""


class CountingConnection(aioredis.Connection):
    """Counts what it sends: one packed send is one round trip (a pipeline is one)."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


class CannedSource(ArxivSource):
    """An `ArxivSource` answering from memory, as arXiv would: the last papers shown are
    the day's listing (announced on the day of the newest, or on the day given: arXiv's
    weekend listing is empty), the window queries answer with the papers that answer one of
    the keywords (precomputed)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.arxiv)
        self.papers: list[Paper] = []
        self.answers: dict[str, frozenset[str]] = {}
        self.announced: list[Paper] = []
        self.day = EPOCH.date()

    async def listing_part(self, spec: str, etag: str | None) -> tuple[Listing | None, str | None]:
        """The day's whole listing, whatever `spec` asks, without an ETag (the digest reads
        the listing through `read_day`, one `listing_part` a request)."""
        return Listing(self.day, tuple(Announcement(p, "new") for p in self.announced)), None

    async def details(self, ids: Sequence[str], *, caller: Caller = DIGEST) -> dict[str, Paper]:
        wanted = set(ids)
        return {p.id: p for p in self.papers if p.id in wanted}

    def show(
        self, papers: Sequence[Paper], keywords: Sequence[str], day: date | None = None
    ) -> None:
        """Add papers, the listing of `day` (by default the newest paper's); which of
        `keywords` each answers is decided once, here."""
        self.announced = list(papers)
        self.day = day or max((p.published for p in papers), default=EPOCH).date()
        matched = assign(papers, keywords)
        found: dict[str, set[str]] = {}
        for keyword, hits in matched.items():
            for paper in hits:
                found.setdefault(paper.id, set()).add(normalize(keyword))
        self.answers.update({p.id: frozenset(found.get(p.id, ())) for p in papers})
        self.papers.extend(papers)

    def forget_before(self, when: datetime) -> None:
        kept = [p for p in self.papers if p.published >= when]
        for paper in self.papers:
            if paper.published < when:
                del self.answers[paper.id]
        self.papers = kept

    async def window(
        self, keywords: Sequence[str], since: datetime, until: datetime
    ) -> list[Paper]:
        wanted = {normalize(k) for k in keywords}
        return [
            p for p in self.papers if since <= p.published <= until and self.answers[p.id] & wanted
        ]

    async def latest(self, keyword: str, n: int, *, caller: Caller = DIGEST) -> list[Paper]:
        wanted = normalize(keyword)
        return newest_first([p for p in self.papers if wanted in self.answers[p.id]])[:n]


@dataclass
class Counts:
    round_trips: float = 0
    commands: float = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.round_trips - other.round_trips, self.commands - other.commands)


class Meter:
    """Round trips of the runner's client, commands as the server counts them."""

    def __init__(self, admin: aioredis.Redis) -> None:
        self.admin = admin

    async def read(self) -> Counts:
        stats = await self.admin.info("commandstats")
        commands = sum(
            int(v["calls"]) for k, v in stats.items() if not k.startswith("cmdstat_info")
        )
        return Counts(CountingConnection.sent, commands)


class PhasedRunner(DigestRunner):
    """Records the counters around the fetch phase (per keyword) of each run."""

    meter: Meter
    marks: list[Counts]

    async def fetch(
        self,
        keywords: Sequence[str],
        *,
        channels: Mapping[Channel, Sequence[str]],
        dry_run: bool = False,
    ) -> Fetched:
        self.marks.append(await self.meter.read())
        fetched = await super().fetch(keywords, channels=channels, dry_run=dry_run)
        self.marks.append(await self.meter.read())
        return fetched


def phased(
    settings: Settings, store: RedisStore, source: ArxivSource, sink: RecordingPublisher,
    clock: Clock, meter: Meter,
) -> PhasedRunner:  # fmt: skip
    runner = PhasedRunner(settings, store, source, {"slack": sink}, clock=clock)
    runner.meter, runner.marks = meter, []
    return runner


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def counting_client(url: str) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(
        url, connection_class=CountingConnection, decode_responses=True
    )
    return aioredis.Redis(connection_pool=pool)


def short_paper(n: int, keyword: str, when: datetime) -> Paper:
    return as_paper_like(f"2612.{n:05d}", f"On {keyword}, part {n}", when)


def as_paper_like(pid: str, title: str, when: datetime) -> Paper:
    return Paper(
        id=pid,
        version=1,
        title=title,
        authors=("A. Author",),
        summary="A short abstract.",
        comment=None,
        primary_category="cs.LG",
        categories=("cs.LG",),
        published=when,
        updated=when,
    )


async def subscribe(store: RedisStore, subs: dict[Channel, list[str]]) -> None:
    """Subscriptions as chat users make them (`/papers add`), so the run reads them."""
    for channel, keywords in subs.items():
        for keyword in keywords:
            await store.add_subscription(channel, keyword, added_by="U1", cap=1000)


# (a) round trips and commands ------------------------------------------------------------


@dataclass
class PhaseCost:
    per_channel: Counts
    per_keyword: Counts
    setup: Counts
    delivered: int
    messages: int


async def one_day_cost(
    url: str, admin: aioredis.Redis, new_per_channel: int, per_channel: int = 10
) -> PhaseCost:
    channels = 10
    keywords = keyword_pool(channels * per_channel)
    subs = {
        Channel("slack", f"C{c:03d}"): keywords[c * per_channel : (c + 1) * per_channel]
        for c in range(channels)
    }
    await admin.flushdb()
    client = counting_client(url)
    clock = Clock(EPOCH)
    settings = Settings.model_validate({"arxiv": {"request_interval": 0}})
    store = RedisStore(client, prefix="cost", clock=clock)
    source = CannedSource(settings)
    # day 0: one paper per keyword, then the first run (new keywords) sets everything up
    source.show(
        [short_paper(i, k, EPOCH - timedelta(hours=1)) for i, k in enumerate(keywords)], keywords
    )
    await subscribe(store, subs)
    meter = Meter(admin)
    await phased(settings, store, source, RecordingPublisher(), clock, meter).run()
    # day 1: `new_per_channel` new papers for each channel, spread over its keywords
    clock.now = EPOCH + timedelta(days=1)
    n = len(keywords)
    fresh = []
    for kws in subs.values():
        for i in range(new_per_channel):
            n += 1
            fresh.append(short_paper(n, kws[i % len(kws)], clock.now - timedelta(minutes=n)))
    source.show(fresh, keywords)
    sink = RecordingPublisher(per_message=PER_MESSAGE)
    runner = phased(settings, store, source, sink, clock, meter)
    start = await meter.read()
    await runner.run()
    end = await meter.read()
    before_fetch, after_fetch = runner.marks
    await client.aclose()
    deliver = end - after_fetch
    fetch = after_fetch - before_fetch
    return PhaseCost(
        per_channel=Counts(deliver.round_trips / channels, deliver.commands / channels),
        per_keyword=Counts(fetch.round_trips / len(keywords), fetch.commands / len(keywords)),
        setup=before_fetch - start,
        delivered=sink.total,
        messages=sink.messages,
    )


# (b) memory over a simulated year --------------------------------------------------------


@dataclass
class YearResult:
    samples: list[tuple[int, int]] = field(default_factory=list)
    """(day, used_memory - empty) pairs."""
    seen_samples: list[tuple[int, int]] = field(default_factory=list)
    """(day, bytes of all seen sets) pairs."""
    recent_samples: list[tuple[int, int]] = field(default_factory=list)
    """(day, bytes of all recent lists) pairs."""
    by_kind: dict[str, int] = field(default_factory=dict)
    members: dict[str, float] = field(default_factory=dict)
    channels: int = 0
    keywords: int = 0
    delivered: int = 0
    seconds: float = 0.0


KEY_KINDS = (
    "seen",
    "recent-ids",
    "recent-papers",
    "baseline",
    "subs",
    "fetched",
    "paper",
    "other",
)


def kind_of(key: str) -> str:
    parts = key.split(":")
    if len(parts) < 2:
        return "other"
    if parts[1] == "recent":
        return "recent-papers" if key.endswith(":papers") else "recent-ids"
    return parts[1] if parts[1] in KEY_KINDS else "other"


async def sizes_by_kind(client: aioredis.Redis) -> dict[str, int]:
    """`MEMORY USAGE` summed by kind of key."""
    sizes: dict[str, int] = dict.fromkeys(KEY_KINDS, 0)
    async for key in client.scan_iter(match="year:*", count=1000):
        sizes[kind_of(key)] += int(await client.memory_usage(key, samples=0) or 0)
    return sizes


async def simulate_year(url: str, admin: aioredis.Redis, days: int = 365) -> YearResult:
    await admin.flushdb()
    keywords = keyword_pool(100)
    subs = {  # 20 channels of 5 keywords
        Channel("slack", f"C{c:03d}"): keywords[c * 5 : (c + 1) * 5] for c in range(20)
    }
    settings = Settings.model_validate(
        {"arxiv": {"request_interval": 0, "window_days": 1}, "digest": {"first_run_papers": 5}}
    )
    retention = timedelta(days=settings.digest.seen_retention_days)
    client = aioredis.Redis.from_url(url, decode_responses=True)
    clock = Clock(EPOCH)
    store = RedisStore(client, prefix="year", seen_retention=retention, clock=clock)
    source = CannedSource(settings)
    maker = PaperMaker(keywords, seed=5)
    texts = [as_paper(maker.one(EPOCH)) for _ in range(1500)]
    per_day = 100  # on weekdays; arXiv announces nothing on Saturday and Sunday
    await subscribe(store, subs)
    empty = int((await admin.info("memory"))["used_memory"])
    result = YearResult(channels=len(subs), keywords=len(keywords))
    checkpoints = {0, 30, 60, 90, 120, 180, 270, days}
    started = time.perf_counter()
    sink = RecordingPublisher(per_message=PER_MESSAGE)
    runner = DigestRunner(settings, store, source, {"slack": sink}, clock=clock)
    shown: dict[int, list[str]] = {}
    n = 0
    for day in range(days + 1):
        clock.now = EPOCH + timedelta(days=day)
        batch = []
        for i in range(per_day if clock.now.weekday() < 5 else 0):
            n += 1
            text = texts[(n * 7 + i) % len(texts)]
            pid = f"{2600 + day // 30:04d}.{n % 100000:05d}"
            batch.append(
                Paper(
                    id=pid,
                    version=1,
                    title=text.title,
                    authors=text.authors,
                    summary=text.summary,
                    comment=None,
                    primary_category=text.primary_category,
                    categories=text.categories,
                    published=clock.now - timedelta(minutes=i + 1),
                    updated=clock.now - timedelta(minutes=i + 1),
                )
            )
        source.forget_before(clock.now - timedelta(days=2))
        source.show(batch, keywords, clock.now.date())
        shown[day] = [p.id for p in batch]
        # `P:paper:{id}` (the buttons' paper cache) expires by Redis's own clock, which the
        # simulated days do not move: its keys go here once they are PAPER_KEPT days old.
        for old_day in [d for d in shown if d < day - PAPER_KEPT.days]:
            if ids := shown.pop(old_day):
                await client.delete(*(f"year:paper:{{{pid}}}" for pid in ids))
        report = await runner.run()
        if not report.ok:
            raise RuntimeError(f"simulated day {day} failed: {report}")
        if day in checkpoints:
            used = int((await admin.info("memory"))["used_memory"])
            result.samples.append((day, used - empty))
            sizes = await sizes_by_kind(client)
            result.seen_samples.append((day, sizes["seen"]))
            result.recent_samples.append((day, sizes["recent-ids"] + sizes["recent-papers"]))
    result.seconds = time.perf_counter() - started
    result.delivered = sink.total
    result.by_kind = await sizes_by_kind(client)
    members: dict[str, int] = dict.fromkeys(KEY_KINDS, 0)
    async for key in client.scan_iter(match="year:*", count=1000):
        kind = kind_of(key)
        key_type = await client.type(key)
        if key_type == "zset":
            members[kind] += int(await client.zcard(key))
        elif key_type == "hash":
            members[kind] += int(await client.hlen(key))
        elif key_type == "set":
            members[kind] += int(await client.scard(key))
    result.members = {k: v for k, v in members.items() if v}
    await client.aclose()
    return result


# (c) add/remove churn -------------------------------------------------------------------


class LatestSource(ArxivSource):
    """`latest` answers any keyword with `n` papers of its own (realistic text, ids unique
    to the keyword), as arXiv answers a popular one."""

    def __init__(self, settings: Settings, texts: Sequence[Paper]) -> None:
        super().__init__(settings.arxiv)
        self.texts = texts
        self.keywords: dict[str, int] = {}

    async def latest(self, keyword: str, n: int, *, caller: Caller = DIGEST) -> list[Paper]:
        k = self.keywords.setdefault(normalize(keyword), len(self.keywords))
        return [
            replace_id(
                self.texts[i % len(self.texts)], f"{2600 + k // 1000:04d}.{k % 1000:03d}{i:02d}"
            )
            for i in range(n)
        ]


def replace_id(paper: Paper, pid: str) -> Paper:
    return Paper(
        id=pid,
        version=1,
        title=paper.title,
        authors=paper.authors,
        summary=paper.summary,
        comment=None,
        primary_category=paper.primary_category,
        categories=paper.categories,
        published=paper.published,
        updated=paper.updated,
    )


@dataclass
class ChurnResult:
    pairs: int
    samples: list[tuple[int, int]]
    """(pairs done, used_memory above the start) pairs."""
    idle: int
    """used_memory above the start 3 s after the last pair."""
    refused: int
    per_keyword: int
    """Bytes of one followed keyword's caches (recent list, fetched mark)."""
    per_channel: int
    """Bytes of a channel following `max_keywords_per_channel` keywords added from chat."""
    keywords: int


async def churn(url: str, admin: aioredis.Redis, pairs: int = 2000) -> ChurnResult:
    """One member at the command rate limit (`per_user_per_minute` commands a minute, the
    clock moved to match) adds a new keyword and removes it, `pairs` times."""
    await admin.flushdb()
    settings = Settings.model_validate({"arxiv": {"request_interval": 0}})
    client = aioredis.Redis.from_url(url, decode_responses=True)
    clock = Clock(EPOCH)
    store = RedisStore(client, prefix="churn", clock=clock)
    maker = PaperMaker(keyword_pool(100), seed=3)
    texts = [as_paper(maker.one(EPOCH)) for _ in range(200)]
    source = LatestSource(settings, texts)
    commands = Commands(settings, store, source, clock=clock)
    here = CommandContext(Channel("slack", "C1"), "U1")
    step = timedelta(seconds=60 / settings.commands.per_user_per_minute)
    pool = keyword_pool(600)
    start = int((await admin.info("memory"))["used_memory"])
    samples, refused = [(0, 0)], 0
    for n in range(1, pairs + 1):
        keyword = f"{pool[n % len(pool)]} {n}"
        for verb in ("add", "remove"):
            clock.now += step
            refused += not (await commands.handle(here, f"{verb} {keyword}")).ok
        if n % (pairs // 4) == 0:
            samples.append((n, int((await admin.info("memory"))["used_memory"]) - start))
    # Redis shrinks an idle connection's query buffer (grown by an add's 160 kB script)
    # within a few seconds: what stays after that is what the churn left.
    await asyncio.sleep(3)
    idle = int((await admin.info("memory"))["used_memory"]) - start
    # The ceiling: a channel following its cap of keywords, each added from chat.
    cap = settings.commands.max_keywords_per_channel
    channel = CommandContext(Channel("slack", "C2"), "U2")
    for n in range(cap):
        clock.now += step
        await commands.handle(channel, f"add {pool[n]}")
    sizes = {
        key: int(await client.memory_usage(key, samples=0) or 0)
        async for key in client.scan_iter(match="churn:*", count=1000)
    }
    per_channel = sum(v for k, v in sizes.items() if "{slack:C2}" in k)
    recent = sum(v for k, v in sizes.items() if k.startswith("churn:recent:"))
    fetched = sizes.get("churn:fetched", 0)
    await client.aclose()
    return ChurnResult(pairs, samples, idle, refused, (recent + fetched) // cap, per_channel, cap)


# ------------------------------------------------------------------------------------------


async def measure(url: str) -> list[Row]:
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    rows: list[Row] = []
    costs = {}
    for papers in (10, 100, 1000):
        costs[papers] = await one_day_cost(url, admin, papers)
        c = costs[papers]
        say(
            f"  redis: {papers} new papers/channel: {c.per_channel.round_trips:.1f} round trips, "
            f"{c.per_channel.commands:.1f} commands per channel; delivered {c.delivered}"
        )
    small, big = costs[10], costs[1000]
    for papers, c in costs.items():
        rows.append(
            Row(
                "4",
                f"deliver phase, {papers} new papers/channel ({c.delivered // 10} posted in "
                f"{c.messages // 10} message(s) of ≤{PER_MESSAGE}): round trips / commands "
                "per channel",
                f"{c.per_channel.round_trips:.1f} / {c.per_channel.commands:.1f}",
                f"{small.per_channel.round_trips:.1f} / {small.per_channel.commands:.1f} "
                "(10 papers)",
                ratio(c.per_channel.round_trips, small.per_channel.round_trips),
                "constant in papers",
                "yes"
                if c.per_channel.round_trips == small.per_channel.round_trips
                else "**no**: +1 per message (marked seen as posted), up to the cap",
            )
        )
    wide = await one_day_cost(url, admin, 10, per_channel=20)
    narrow = await one_day_cost(url, admin, 10, per_channel=5)
    rows.append(
        Row(
            "4",
            "deliver phase, 10 new papers/channel, 20 vs 5 keywords per channel: round trips "
            "per channel",
            f"{wide.per_channel.round_trips:.1f}",
            f"{narrow.per_channel.round_trips:.1f} (5 keywords)",
            ratio(wide.per_channel.round_trips, narrow.per_channel.round_trips),
            "constant in keywords",
            verdict(wide.per_channel.round_trips == narrow.per_channel.round_trips),
        )
    )
    rows.append(
        Row(
            "4",
            "fetch phase (recent lists, last fetched): round trips / commands per keyword, "
            "1000 vs 10 new papers/channel",
            f"{big.per_keyword.round_trips:.2f} / {big.per_keyword.commands:.2f}",
            f"{small.per_keyword.round_trips:.2f} / {small.per_keyword.commands:.2f}",
            ratio(big.per_keyword.round_trips, small.per_keyword.round_trips),
            "a few per run, not per keyword (pipelined)",
            verdict(big.per_keyword.round_trips <= 0.1),
        )
    )
    rows.append(
        Row(
            "4",
            "reading chat subscriptions before the run: round trips per channel",
            f"{(big.setup.round_trips - 1) / 10:.1f} (+1)",
            "—",
            "—",
            "—",
            "—",
        )
    )

    year = await simulate_year(url, admin)
    say(f"  redis: simulated {len(year.samples)} checkpoints in {year.seconds:.1f}s")
    await admin.aclose()
    by_day = dict(year.samples)
    seen = dict(year.seen_samples)
    recent = dict(year.recent_samples)
    last = max(by_day)
    weekdays = sum((EPOCH + timedelta(days=d)).weekday() < 5 for d in range(last + 1))
    retention = Settings().digest.seen_retention_days
    per_channel_bytes = (year.by_kind["seen"] + year.by_kind["baseline"] + year.by_kind["subs"]) / (
        year.channels
    )
    per_keyword_bytes = (year.by_kind["recent-ids"] + year.by_kind["recent-papers"]) / year.keywords
    cap = year.keywords * Settings().arxiv.max_results

    def curve(samples: dict[int, int]) -> str:
        return ", ".join(f"d{d} {b / 1e6:.1f}" for d, b in samples.items())

    rows += [
        Row(
            "4",
            f"used_memory, {year.keywords} keywords, {year.channels} channels, {last} daily "
            "digests (MB above an empty server, by day)",
            curve(by_day),
            f"day 120: {by_day[120] / 1e6:.1f} MB",
            ratio(by_day[last], by_day[120]),
            "flat after the retention window",
            verdict(by_day[last] <= by_day[120] * 1.05),
        ),
        Row(
            "4",
            f"… of which seen sets (per channel, kept {retention} days), MB by day",
            curve(seen),
            f"day {retention + 30}: {seen[120] / 1e6:.2f} MB",
            ratio(seen[last], seen[120]),
            "flat after the retention window",
            verdict(seen[last] <= seen[120] * 1.05),
        ),
        Row(
            "4",
            f"… of which recent lists (per keyword, ≤ {Settings().arxiv.max_results} papers), "
            "MB by day",
            curve(recent),
            f"{cap:,} papers max",
            "—",
            "bounded (fills as keywords reach the cap)",
            verdict(year.members.get("recent-ids", 0) <= cap),
        ),
        Row(
            "4",
            f"bytes per channel on day {last} (seen set + baseline + subscriptions); ids in its "
            f"seen set ({year.delivered / year.channels / weekdays:.1f} papers posted per "
            "weekday)",
            f"{per_channel_bytes / 1e3:.0f} kB; {year.members.get('seen', 0) / year.channels:.0f}",
            "—",
            "—",
            "—",
            "—",
        ),
        Row(
            "4",
            f"bytes per keyword on day {last} (recent ids + papers as JSON); papers kept",
            f"{per_keyword_bytes / 1e3:.0f} kB; "
            f"{year.members.get('recent-ids', 0) / year.keywords:.0f}",
            "—",
            "—",
            "—",
            "—",
        ),
    ]
    say(f"  redis: memory by kind {year.by_kind}")
    rows += await churn_rows(url)
    return rows


async def churn_rows(url: str) -> list[Row]:
    admin = aioredis.Redis.from_url(url, decode_responses=True)
    c = await churn(url, admin)
    await admin.aclose()
    say(f"  redis: churn {c.samples}, idle {c.idle}, refused {c.refused}")
    last = c.idle
    (first_n, first), (last_n, end) = c.samples[1], c.samples[-1]
    slope = (end - first) / (last_n - first_n)  # the first step: Lua's heap, buffers
    per_day = 24 * 60 * Settings().commands.per_user_per_minute // 2
    return [
        Row(
            "4",
            f"used_memory after N add/remove pairs of new keywords by one member at the rate "
            f"limit ({per_day:,} pairs a day), kB above the start",
            ", ".join(f"{n}: {b / 1e3:.0f}" for n, b in c.samples)
            + f"; idle 3 s: {last / 1e3:.0f}",
            "176 kB a pair at ecc81ab (this churn, 400 pairs: 71 MB)",
            f"{slope:.0f} B a pair after the first {first_n}",
            "flat: a remove takes away what its add wrote",
            verdict(slope < 100),
        ),
        Row(
            "4",
            f"ceiling of one followed keyword's caches (recent list of "
            f"{Settings().arxiv.max_results} papers as JSON, fetched mark)",
            f"{c.per_keyword / 1e3:.0f} kB",
            "—",
            "—",
            "bounded by max_results",
            "—",
        ),
        Row(
            "4",
            f"a channel following its cap of {c.keywords} chat keywords, each added with its "
            "preview held (subscriptions, first runs, holds); its seen set comes on top",
            f"{c.per_channel / 1e3:.0f} kB",
            "—",
            "—",
            "bounded by max_keywords_per_channel × max_results",
            "—",
        ),
    ]


def run(url: str) -> list[Row]:
    return asyncio.run(measure(url))


if __name__ == "__main__":
    from bench.common import redis_server, table

    with redis_server() as url:
        print(table(run(url)))
