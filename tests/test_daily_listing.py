"""What "new" means: arXiv's listing of the day, announce types and all. Real Redis, the
real arXiv client against the fake arXiv (its RSS listing and its API), the seed's real
papers (arXiv's own answers for "Reward Model" and "Reasoning") as the text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner, RunReport
from bot.models import Channel, Digest, Paper
from bot.publishing import Delivered, DeliveryError
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.factories import Recorder
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, FakePaper
from tests.seed import seed_sections

REVISIONS = Channel("slack", "C-REV")
PLAIN = Channel("slack", "C-PLAIN")
QUIET = Channel("slack", "C-QUIET")
TUESDAY = date(2026, 11, 24)
WEDNESDAY = date(2026, 11, 25)
FRIDAY = date(2026, 11, 27)
LIMIT = 5
"""arXiv requests a digest may make for 500 keywords in 20 channels."""


def _morning(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _fake_paper(paper: Paper, published: datetime, version: int = 1) -> FakePaper:
    return FakePaper(
        id=paper.id,
        version=version,
        title=paper.title,
        summary=paper.summary,
        authors=["A. Researcher"],
        categories=["cs.CL"],
        published=published,
        updated=published + timedelta(days=version - 1),
        comment=paper.comment,
    )


def _settings(fake: FakeArxiv) -> Settings:
    """20 channels, 500 distinct keywords: two channels follow the seed's keywords (one with
    revisions on), one says when nothing is new, 17 follow synthetic keywords."""
    filler = iter(f"synthetic topic {n}" for n in range(600))
    subscriptions = [
        {
            "platform": "slack",
            "channel": REVISIONS.id,
            "keywords": ["reward model", "reasoning", *(next(filler) for _ in range(23))],
            "revisions": True,
        },
        {
            "platform": "slack",
            "channel": PLAIN.id,
            "keywords": ["reward model", "reasoning", *(next(filler) for _ in range(23))],
        },
        {
            "platform": "slack",
            "channel": QUIET.id,
            "keywords": [next(filler) for _ in range(27)],
            "quiet_days": True,
        },
    ]
    for n in range(17):
        keywords = [next(filler) for _ in range(25)]
        subscriptions.append({"platform": "slack", "channel": f"C{n}", "keywords": keywords})
    return Settings.model_validate(
        {
            "arxiv": fake.settings(),
            "digest": {"first_run_papers": 100},
            "subscriptions": subscriptions,
        }
    )


class World:
    """The seed's papers as arXiv holds them, and a listing per announcement day."""

    def __init__(self, fake: FakeArxiv, store: RedisStore) -> None:
        seed = seed_sections()
        self.rows = [*seed["Reward Model"], *seed["Reasoning"]]
        self.fake = fake
        self.out = Recorder()
        self.clock = Clock(_morning(TUESDAY))
        settings = _settings(fake)
        self.keywords = {k for s in settings.subscriptions for k in s.keywords}
        self.runner = DigestRunner(
            settings,
            store,
            ArxivSource(settings.arxiv),
            {"slack": self.out},
            clock=self.clock,
        )

    def hold(self, paper: FakePaper) -> FakePaper:
        self.fake.papers.append(paper)
        return paper

    def announce(self, day: date, items: list[tuple[FakePaper, str]]) -> None:
        self.fake.listing = FakeListing(day=day, items=items)
        self.clock.now = _morning(day)

    async def digest(self) -> RunReport:
        self.fake.clear_requests()
        report = await self.runner.run()
        assert report.ok, report
        assert report.arxiv_requests == len(self.fake.requests) <= LIMIT
        return report


@pytest.fixture
def world(redis_store: RedisStore) -> Iterator[World]:
    with FakeArxiv() as fake:
        yield World(fake, redis_store)
        assert fake.errors == []


async def test_announced_today_is_new_and_replacements_go_where_revisions_are_on(
    world: World,
) -> None:
    rows = world.rows
    monday = _morning(TUESDAY) - timedelta(days=1)
    day1 = [world.hold(_fake_paper(p, monday)) for p in rows[:10]]
    world.announce(TUESDAY, [(p, "new") for p in day1])
    assert len(world.keywords) == 500
    await world.digest()
    expected_day1 = sorted((p.id, 1, False) for p in day1)
    assert sorted(world.out.posted(REVISIONS)) == expected_day1
    assert sorted(world.out.posted(PLAIN)) == expected_day1
    assert [d.items for d in world.out.digests if d.channel == QUIET] == [[]]  # quiet day

    world.out.clear()
    old = world.hold(_fake_paper(rows[10], monday - timedelta(days=60)))
    old_v2 = world.hold(replace(old, version=2, updated=_morning(WEDNESDAY)))
    day1_v2 = world.hold(replace(day1[0], version=2, updated=_morning(WEDNESDAY)))
    held = world.hold(_fake_paper(rows[11], _morning(WEDNESDAY) - timedelta(days=12)))
    cross = world.hold(replace(_fake_paper(rows[12], monday), categories=["stat.ML", "cs.CL"]))
    fresh = [world.hold(_fake_paper(p, _morning(TUESDAY))) for p in rows[13:16]]
    unrelated = world.hold(
        FakePaper(
            id="2611.99999",
            title="Phonon thermal Hall effect",
            summary="Lattice dynamics in insulators.",
            authors=["B"],
            categories=["cond-mat.str-el"],
            published=monday,
            updated=monday,
        )
    )
    world.announce(
        WEDNESDAY,
        [
            *((p, "new") for p in fresh),
            (held, "new"),
            (cross, "cross"),
            (unrelated, "new"),
            (old_v2, "replace"),
            (day1_v2, "replace-cross"),
        ],
    )
    report = await world.digest()
    news = {(p.id, 1, False) for p in [*fresh, held, cross]}
    assert sorted(world.out.posted(PLAIN)) == sorted(news)
    assert sorted(world.out.posted(REVISIONS)) == sorted(
        news | {(old.id, 2, True), (day1[0].id, 2, True)}
    )
    assert report.delivered == 2 * len(news) + 2
    # The held paper carries its real submission date, from one id_list request.
    posted = {i.paper.id: i.paper for d in world.out.digests for i in d.items}
    assert posted[held.id].published == held.published
    assert posted[old.id].published == old.published
    id_lists = [r for r in world.fake.requests if r.params.get("id_list")]
    assert len(id_lists) == 1
    assert not [r for r in world.fake.requests if r.params.get("search_query")]

    world.out.clear()
    again = await world.digest()  # the same listing again, the same day or the next morning
    assert again.delivered == 0 and again.arxiv_requests == 1
    assert [d for d in world.out.digests if d.items] == []
    assert [d for d in world.out.digests if d.channel == QUIET] == []  # no second quiet line


async def test_a_missed_day_is_caught_up_with_window_queries(world: World) -> None:
    rows = world.rows
    first = [world.hold(_fake_paper(p, _morning(TUESDAY) - timedelta(days=1))) for p in rows[:3]]
    world.announce(TUESDAY, [(p, "new") for p in first])
    await world.digest()
    world.out.clear()

    # Wednesday's listing came and went while the bot was down: only the API has it.
    missed = [world.hold(_fake_paper(p, _morning(TUESDAY))) for p in rows[3:6]]
    friday = [world.hold(_fake_paper(p, _morning(FRIDAY) - timedelta(days=1))) for p in rows[6:8]]
    world.announce(FRIDAY, [(p, "new") for p in friday])
    world.fake.clear_requests()
    report = await world.runner.run()
    assert report.ok
    expected = sorted((p.id, 1, False) for p in [*missed, *friday])
    assert sorted(world.out.posted(PLAIN)) == expected
    assert sorted(world.out.posted(REVISIONS)) == expected
    # One listing, then the window over 500 keywords, 20 a query; no id_list needed for
    # papers the search API returned whole.
    searches = [r for r in world.fake.requests if r.params.get("search_query")]
    assert len(searches) == 25
    assert all("submittedDate:[" in r.params["search_query"] for r in searches)

    world.out.clear()
    world.clock.now += timedelta(hours=1)
    assert (await world.digest()).delivered == 0  # caught up: back to one request


async def test_without_the_listing_the_window_is_searched_and_nothing_is_lost(
    world: World,
) -> None:
    papers = [world.hold(_fake_paper(p, _morning(TUESDAY) - timedelta(days=1))) for p in world.rows]
    world.announce(TUESDAY, [(p, "new") for p in papers])
    world.fake.fail_next(503, times=2)  # the listing, and its one retry
    report = await world.runner.run()
    assert report.ok and report.delivered == 2 * len({p.id for p in papers})
    world.out.clear()
    assert (await world.digest()).delivered == 0


async def test_a_day_without_announcements_is_one_quiet_line(world: World) -> None:
    world.announce(date(2026, 11, 26), [])  # Thanksgiving: arXiv's channel has no items
    await world.digest()
    quiet = [d for d in world.out.digests if d.channel == QUIET]
    assert [(d.day, d.items) for d in quiet] == [(date(2026, 11, 26), [])]
    world.out.clear()
    await world.digest()
    assert world.out.digests == []


class Flaky(Recorder):
    """Refuses one channel until told otherwise."""

    def __init__(self, broken: Channel) -> None:
        super().__init__()
        self.broken: Channel | None = broken

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        if digest.channel == self.broken:
            raise DeliveryError(digest.channel, "channel_not_found")
        await super().publish(digest, delivered)


async def test_a_channel_that_failed_on_a_listing_gets_it_with_the_next_one(
    world: World,
) -> None:
    flaky = Flaky(PLAIN)
    world.runner._publishers = {"slack": flaky}
    rows = world.rows
    tuesday = [world.hold(_fake_paper(p, _morning(TUESDAY) - timedelta(days=1))) for p in rows[:4]]
    world.announce(TUESDAY, [(p, "new") for p in tuesday])
    report = await world.runner.run()
    assert [c.error for c in report.channels if c.channel == PLAIN] == ["channel_not_found"]
    assert flaky.posted(PLAIN) == []

    flaky.broken = None
    wednesday = [world.hold(_fake_paper(p, _morning(TUESDAY))) for p in rows[4:6]]
    world.announce(WEDNESDAY, [(p, "new") for p in wednesday])
    report = await world.runner.run()
    assert report.ok
    assert sorted(flaky.posted(PLAIN)) == sorted((p.id, 1, False) for p in [*tuesday, *wednesday])
    assert sorted(flaky.posted(REVISIONS)) == sorted(
        (p.id, 1, False) for p in [*tuesday, *wednesday]
    )
