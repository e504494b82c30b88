"""Figure 2: delivery time of one digest to C channels (C = 10, 100, 1000) of a fake Slack
workspace that answers 429 + Retry-After to posts closer together than its per-channel
interval.

The real `DigestRunner` (its channel concurrency, per-channel Redis lock, seen sets) on a
real redis-server, and the real `SlackPublisher` from `publisher_from_settings` (the real
`AsyncWebClient` with its 429 retry handler, the per-channel pacer, Block Kit rendering),
posting to the test fake Slack in a process of its own (`bench/slack_process.py`). Only the
fetch phase is canned (figure 1 measures it): each keyword's papers of the day are given to
the runner, so what is timed is the delivery alone.

Time is scaled down: the workspace allows one message per `INTERVAL` seconds per channel
instead of one per second, and the publisher is paced at the same interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.slack.app import CONNECTIONS, SlackPublisher, publisher_from_settings
from bench.common import Row, ratio, say, verdict
from bench.slack_process import RemoteSlack, Summary
from bench.synthetic import EPOCH, PaperMaker, as_paper, keyword_pool
from bot import runtime
from bot.arxiv_source import ArxivSource
from bot.digest import CHANNEL_CONCURRENCY, DigestRunner
from bot.fetching import Fetched
from bot.matching import assign
from bot.models import Channel, Paper, newest_first
from bot.settings import Settings
from bot.state.redis import RedisStore

REAL_INTERVAL = 1.0
INTERVAL = 0.05
"""Seconds between two posts to one channel, in the fake workspace and in the publisher:
Slack's ~1 message a second per channel, scaled down 20 times."""
PER_DAY = 300
POOL = 600
CS = (10, 100, 1000)
SEQUENTIAL_MEASURED = (10, 100)
"""Workspaces where posting channel after channel is timed in full; for 1000 channels it
would take minutes, so it is projected from the 100-channel run (the same channels)."""


@dataclass(frozen=True)
class Workspace:
    """C channels, the keywords each follows, and each keyword's papers of the day."""

    channels: dict[int, list[str]]
    papers: dict[str, list[Paper]]

    def expected(self, index: int, cap: int) -> list[str]:
        """The ids the channel should receive: its keywords' new papers, newest first, up to
        the per-channel cap (computed here, not by the runner)."""
        found: dict[str, Paper] = {}
        for keyword in self.channels[index]:
            for paper in self.papers[keyword]:
                found.setdefault(paper.id, paper)
        return [p.id for p in newest_first(list(found.values()))[:cap]]


def make_workspace(size: int, day: Mapping[str, list[Paper]], pool: Sequence[str]) -> Workspace:
    """Channel 0 follows the 8 most popular keywords (a busy channel, over the cap); the
    others 3 to 10 keywords drawn from the 300 most popular. Channel i is the same in every
    workspace size, so a smaller workspace is the start of a larger one."""
    rng = random.Random(3)
    channels: dict[int, list[str]] = {0: list(pool[:8])}
    for index in range(1, size):
        channels[index] = rng.sample(list(pool[:300]), rng.randint(3, 10))
    followed = {k for kws in channels.values() for k in kws}
    return Workspace(channels, {k: list(day[k]) for k in followed})


class CannedRunner(DigestRunner):
    """The runner with its fetch phase replaced by the day's papers per keyword; notes when
    the delivery phase starts."""

    canned: Fetched
    delivery_started: float = 0.0
    cpu_started: float = 0.0

    async def fetch(
        self,
        keywords: Sequence[str],
        *,
        channels: Mapping[Channel, Sequence[str]],
        dry_run: bool = False,
    ) -> Fetched:
        self.delivery_started = time.perf_counter()
        self.cpu_started = time.process_time()
        return Fetched({k: self.canned.papers[k] for k in keywords}, {})


@dataclass(frozen=True)
class Setup:
    size: int
    concurrency: int
    interval: float = INTERVAL

    @property
    def label(self) -> str:
        how = (
            "channel after channel"
            if self.concurrency == 1
            else (
                f"concurrency {self.concurrency}"
                + (" (default)" if self.concurrency == CHANNEL_CONCURRENCY else "")
            )
        )
        return f"C={self.size}, {how}"


@dataclass
class Run:
    setup: Setup
    seconds: float
    cpu: float
    """CPU seconds of the bot's process during the delivery."""
    messages: int
    busiest: int
    """Messages of the busiest channel."""
    requests: int
    rate_limited: int
    lost: int
    duplicated: int
    unexpected: int
    broken_threads: int
    delivered: int
    expected: int
    failed_channels: int
    first_error: str
    slots: int = 0
    """Sum over channels of (messages - 1): the intervals a channel-after-channel delivery
    waits."""
    fake_cpu: float = 0.0
    peak_fds: int = 0
    posting_cpu: float = 0.0
    """CPU seconds of the run's chat.postMessage calls replayed alone (`replay_posts`), or 0."""

    @property
    def floor(self) -> float:
        return self.busiest * self.setup.interval

    @property
    def clean(self) -> bool:
        bad = self.lost or self.duplicated or self.unexpected or self.broken_threads
        return not bad and self.rate_limited <= 0.01 * self.requests

    @property
    def met(self) -> bool:
        return self.clean and self.seconds <= 1.25 * self.floor


class FdSampler:
    """The most file descriptors the process held, sampled every 20 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, len(os.listdir("/proc/self/fd")))
            await asyncio.sleep(0.02)

    def __enter__(self) -> FdSampler:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


class RecordingPosts:
    """Wraps a publisher's `chat_postMessage` to keep the arguments of each call."""

    def __init__(self, publisher: SlackPublisher) -> None:
        self.calls: list[dict[str, Any]] = []
        client = publisher._client
        post = client.chat_postMessage

        async def recording(**kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return await post(**kwargs)

        client.chat_postMessage = recording  # type: ignore[method-assign]


async def replay_posts(publisher: SlackPublisher, calls: Sequence[dict[str, Any]]) -> float:
    """CPU seconds to post `calls` again through the publisher's own slack_sdk client and
    session, as top-level messages in channels of their own (no pacing wait) and nothing
    else: no Redis, no rendering, no digest. What the bot's CPU per message is made of that
    only a cheaper Slack client could take away."""
    limit = asyncio.Semaphore(CONNECTIONS)
    client = publisher._client

    async def one(n: int, kwargs: dict[str, Any]) -> None:
        async with limit:
            await client.chat_postMessage(**{**kwargs, "channel": f"R{n:06d}", "thread_ts": None})

    async with publisher._sharing_session():
        await one(len(calls), calls[0])  # the session's first connection, not counted
        started = time.process_time()
        await asyncio.gather(*(one(n, kwargs) for n, kwargs in enumerate(calls)))
        return time.process_time() - started


async def deliver(
    url: str, slack: RemoteSlack, space: Workspace, setup: Setup, run_id: int,
    *, replay: bool = False,
) -> Run:  # fmt: skip
    settings = Settings.model_validate(
        {"slack": {"bot_token": slack.bot_token, "api_url": slack.api_url}}
    )
    store = RedisStore.from_url(url, prefix=f"bench-delivery-{run_id}")
    ids = {index: f"C{run_id:03d}X{index:05d}" for index in range(setup.size)}
    channels = {Channel("slack", ids[i]): space.channels[i] for i in range(setup.size)}
    for channel, keywords in channels.items():  # not their first run: no first-run quota
        await store.set_baselined(channel, keywords)
    publisher = publisher_from_settings(settings, interval=setup.interval)
    posts = RecordingPosts(publisher) if replay else None
    runner = CannedRunner(settings, store, ArxivSource(settings.arxiv), {"slack": publisher},
                          clock=lambda: EPOCH, concurrency=setup.concurrency)  # fmt: skip
    runner.canned = Fetched(space.papers, {})
    slack.clear()
    fake_cpu = slack.summary().cpu
    logging.disable(logging.ERROR)  # a failing channel logs an error line each
    try:
        with FdSampler() as fds:
            report = await runner.run(channels)
    finally:
        logging.disable(logging.NOTSET)
    seconds = time.perf_counter() - runner.delivery_started
    cpu = time.process_time() - runner.cpu_started
    await store.close()
    errors = [c.error for c in report.channels if c.error]
    summary = slack.summary()
    run = judge(setup, seconds, cpu, summary, space, ids,
                cap=settings.digest.max_papers_per_channel, delivered=report.delivered,
                errors=errors)  # fmt: skip
    run.peak_fds = fds.peak
    run.fake_cpu = summary.cpu - fake_cpu
    if posts is not None:
        run.posting_cpu = await replay_posts(publisher, posts.calls)
        slack.clear()
    return run


def judge(
    setup: Setup, seconds: float, cpu: float, summary: Summary, space: Workspace,
    ids: Mapping[int, str], *, cap: int, delivered: int, errors: list[str],
) -> Run:  # fmt: skip
    lost = duplicated = unexpected = broken = expected_total = busiest = slots = 0
    for index, channel_id in ids.items():
        expected = space.expected(index, cap)
        expected_total += len(expected)
        got = summary.channels.get(channel_id)
        posted: Counter[str] = Counter(got.paper_ids if got else ())
        lost += sum(1 for pid in expected if pid not in posted)
        duplicated += sum(n - 1 for n in posted.values() if n > 1)
        unexpected += len(set(posted) - set(expected))
        if got is not None:
            busiest = max(busiest, got.messages)
            slots += got.messages - 1
            broken += got.orphans + (got.tops != 1)
    return Run(
        setup=setup,
        seconds=seconds,
        cpu=cpu,
        messages=summary.accepted,
        busiest=busiest,
        requests=summary.posts,
        rate_limited=summary.rate_limited,
        lost=lost,
        duplicated=duplicated,
        unexpected=unexpected,
        broken_threads=broken,
        delivered=delivered,
        expected=expected_total,
        failed_channels=len(errors),
        first_error=errors[0] if errors else "",
        slots=slots,
    )


def day_papers() -> tuple[list[str], dict[str, list[Paper]]]:
    pool = keyword_pool(POOL)
    papers = [as_paper(p) for p in PaperMaker(pool, seed=23).day(PER_DAY, EPOCH)]
    return pool, assign(papers, pool)


SCALED = [
    Setup(10, 1), Setup(10, CHANNEL_CONCURRENCY),
    Setup(100, 1), Setup(100, CHANNEL_CONCURRENCY),
    Setup(1000, CHANNEL_CONCURRENCY),
]  # fmt: skip
"""At the scaled interval: the channel-after-channel baselines and the default concurrency."""
REAL = [
    Setup(100, CHANNEL_CONCURRENCY, interval=REAL_INTERVAL),
    Setup(1000, CHANNEL_CONCURRENCY, interval=REAL_INTERVAL),
]
"""At Slack's real interval (1 s), where the bot's own CPU no longer hides in the interval."""


async def measure(url: str) -> list[Row]:
    pool, day = day_papers()
    space = make_workspace(max(CS), day, pool)
    runs: list[Run] = []
    run_id = 0
    for interval, plan in ((INTERVAL, SCALED), (REAL_INTERVAL, REAL)):
        with RemoteSlack(interval) as slack:
            for setup in plan:
                run_id += 1
                real_busiest = (setup.size, setup.interval) == (max(CS), REAL_INTERVAL)
                run = await deliver(url, slack, space, setup, run_id, replay=real_busiest)
                runs.append(run)
                say(
                    f"  slack delivery @{interval:g}s: {setup.label}: {run.seconds:.2f} s "
                    f"(cpu {run.cpu:.2f} s, fake Slack {run.fake_cpu:.2f} s), {run.messages} "
                    f"messages, busiest {run.busiest} (floor {run.floor:.2f} s), "
                    f"{run.rate_limited}/{run.requests} 429, lost {run.lost}, dup "
                    f"{run.duplicated}, unexpected {run.unexpected}, threads "
                    f"{run.broken_threads}, delivered {run.delivered}/{run.expected}, failed "
                    f"channels {run.failed_channels} {run.first_error[:60]!r}, peak fds "
                    f"{run.peak_fds}"
                )
    return rows(runs)


def find(runs: list[Run], size: int, concurrency: int, interval: float) -> Run:
    for run in runs:
        s = run.setup
        if (s.size, s.concurrency, s.interval) == (size, concurrency, interval):
            return run
    raise KeyError((size, concurrency, interval))


def rows(runs: list[Run]) -> list[Row]:
    """One row per run but the baselines; the channel-after-channel time is measured at the
    scaled interval for 10 and 100 channels, projected elsewhere as (messages - 1) intervals
    per channel plus the per-message overhead measured in the 100-channel run."""
    seq = {size: find(runs, size, 1, INTERVAL) for size in SEQUENTIAL_MEASURED}
    base = seq[max(SEQUENTIAL_MEASURED)]
    overhead = (base.seconds - base.slots * INTERVAL) / base.messages

    shape: dict[int, Run] = {}  # size -> a run where every channel got its digest, if any
    for run in sorted(runs, key=lambda r: r.failed_channels):
        shape.setdefault(run.setup.size, run)

    def sequential(run: Run) -> tuple[float, str]:
        s = run.setup
        if s.interval == INTERVAL and s.size in seq:
            return seq[s.size].seconds, "measured"
        whole = shape[s.size]
        return whole.slots * s.interval + whole.messages * overhead, "projected"

    out: list[Row] = []
    for run in runs:
        s = run.setup
        if s.concurrency == 1:
            continue
        seq_time, how = sequential(run)
        floor = shape[s.size].busiest * s.interval
        whole = shape[s.size]
        if run.failed_channels:
            value = (f"{run.seconds:.2f} s, but {run.failed_channels} of {s.size} channels "
                     f"failed ({run.first_error}): {run.lost:,} of {run.expected:,} papers "
                     "not posted this run")  # fmt: skip
        else:
            value = (f"{run.seconds:.2f} s; lost {run.lost}, duplicated {run.duplicated}, "
                     f"429 {run.rate_limited}/{run.requests}")  # fmt: skip
        real = s.interval == REAL_INTERVAL
        out.append(
            Row(
                "2",
                f"delivery to C = {s.size} channels (busiest {whole.busiest} messages, "
                f"{whole.messages:,} in all), {s.label.split(', ', 1)[1]}, "
                + (f"{s.interval:g} s interval (real)" if real else
                   f"{s.interval:g} s interval (1 s / {REAL_INTERVAL / s.interval:g})"),
                value,
                f"floor {floor:.2f} s; channel after channel {seq_time:.1f} s ({how})",
                "—" if run.failed_channels else
                f"{ratio(run.seconds, floor)}; {ratio(run.seconds, seq_time)}",
                "≤ 1.25× floor; 0 lost, 0 duplicated; ≤ 1% 429",
                verdict(run.met),
            )
        )  # fmt: skip
    busy = find(runs, 1000, CHANNEL_CONCURRENCY, REAL_INTERVAL)
    per_message = busy.cpu / busy.messages
    posting = busy.posting_cpu / busy.messages
    out.append(
        Row(
            "2",
            "C = 1000, real interval: the bot's CPU per message (its share of the channel's "
            "Redis work included); peak file descriptors",
            f"{per_message * 1000:.2f} ms; fds {busy.peak_fds} (concurrency {CHANNEL_CONCURRENCY})",
            "1.0 ms: 1000 channels × 1 message/s on one event loop",
            ratio(per_message, 1 / 1000),
            "≤ 1.0 ms (issue 15)",
            verdict(per_message <= 1 / 1000),
        )
    )
    out.append(
        Row(
            "2",
            f"… of which posting: the run's {busy.messages:,} chat.postMessage calls replayed "
            "alone through the same slack_sdk client and session (no Redis, no rendering), "
            "just after it: CPU per message; the rest",
            f"{posting * 1000:.2f} ms; rest {(per_message - posting) * 1000:.2f} ms",
            f"the bot's {per_message * 1000:.2f} ms a message",
            ratio(posting, per_message),
            "—",
            "—",
        )
    )
    total = sum(r.requests for r in runs)
    out.append(
        Row(
            "2",
            f"all {len(runs)} runs (incl. the baselines): requests answered 429; papers lost "
            "where no channel failed; duplicated; threads broken",
            f"{sum(r.rate_limited for r in runs)} / {total:,}; "
            f"{sum(r.lost for r in runs if not r.failed_channels)}; "
            f"{sum(r.duplicated for r in runs)}; {sum(r.broken_threads for r in runs)}",
            "—",
            "—",
            "≤ 1%; 0; 0; 0",
            verdict(all(r.clean for r in runs if not r.failed_channels)),
        )
    )
    return out


def run(url: str) -> list[Row]:
    return runtime.run(measure(url))  # the loop and collector settings `papers-bot` runs with


if __name__ == "__main__":
    from bench.common import redis_server, table

    with redis_server() as url:
        print(table(run(url)))
