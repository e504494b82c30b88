"""A whole digest run: real Redis, the real arXiv client against the fake arXiv."""

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.arxiv_source import ArxivSource
from bot.categories import ARCHIVES
from bot.digest import DigestRunner
from bot.matching import assign
from bot.models import Channel, Digest
from bot.publishing import Delivered, DeliveryError
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, make_paper, papers_from_feed

NOW = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
SLACK = Channel("slack", "C1")
OTHER = Channel("slack", "C2")


class Recorder:
    """Stands in for a chat adapter: keeps what it was asked to post, can fail on demand."""

    platform = "slack"
    needs_recent = False

    def __init__(self, per_message: int = 2) -> None:
        self.posted: dict[Channel, list[str]] = {}
        self.digests: list[Digest] = []
        self.per_message = per_message
        self.broken: set[Channel] = set()
        self.fail_after_messages: int | None = None

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        if digest.channel in self.broken:
            raise DeliveryError(digest.channel, "channel_not_found")
        self.digests.append(digest)
        ids = [item.paper.id for item in digest.items]
        for n, start in enumerate(range(0, len(ids), self.per_message)):
            if self.fail_after_messages is not None and n >= self.fail_after_messages:
                raise RuntimeError("connection reset")
            chunk = ids[start : start + self.per_message]
            self.posted.setdefault(digest.channel, []).extend(chunk)
            await delivered(chunk)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"A reward model, part {n}") for n in range(1, 9)]
    papers += [make_paper(n, title=f"Diffusion planning {n}") for n in range(20, 24)]
    papers.append(make_paper(30, title="Reward model meets diffusion"))
    with FakeArxiv(papers) as server:
        yield server


def settings_for(fake: FakeArxiv, **digest: int) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": fake.settings(page_size=50, batch_size=2),
            "digest": {"first_run_papers": 100, **digest},
        }
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def runner(
    fake: FakeArxiv, store: RedisStore, publisher: Recorder, clock: Clock, **digest: int
) -> DigestRunner:
    settings = settings_for(fake, **digest)
    return DigestRunner(
        settings, store, ArxivSource(settings.arxiv), {"slack": publisher}, clock=clock
    )


async def test_new_papers_are_delivered_once_across_runs(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    run = runner(fake, redis_store, out, clock)
    report = await run.run({SLACK: ["reward model"]})
    assert report.ok and report.delivered == 9
    clock.now += timedelta(days=1)
    fake.papers.append(make_paper(40, title="Reward model, the sequel"))
    fake.papers[0] = fake.papers[0].new_version()  # a v2 is not new
    report = await run.run({SLACK: ["reward model"]})
    assert out.posted[SLACK][9:] == ["2611.00040"]
    assert len(out.posted[SLACK]) == len(set(out.posted[SLACK])) == 10


async def test_a_paper_for_two_keywords_is_posted_once_listing_both(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    await runner(fake, redis_store, out, clock).run({SLACK: ["diffusion", "reward model"]})
    both = [i for i in out.digests[0].items if i.paper.id == "2611.00030"]
    assert len(both) == 1 and both[0].keywords == ("diffusion", "reward model")
    assert len(out.posted[SLACK]) == len(set(out.posted[SLACK])) == 13


async def test_any_number_of_keywords_share_one_listing_request(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    keywords = ["reward model", "diffusion", "planning", "sequel", "nothing here"]
    run = runner(fake, redis_store, Recorder(), clock)
    first = await run.run({SLACK: keywords[:3], OTHER: keywords})
    assert first.arxiv_requests == 2  # the listing, then one id_list for dates and comments
    assert [r.path for r in fake.requests] == ["/rss/" + "+".join(sorted(ARCHIVES)), "/api/query"]
    assert fake.requests[1].params["id_list"]
    clock.now += timedelta(days=1)
    second = await run.run({SLACK: keywords[:3], OTHER: keywords})
    assert second.arxiv_requests == 1  # nothing new to post: the listing alone


async def test_late_announced_papers_inside_the_window_are_not_lost(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    run = runner(fake, redis_store, out, clock)
    await run.run({SLACK: ["reward model"]})
    clock.now += timedelta(days=3)
    # Submitted before the previous run, announced only now.
    fake.papers.append(
        make_paper(50, title="Reward model, late", published=NOW - timedelta(days=1))
    )
    await run.run({SLACK: ["reward model"]})
    assert out.posted[SLACK][-1] == "2611.00050"


async def test_a_failing_keyword_does_not_stop_others_and_comes_next_run(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    settings = settings_for(fake)
    settings.arxiv.batch_size = 1
    run = DigestRunner(
        settings, redis_store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock
    )
    # A channel that missed listings catches up with window queries, one per keyword here.
    fake.listing = FakeListing(day=NOW.date(), items=[])
    await redis_store.set_listing_day(SLACK, NOW.date() - timedelta(days=7))
    fake.pass_next()  # the listing
    fake.fail_next(503, times=2)  # the first keyword's two attempts
    report = await run.run({SLACK: ["reward model", "diffusion"]})
    assert list(report.failed_keywords) == ["reward model"]
    assert set(out.posted[SLACK]) == {f"2611.{n:05d}" for n in (20, 21, 22, 23, 30)}
    assert await redis_store.listing_days([SLACK]) == {SLACK: NOW.date() - timedelta(days=7)}
    report = await run.run({SLACK: ["reward model", "diffusion"]})
    assert report.ok
    assert len(out.posted[SLACK]) == len(set(out.posted[SLACK])) == 13
    assert await redis_store.listing_days([SLACK]) == {SLACK: NOW.date()}


async def test_papers_are_seen_only_once_their_message_went_out(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder(per_message=3)
    out.fail_after_messages = 1
    run = runner(fake, redis_store, out, clock)
    report = await run.run({SLACK: ["reward model"]})
    assert report.channels[0].delivered == 3 and report.channels[0].pending == 6
    out.fail_after_messages = None
    await run.run({SLACK: ["reward model"]})
    assert len(out.posted[SLACK]) == len(set(out.posted[SLACK])) == 9


async def test_a_broken_channel_does_not_stop_the_others(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    out.broken.add(SLACK)
    run = runner(fake, redis_store, out, clock)
    report = await run.run({SLACK: ["diffusion"], OTHER: ["diffusion"]})
    assert [c.error for c in report.channels] == ["channel_not_found", None]
    assert len(out.posted[OTHER]) == 5
    out.broken.clear()
    await run.run({SLACK: ["diffusion"], OTHER: ["diffusion"]})
    assert len(out.posted[SLACK]) == 5 and len(out.posted[OTHER]) == 5


async def test_a_new_keyword_in_a_chat_channel_posts_only_a_few(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    run = runner(fake, redis_store, out, clock, first_run_papers=2)
    await run.run({SLACK: ["reward model"]})
    assert out.posted[SLACK] == ["2611.00030", "2611.00008"]
    clock.now += timedelta(days=1)
    await run.run({SLACK: ["reward model"]})
    assert len(out.posted[SLACK]) == 2


class WholePage(Recorder):
    """A plugin's output that shows everything new at once, as a wiki page would."""

    shows_everything = True


async def test_an_output_that_shows_everything_has_no_first_run_limit_whatever_its_name(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    page, chat = WholePage(), Recorder()
    settings = settings_for(fake, first_run_papers=2)
    outputs = {"wiki": page, "console": chat}
    run = DigestRunner(settings, redis_store, ArxivSource(settings.arxiv), outputs, clock=clock)
    wiki, named_console = Channel("wiki", "Papers"), Channel("console", "chat")
    await run.run({wiki: ["reward model"], named_console: ["reward model"]})
    assert len(page.posted[wiki]) == 9, "the whole page: every new paper"
    assert chat.posted[named_console] == ["2611.00030", "2611.00008"], "the name is no reason"


async def test_dry_run_marks_nothing(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    run = runner(fake, redis_store, out, clock)
    await run.run({SLACK: ["diffusion"]}, dry_run=True)
    await run.run({SLACK: ["diffusion"]})
    assert len(out.posted[SLACK]) == 10


async def test_per_channel_cap_counts_the_rest_as_seen(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    run = runner(fake, redis_store, out, clock, max_papers_per_channel=4)
    await run.run({SLACK: ["reward model"]})
    await run.run({SLACK: ["reward model"]})
    assert len(out.posted[SLACK]) == 4


KEYWORDS = [
    "testing",
    "deep learning",
    "quantum",
    "neural",
    "electron",
    "software testing",
    "reinforcement learning",
    "criticality",
    "model",
    "language model",
    "graph",
]


async def test_local_assignment_agrees_with_arxiv_per_keyword(
    corpus: Path, redis_store: RedisStore
) -> None:
    feeds = sorted(corpus.glob("arxiv_api_*.xml"))  # noqa: ASYNC240
    papers = [p for f in feeds for p in papers_from_feed(f.read_bytes())]
    assert len(papers) > 100
    with FakeArxiv(papers) as fake:
        settings = settings_for(fake)
        source = ArxivSource(settings.arxiv)
        by_arxiv = {k: {p.id for p in await source.latest(k, 500)} for k in KEYWORDS}
        union = [p for k in KEYWORDS for p in await source.latest(k, 500)]
    local = assign(union, KEYWORDS)
    for keyword in KEYWORDS:
        assert {p.id for p in local[keyword]} == by_arxiv[keyword], keyword
    assert sum(len(v) for v in by_arxiv.values()) > 50


async def test_revisions_are_announced_once_when_the_channel_asks(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    run = runner(fake, redis_store, out, clock)
    await run.run({SLACK: ["reward model"], OTHER: ["reward model"]})
    await redis_store.set_channel_option(SLACK, "revisions", True)
    fake.papers[0] = fake.papers[0].new_version()
    clock.now += timedelta(days=1)
    await run.run({SLACK: ["reward model"], OTHER: ["reward model"]})
    revised = [i for d in out.digests[2:] for i in d.items]
    assert [(i.paper.id, i.paper.version, i.revised) for i in revised] == [("2611.00001", 2, True)]
    assert [d.channel for d in out.digests[2:]] == [SLACK]
    await run.run({SLACK: ["reward model"], OTHER: ["reward model"]})
    assert len(out.digests) == 3


async def test_quiet_days_post_an_empty_digest_once_a_day_only_when_asked(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    run = runner(fake, redis_store, out, clock)
    fake.listing = FakeListing(day=NOW.date(), items=[(p, "new") for p in fake.papers])
    await run.run({SLACK: ["diffusion"], OTHER: ["diffusion"]})
    await redis_store.set_channel_option(OTHER, "quiet_days", True)
    await run.run({SLACK: ["diffusion"], OTHER: ["diffusion"]})
    assert len(out.digests) == 2  # the same listing again: no quiet line either
    clock.now += timedelta(days=1)
    fake.listing = FakeListing(day=clock.now.date(), items=[])
    await run.run({SLACK: ["diffusion"], OTHER: ["diffusion"]})
    await run.run({SLACK: ["diffusion"], OTHER: ["diffusion"]})
    quiet = out.digests[2:]
    assert [(d.channel, d.items) for d in quiet] == [(OTHER, [])]


async def test_the_cap_says_how_many_more(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    await runner(fake, redis_store, out, clock, max_papers_per_channel=4).run(
        {SLACK: ["reward model"]}
    )
    assert len(out.digests[0].items) == 4 and out.digests[0].more == 5


async def test_options_come_from_the_file_and_chat_overrides_them() -> None:
    from bot.options import channel_options
    from bot.state.memory import MemoryStore

    settings = Settings.model_validate(
        {
            "subscriptions": [
                {"platform": "slack", "channel": "C1", "keywords": ["x"], "revisions": True}
            ]
        }
    )
    store = MemoryStore()
    assert (await channel_options(settings, store, SLACK)).revisions
    assert not (await channel_options(settings, store, OTHER)).revisions
    await store.set_channel_option(SLACK, "revisions", False)
    await store.set_channel_option(SLACK, "quiet_days", True)
    options = await channel_options(settings, store, SLACK)
    assert not options.revisions and options.quiet_days


async def test_a_broad_new_keyword_posts_its_first_run_papers_and_none_later(
    redis_store: RedisStore, clock: Clock
) -> None:
    papers = [make_paper(n, title=f"Broad topic {n}") for n in range(1, 31)]
    with FakeArxiv(papers) as fake:
        settings = settings_for(fake, first_run_papers=3)
        out = Recorder()
        run = DigestRunner(
            settings, redis_store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock
        )
        fake.listing = replace(fake.everything_today(), day=clock.now.date())
        first = await run.run({SLACK: ["broad topic"], OTHER: ["topic"]})
        assert out.posted[SLACK] == ["2611.00030", "2611.00029", "2611.00028"]
        assert first.arxiv_requests == 2  # the listing and the posted papers' details
        clock.now += timedelta(days=1)
        fake.papers.append(make_paper(31, title="Broad topic 31"))
        fake.listing = FakeListing(day=clock.now.date(), items=[(fake.papers[-1], "new")])
        await run.run({SLACK: ["broad topic"], OTHER: ["topic"]})
        assert out.posted[SLACK][3:] == out.posted[OTHER][3:] == ["2611.00031"]


async def test_channels_with_the_most_to_post_start_first(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    out = Recorder()
    settings = settings_for(fake)
    run = DigestRunner(
        settings,
        redis_store,
        ArxivSource(settings.arxiv),
        {"slack": out},
        clock=clock,
        concurrency=1,
    )
    few, many = Channel("slack", "C-FEW"), Channel("slack", "C-MANY")
    report = await run.run({few: ["diffusion"], many: ["reward model"]})
    assert [d.channel for d in out.digests] == [many, few]
    assert [c.channel for c in report.channels] == [few, many], "the report keeps their order"


async def test_a_channels_lock_is_let_go_with_its_last_writes(
    fake: FakeArxiv, redis_client: Any, clock: Clock
) -> None:
    releases: list[str] = []

    class Counting(RedisStore):
        async def release(self, name: str, owner: str) -> None:
            releases.append(name)
            await super().release(name, owner)

    store = Counting(redis_client, prefix="t")
    report = await runner(fake, store, Recorder(), clock).run(
        {SLACK: ["reward model"], OTHER: ["diffusion"]}
    )
    assert report.ok and report.delivered > 0
    assert releases == [], "no round trip of its own: finish let the locks go"
    assert await redis_client.keys("t:lock:*") == []


async def test_a_one_message_channel_takes_its_lock_and_marks_its_papers_without_calls_of_their_own(
    fake: FakeArxiv, redis_client: Any, clock: Clock
) -> None:
    calls: list[str] = []

    class Counting(RedisStore):
        async def acquire(self, name: str, owner: str, ttl: float) -> bool:
            calls.append("acquire")
            return await super().acquire(name, owner, ttl)

        async def mark_message_seen(self, channel: Channel, keys: Sequence[str]) -> None:
            calls.append("mark_message_seen")
            await super().mark_message_seen(channel, keys)

    store = Counting(redis_client, prefix="t")
    report = await runner(fake, store, Recorder(per_message=100), clock).run(
        {SLACK: ["reward model"]}
    )
    assert report.ok and report.delivered > 0
    assert calls == [], "the state read takes the lock; the final writes mark the papers"
    assert not await store.unseen(SLACK, [p.id for p in fake.papers if "eward" in p.title])
    assert await redis_client.keys("t:lock:*") == []


async def test_a_publisher_failing_after_its_last_message_still_has_it_marked_seen(
    fake: FakeArxiv, redis_store: RedisStore, clock: Clock
) -> None:
    class FailingAtTheEnd(Recorder):
        async def publish(self, digest: Digest, delivered: Delivered) -> None:
            await super().publish(digest, delivered)
            raise RuntimeError("connection reset while closing")

    out = FailingAtTheEnd(per_message=3)
    report = await runner(fake, redis_store, out, clock).run({SLACK: ["reward model"]})
    (channel,) = report.channels
    assert channel.error == "RuntimeError: connection reset while closing"
    assert channel.delivered == len(out.posted[SLACK]) > 3
    assert await redis_store.unseen(SLACK, out.posted[SLACK]) == set()
