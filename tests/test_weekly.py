"""The week's papers in the core: the week each channel keeps (Redis and the memory twin),
which papers a post shows and how, its schedule, and posting once per week and channel across
replicas, restarts and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner
from bot.models import Channel
from bot.publishing import DeliveryError
from bot.schedule import Schedule
from bot.service import Service
from bot.settings import (
    ArxivSettings,
    ScheduleSettings,
    ServiceSettings,
    Settings,
    SubscriptionSettings,
)
from bot.state import Store, WeekPaper
from bot.state import limits as signals
from bot.weekly import CATCH_UP, RETRY, WeeklyPost, WeeklyPoster
from tests.conftest import RedisServer, free_port
from tests.factories import Clock, Recorder, either_store, paper
from tests.fakes.arxiv_server import FakeArxiv, make_paper

CH = Channel("slack", "C1")
OTHER = Channel("slack", "C2")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "memory"])
async def store(
    request: pytest.FixtureRequest, clock: Clock, redis_server: RedisServer
) -> AsyncIterator[Store]:
    async with either_store(request.param, redis_server.url, clock) as s:
        yield s


# the week a channel keeps ----------------------------------------------------------------


async def test_the_week_keeps_posted_papers_and_who_still_has_them_saved(
    store: Store, clock: Clock
) -> None:
    sig = store.signals
    since = clock.now - timedelta(days=7)
    await sig.note_posted(CH, [paper(1), paper(2)])
    await sig.note_saver(CH, "2611.00009", "U1", True)  # not posted here: not noted
    for user in ("U1", "U2", "U3"):
        await sig.toggle_saved(f"slack:{user}", paper(1))
        await sig.note_saver(CH, "2611.00001", user, True)
    await sig.unsave("slack:U3", "2611.00001")  # Remove in /papers saved, from anywhere
    await sig.toggle_saved("slack:U2", paper(1))  # pressed again: taken back
    await sig.note_saver(CH, "2611.00001", "U2", False)
    week = {w.paper.id: w.saves for w in await sig.week(CH, since)}
    assert week == {"2611.00001": 1, "2611.00002": 0}
    assert await sig.week(OTHER, since) == [], "a channel's own week"
    clock.now += timedelta(days=8, seconds=1)
    await sig.note_posted(CH, [paper(3)])
    assert [w.paper.id for w in await sig.week(CH, since)] == ["2611.00003"]


async def test_the_week_is_bounded(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signals, "MAX_WEEK", 3)
    for n in range(1, 6):
        await store.signals.note_posted(CH, [paper(n)])
        clock.now += timedelta(minutes=1)
    kept = await store.signals.week(CH, clock.now - timedelta(days=7))
    assert sorted(w.paper.id for w in kept) == ["2611.00003", "2611.00004", "2611.00005"]


# what a post shows ---------------------------------------------------------------------------


def weekly_settings(**schedule: str) -> Settings:
    return Settings(
        schedule=ScheduleSettings(**schedule),
        subscriptions=[
            SubscriptionSettings(platform="slack", channel="C1", keywords=["x"], weekly=True),
            SubscriptionSettings(platform="slack", channel="C2", keywords=["x"]),
        ],
    )


class WeeklyRecorder(Recorder):
    """A chat output that records weekly posts; fails the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.weekly: list[WeeklyPost] = []
        self.failures = failures

    async def publish_weekly(self, post: WeeklyPost) -> None:
        await asyncio.sleep(0.01)  # another replica could step in here
        if self.failures:
            self.failures -= 1
            raise DeliveryError(post.channel, "channel_not_found")
        self.weekly.append(post)


async def a_week(store: Store, clock: Clock) -> None:
    """Twelve papers posted to C1 (and C2); 1 voted by three users, 2 by one, 3 saved."""
    papers = [
        paper(n, title=f"A rather long title for paper {n}, " + "words " * 20) for n in range(1, 13)
    ]
    for channel in (CH, OTHER):
        await store.signals.note_posted(channel, papers)
    for user in ("U1", "U2", "U3"):
        await store.signals.vote(CH, papers[0], user, up=True)
    await store.signals.vote(CH, papers[1], "U2", up=True)
    await store.signals.toggle_saved("slack:U1", papers[2])
    await store.signals.note_saver(CH, papers[2].id, "U1", True)


async def test_a_post_ranks_the_voted_and_names_a_few_of_the_rest(
    store: Store, clock: Clock
) -> None:
    await a_week(store, clock)
    poster = WeeklyPoster(weekly_settings(), store, {"slack": WeeklyRecorder()}, clock=clock)
    post = await poster.build(CH, clock.now + timedelta(hours=1))
    assert post is not None
    assert [(r.paper.id, r.label) for r in post.ranked] == [
        ("2611.00001", "👍 3"),
        ("2611.00002", "👍 1"),
    ]
    assert post.summary == "12 papers this week, 2 with votes (most votes first):"
    line = post.unvoted_line()
    assert line.startswith("No votes for 10 papers: “A rather long title for paper 3, words")
    assert "…” (🔖 1), “A rather long title for paper 4" in line
    assert line.endswith(" and 5 more.") and line.count("“") == 5 and len(line) < 600
    assert post.title == "The week's papers · 17 Nov – 23 Nov 2026"
    assert await poster.build(Channel("slack", "C3"), clock.now) is None, "nothing: no post"


# when, and once ----------------------------------------------------------------------------


def test_the_weekly_slot_and_its_week() -> None:
    schedule = Schedule.weekly(
        ScheduleSettings(timezone="Europe/Paris", weekly_day="mon", weekly_time="09:30")
    )
    after = datetime(2026, 11, 24, 12, tzinfo=UTC)  # a Tuesday
    slot = schedule.next(after)
    assert slot.astimezone(ZoneInfo("Europe/Paris")).isoformat() == "2026-11-30T09:30:00+01:00"
    assert schedule.week_id(slot) == "2026-W49"
    assert schedule.week_id(datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"


@pytest.mark.parametrize(
    "schedule",
    [{"weekly_day": "friday"}, {"weekly_day": ""}, {"weekly_time": "24:00"}, {"weekly_time": "9"}],
)
def test_odd_weekly_settings_are_refused(schedule: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ScheduleSettings(**schedule)  # type: ignore[arg-type]


async def test_two_replicas_and_a_restart_post_each_channels_week_once(
    store: Store, clock: Clock
) -> None:
    await a_week(store, clock)
    settings = weekly_settings()
    outputs = [WeeklyRecorder(), WeeklyRecorder(), WeeklyRecorder()]
    posters = [WeeklyPoster(settings, store, {"slack": o}, clock=clock) for o in outputs]
    slot = posters[0].schedule.next(clock.now)
    await asyncio.gather(*(p.run_until_done(slot) for p in posters[:2]))
    await posters[2].run_until_done(slot)
    assert [p.channel for o in outputs for p in o.weekly] == [CH], "C2 has weekly off"


class Stop(Exception):
    """Ends a scheduler's loop where it would wait for the next slot."""


async def stop(_seconds: float) -> None:
    raise Stop


async def test_a_slot_missed_while_down_is_posted_at_start_up_within_a_day(
    store: Store, clock: Clock
) -> None:
    await a_week(store, clock)
    output = WeeklyRecorder()
    poster = WeeklyPoster(weekly_settings(), store, {"slack": output}, clock=clock, sleep=stop)
    clock.now = poster.schedule.latest(clock.now) or clock.now  # type: ignore[assignment]
    clock.now += CATCH_UP + timedelta(minutes=1)
    with pytest.raises(Stop):
        await poster.scheduler()
    assert output.weekly == [], "a day late: that week is skipped"
    clock.now -= timedelta(hours=2)
    for _ in range(2):  # started, then restarted
        with pytest.raises(Stop):
            await poster.scheduler()
    assert [p.channel for p in output.weekly] == [CH]


async def test_a_failed_post_is_tried_again_and_marked_only_once_made(
    store: Store, clock: Clock
) -> None:
    await a_week(store, clock)
    output = WeeklyRecorder(failures=1)
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.now += timedelta(seconds=seconds)

    poster = WeeklyPoster(weekly_settings(), store, {"slack": output}, clock=clock, sleep=sleep)
    slot = poster.schedule.next(clock.now)
    clock.now = slot
    await poster.run_until_done(slot)
    assert pauses == [RETRY] and len(output.weekly) == 1


# the digest keeps the week of weekly channels only ---------------------------------------


async def test_the_digest_notes_the_week_of_weekly_channels_only(
    store: Store, clock: Clock
) -> None:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 4)]
    with FakeArxiv(papers) as arxiv:
        cfg = ArxivSettings(
            api_url=arxiv.url, rss_url=arxiv.rss_url, oai_url="", request_interval=0, max_retries=0
        )
        settings = weekly_settings().model_copy(update={"arxiv": cfg})
        source = ArxivSource(cfg)
        runner = DigestRunner(settings, store, source, {"slack": Recorder()}, clock=clock)
        report = await runner.run({CH: ["reward model"], OTHER: ["reward model"]})
    assert report.ok and report.delivered == 6
    since = clock.now - timedelta(days=7)
    week = await store.signals.week(CH, since)
    assert sorted(w.paper.id for w in week) == ["2611.00001", "2611.00002", "2611.00003"]
    assert all(isinstance(w, WeekPaper) and w.saves == 0 for w in week)
    assert await store.signals.week(OTHER, since) == [], "weekly off: nothing kept"


async def test_papers_bot_run_posts_the_week_on_its_own_schedule(
    store: Store, clock: Clock
) -> None:
    """`Service.run` starts the weekly schedule beside the digest's: a replica started the
    Saturday morning after a missed Friday slot posts the week, and stops with the rest."""
    clock.now = datetime(2026, 11, 21, 10, tzinfo=UTC)
    await a_week(store, clock)
    await store.mark_done("digest:2026-11-20T08:00Z", 3600)  # the digest's catch-up: made
    settings = weekly_settings().model_copy(
        update={"service": ServiceSettings(health_host="127.0.0.1", health_port=free_port())}
    )
    output = WeeklyRecorder()
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": output})
    weekly = WeeklyPoster(settings, store, {"slack": output}, clock=clock)
    service = Service(settings, store, runner, {}, clock=clock, weekly=weekly)
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    async with asyncio.timeout(5):
        while not output.weekly:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, 2)
    assert [(p.channel, p.week) for p in output.weekly] == [(CH, "2026-W47")]
    assert output.digests == []
