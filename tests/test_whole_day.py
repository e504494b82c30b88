"""Every paper arXiv announced, once (issue 21), through the real digest: real Redis, the
real `arxiv` client and requests against the fake feed (capped, ordered and typed as
arXiv's server does) and the fake OAI-PMH server (`tests/fakes/oai_server.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner, RunReport
from bot.models import Channel
from bot.service import Service
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.announcement_days import busy_day
from tests.factories import Recorder
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, FakePaper
from tests.fakes.oai_server import FakeOai, FakeRecord

PLAIN = Channel("slack", "C-PLAIN")
REVISIONS = Channel("slack", "C-REV")
MONDAY, TUESDAY, WEDNESDAY = date(2026, 12, 7), date(2026, 12, 8), date(2026, 12, 9)
FRIDAY = date(2026, 12, 11)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(day: date, hour: int = 13) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv() as fake:
        yield fake


@pytest.fixture
def oai() -> Iterator[FakeOai]:
    with FakeOai(page_size=2) as fake:
        yield fake


def settings_for(arxiv: FakeArxiv, oai: FakeOai | None, categories: list[str]) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": arxiv.settings(
                categories=categories, oai_url=oai.url if oai else "", stale_recheck_minutes=30
            ),
            "digest": {"first_run_papers": 100, "max_papers_per_channel": 100},
            "schedule": {"time": "14:00", "timezone": "UTC"},
            "subscriptions": [
                {"platform": "slack", "channel": PLAIN.id, "keywords": ["reward model"]},
                {
                    "platform": "slack",
                    "channel": REVISIONS.id,
                    "keywords": ["reward model"],
                    "revisions": True,
                },
            ],
        }
    )


class Bot:
    def __init__(self, settings: Settings, store: RedisStore, clock: Clock) -> None:
        self.out = Recorder()
        self.runner = DigestRunner(
            settings, store, ArxivSource(settings.arxiv), {"slack": self.out}, clock=clock
        )

    async def digest(self) -> RunReport:
        return await self.runner.run()

    def ids(self, channel: Channel) -> list[str]:
        return [pid for pid, _, _ in self.out.posted(channel)]


def paper(
    n: int, day: date, *, title: str = "", categories: tuple[str, ...] = ("cs.CL",)
) -> FakePaper:
    submitted = at(day - timedelta(days=1), 15)
    return FakePaper(
        id=f"2612.{n:05d}",
        title=title or f"On a reward model, number {n}",
        summary="An abstract.",
        authors=["A. Author"],
        categories=list(categories),
        published=submitted,
        updated=submitted,
    )


def day_listing(day: date, first: int, matching: int = 4, other: int = 10) -> FakeListing:
    items = [(paper(first + k, day), "new") for k in range(matching)]
    items += [
        (paper(first + matching + k, day, title=f"Elsewhere {k}"), "new") for k in range(other)
    ]
    return FakeListing(day=day, items=items)


def record_of(p: FakePaper, announced: date) -> FakeRecord:
    return FakeRecord(
        id=p.id,
        versions=[p.published],
        datestamp=announced,
        categories=p.categories,
        title=p.title,
        abstract=p.summary,
    )


@pytest.mark.parametrize(
    ("categories", "listing_requests"), [([], 5), (["cs"], 3)], ids=["every-archive", "cs"]
)
async def test_a_3500_row_day_delivers_every_matching_paper_once(
    arxiv: FakeArxiv, redis_store: RedisStore, categories: list[str], listing_requests: int
) -> None:
    """One capped answer held none of the day's matching new papers with the lowest ids
    (0 of 49 before). Now: the listing in `listing_requests` requests, one details request."""
    day = busy_day(MONDAY)
    arxiv.listing = day.listing
    bot = Bot(settings_for(arxiv, None, categories), redis_store, Clock(at(MONDAY)))
    report = await bot.digest()
    assert report.ok and report.arxiv_requests == listing_requests + 1
    rss = [r for r in arxiv.requests if r.path.startswith("/rss/")]
    assert len(rss) == listing_requests
    archive = "cs" if categories else None
    expected_plain = day.matching_new(archive)
    expected_all = day.matching_in("cs") if archive else {p.id for p, _ in day.matching}
    assert len(expected_all) >= 37
    assert sorted(bot.ids(PLAIN)) == sorted(expected_plain)
    assert sorted(bot.ids(REVISIONS)) == sorted(expected_all)
    again = await bot.digest()  # the same day read again: nothing twice
    assert again.ok and again.delivered == 0


async def test_a_stale_day_is_refused_then_caught_up_from_what_arxiv_announced(
    arxiv: FakeArxiv, oai: FakeOai, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Day 0 delivered; on day 1 the feed serves day 0's papers under day 1's date; day 2
    is fresh. Before: day 1's papers were never posted, and nothing said so."""
    clock = Clock(at(MONDAY))
    bot = Bot(settings_for(arxiv, oai, ["cs"]), redis_store, clock)
    monday, tuesday, wednesday = (
        day_listing(d, n) for d, n in ((MONDAY, 1), (TUESDAY, 101), (WEDNESDAY, 201))
    )
    oai.records = [record_of(p, MONDAY) for p, _ in monday.items]
    oai.records += [record_of(p, TUESDAY) for p, _ in tuesday.items]

    arxiv.listing = monday
    assert (await bot.digest()).ok
    clock.now = at(TUESDAY)
    arxiv.listing = FakeListing(day=TUESDAY, items=monday.items)
    stale = await bot.digest()
    assert stale.stale is not None and stale.delivered == 0 and not stale.ok
    (warning,) = [r.getMessage() for r in caplog.records if "listing_stale" in r.getMessage()]
    assert warning.startswith("listing_stale feed=cs:")
    assert (await redis_store.listing_days([PLAIN]))[PLAIN] == MONDAY
    clock.now = at(WEDNESDAY)
    arxiv.listing = wednesday
    assert (await bot.digest()).ok

    expected = [p.id for listing in (monday, tuesday, wednesday) for p, _ in listing.items[:4]]
    assert sorted(bot.ids(PLAIN)) == sorted(expected)  # every day's papers, each once
    assert sorted(bot.ids(REVISIONS)) == sorted(expected)
    assert not any(r.params.get("search_query") for r in arxiv.requests)  # no window search
    assert oai.requests


async def test_three_missed_weekdays_are_caught_up_as_arxiv_announced_them(
    arxiv: FakeArxiv, oai: FakeOai, redis_store: RedisStore
) -> None:
    """Last received: Monday. Tuesday to Thursday missed; Friday's listing is read. The
    gap's new, cross-listed and held papers reach both channels; a new version of a paper
    from 60 days before reaches the channel with revisions on."""
    for channel in (PLAIN, REVISIONS):
        await redis_store.set_listing_day(channel, MONDAY)
        await redis_store.set_baselined(channel, ["reward model"])
    in_gap = at(WEDNESDAY, 15)
    oai.records = [
        FakeRecord(id="2612.00101", versions=[at(TUESDAY, 15)], datestamp=WEDNESDAY,
                   categories=["cs.CL"], title="A reward model, new in the gap"),
        FakeRecord(id="2612.00102", versions=[in_gap], datestamp=date(2026, 12, 10),
                   categories=["math.OC", "cs.LG"], title="Reward models in optimisation"),
        FakeRecord(id="2612.00103", versions=[at(date(2026, 11, 20))], datestamp=WEDNESDAY,
                   categories=["cs.AI"], title="A held reward model paper"),
        FakeRecord(id="2610.00104", versions=[in_gap - timedelta(days=60), in_gap],
                   datestamp=WEDNESDAY, categories=["cs.LG"], title="Reward model, revised"),
        FakeRecord(id="2301.00105", versions=[at(date(2023, 1, 3))], datestamp=WEDNESDAY,
                   categories=["cs.DB"], title="An old reward model (bulk update)"),
        FakeRecord(id="2612.00106", versions=[in_gap], datestamp=WEDNESDAY,
                   categories=["math.AG"], title="A reward model outside cs"),
    ]  # fmt: skip
    arxiv.listing = day_listing(FRIDAY, 301)
    bot = Bot(settings_for(arxiv, oai, ["cs"]), redis_store, Clock(at(FRIDAY)))
    report = await bot.digest()
    assert report.ok
    friday = [f"2612.{n:05d}" for n in range(301, 305)]
    gap = ["2612.00101", "2612.00102", "2612.00103"]
    assert sorted(bot.ids(PLAIN)) == sorted(gap + friday)
    assert sorted(bot.ids(REVISIONS)) == sorted([*gap, "2610.00104", *friday])
    revised = [(pid, v, r) for pid, v, r in bot.out.posted(REVISIONS) if pid == "2610.00104"]
    assert revised == [("2610.00104", 2, True)]
    assert {r.params.get("set") for r in oai.requests if "set" in r.params} == {"cs"}
    assert not any(r.params.get("search_query") for r in arxiv.requests)


async def test_without_oai_pmh_the_catch_up_searches_submission_windows(
    arxiv: FakeArxiv, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeOai() as oai:
        settings = settings_for(arxiv, oai, ["cs"])
    await redis_store.set_listing_day(PLAIN, MONDAY)
    arxiv.listing = day_listing(FRIDAY, 301)
    bot = Bot(settings, redis_store, Clock(at(FRIDAY)))
    assert (await bot.digest()).ok
    assert any("catch_up_oai_failed" in r.getMessage() for r in caplog.records)
    assert any(r.params.get("search_query") for r in arxiv.requests)


async def test_the_service_reads_a_stale_feed_again_later(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    clock = Clock(at(MONDAY))
    settings = settings_for(arxiv, None, ["cs"])
    monday, tuesday = day_listing(MONDAY, 1), day_listing(TUESDAY, 101)
    arxiv.listing = monday
    bot = Bot(settings, redis_store, clock)
    await bot.digest()
    arxiv.listing = FakeListing(day=TUESDAY, items=monday.items)  # stale until 14:45
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += timedelta(seconds=seconds)
        if clock.now >= at(TUESDAY, 14) + timedelta(minutes=45):
            arxiv.listing = tuesday
        await asyncio.sleep(0)

    clock.now = at(TUESDAY, 14)
    service = Service(settings, redis_store, bot.runner, {}, clock=clock, sleep=sleep)
    await service.run_startup()
    assert slept == [1800.0, 1800.0]  # stale at 14:00 and 14:30, fresh at 15:00
    tuesdays = sorted(pid for pid in bot.ids(PLAIN) if pid > "2612.00100")
    assert tuesdays == [p.id for p, _ in tuesday.items[:4]]
