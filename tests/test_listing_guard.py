"""The whole listing, and only a fresh one (issue 21): the real `ArxivSource` against the fake
feed, which caps, orders and types its answers as arXiv's feed server does
(`tests/fakes/arxiv_server.py`, `announced_rows`), and real captures from the corpus."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from bot.arxiv_source import ArxivSource
from bot.listing import Announcement, Listing, merge
from bot.listing import parse as parse_listing
from bot.listing_guard import (
    DayRead,
    ListingMemory,
    StaleListing,
    read_day,
    requested_names,
    spec_of,
)
from bot.settings import ArxivSettings
from tests.announcement_days import busy_day
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, make_paper

Fetched = tuple[Listing | None, str | None]
MONDAY = date(2026, 12, 7)
TUESDAY = date(2026, 12, 8)
WEDNESDAY = date(2026, 12, 9)
CAPTURES = (
    "arxiv_rss_2024-11-28_all_archives_1504_items_LARGE.xml",
    "arxiv_rss_2024-11-28_empty_feed_no_items_test_archive.xml",
    "arxiv_rss_2025-04-28_quant-ph_81_items_all_announce_types.xml",
)


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    with FakeArxiv() as server:
        yield server


def source_for(fake: FakeArxiv) -> ArxivSource:
    return ArxivSource(ArxivSettings.model_validate(fake.settings()))


async def read(
    fake: FakeArxiv, categories: list[str], memory: ListingMemory | None, today: date
) -> DayRead:
    return await read_day(source_for(fake).listing_part, categories, memory, today=today)


def rss_requests(fake: FakeArxiv) -> list[str]:
    return [r.path.removeprefix("/rss/") for r in fake.requests if r.path.startswith("/rss/")]


# -- the cap ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("categories", "first", "later"),
    [([], 5, 3), (["cs"], 3, 2)],
    ids=["every-archive", "cs"],
)
async def test_a_day_over_the_cap_is_read_whole_in_the_requests_its_volume_needs(
    fake: FakeArxiv, categories: list[str], first: int, later: int
) -> None:
    """3,469 rows (2,169 in cs): one capped answer held 0 of the day's lowest-id new papers.
    Split, the day is whole: every row once, typed for the whole requested set. The next
    day starts from the split the first needed."""
    day = busy_day(MONDAY)
    fake.listing = day.listing
    one = await read(fake, categories, None, MONDAY)
    expected = {
        p.versioned_id: kind
        for p, kind in day.listing.items
        if p.version < 6 and (not categories or any(c.startswith("cs.") for c in p.categories))
    }
    got = {f"{i.paper.id}v{i.paper.version}": i.kind for i in one.listing.items}
    assert got.keys() == expected.keys()
    assert len(one.listing.items) == len(expected)  # one row per paper
    if not categories:  # every primary category is in the set: types as listed
        assert got == expected
    else:  # a paper whose primary category is elsewhere is a cross-list here
        assert {got[v] for v, kind in expected.items() if kind == "new"} == {"new", "cross"}
    assert one.requests == len(rss_requests(fake)) == first
    assert all(len(part) < 2000 for part in one.memory.split)

    fake.clear_requests()
    fake.listing = busy_day(TUESDAY, month=11, seed=22).listing
    two = await read(fake, categories, one.memory, TUESDAY)
    assert two.requests == later
    assert sorted(rss_requests(fake)) == sorted(spec_of(names) for names in one.memory.split)


async def test_a_lighter_day_joins_the_split_again(fake: FakeArxiv) -> None:
    fake.listing = busy_day(MONDAY).listing
    busy = await read(fake, [], None, MONDAY)
    assert len(busy.memory.split) == 3
    fake.listing = busy_day(TUESDAY, rows=900, cs_rows=500, month=11).listing
    light = await read(fake, [], busy.memory, TUESDAY)
    assert light.requests == 3  # the day is read as the last one needed
    assert light.memory.split == (requested_names([]),)  # and the next in one request
    fake.clear_requests()
    fake.listing = busy_day(WEDNESDAY, rows=900, cs_rows=500, month=10).listing
    assert (await read(fake, [], light.memory, WEDNESDAY)).requests == 1


async def test_a_category_alone_at_the_cap_is_taken_with_one_warning(
    fake: FakeArxiv, caplog: pytest.LogCaptureFixture
) -> None:
    papers = [make_paper(n, categories=["cs.LG"]) for n in range(1, 2101)]
    fake.listing = FakeListing(day=MONDAY, items=[(p, "new") for p in papers])
    got = await read(fake, ["cs.LG"], None, MONDAY)
    assert len(got.listing.items) == 2000 and got.requests == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("listing_capped feed=cs.LG rows=2000")


def test_merged_parts_take_the_type_arxiv_gives_for_the_whole_set() -> None:
    both = paper(1, categories=("cs.LG", "stat.ML"))
    elsewhere = paper(2, categories=("hep-th", "cs.LG", "stat.ML"))
    revised = paper(3, version=2, categories=("stat.ML", "cs.LG"))
    cs = Listing(
        MONDAY,
        (
            Announcement(both, "new"),
            Announcement(elsewhere, "cross"),
            Announcement(revised, "replace-cross"),
        ),
    )
    stat = Listing(
        MONDAY,
        (
            Announcement(both, "cross"),
            Announcement(elsewhere, "cross"),
            Announcement(revised, "replace"),
        ),
        skipped=1,
    )
    merged = merge([cs, stat])
    assert merged.kinds() == {both.id: "new", elsewhere.id: "cross", revised.id: "replace"}
    assert merged.skipped == 1


# -- freshness ----------------------------------------------------------------------------


def day_of(n: int, day: date, count: int = 40) -> FakeListing:
    return FakeListing(day=day, items=[(make_paper(n + k), "new") for k in range(count)])


async def test_yesterdays_items_under_todays_date_are_stale(fake: FakeArxiv) -> None:
    fake.etags = False  # the items alone must tell
    fake.listing = day_of(1, MONDAY)
    monday = await read(fake, ["cs"], None, MONDAY)
    fake.listing = FakeListing(day=TUESDAY, items=day_of(1, MONDAY).items)
    with pytest.raises(
        StaleListing, match="feed cs is stale: 2026-12-08, last received 2026-12-07"
    ):
        await read(fake, ["cs"], monday.memory, TUESDAY)
    fake.listing = day_of(101, TUESDAY)
    assert (await read(fake, ["cs"], monday.memory, TUESDAY)).listing.day == TUESDAY


async def test_an_older_listing_than_the_last_received_is_stale(fake: FakeArxiv) -> None:
    fake.listing = day_of(1, TUESDAY)
    tuesday = await read(fake, ["cs"], None, TUESDAY)
    fake.listing = day_of(101, MONDAY)
    with pytest.raises(StaleListing, match="2026-12-07, last received 2026-12-08"):
        await read(fake, ["cs"], tuesday.memory, WEDNESDAY)


async def test_an_unchanged_feed_answers_304_to_its_etag(fake: FakeArxiv) -> None:
    """A cache in front of the feed serves Monday's answer, byte for byte, on Tuesday."""
    fake.listing = day_of(1, MONDAY)
    monday = await read(fake, ["cs"], None, MONDAY)
    assert monday.memory.etags["cs"]
    with pytest.raises(StaleListing, match="unchanged"):
        await read(fake, ["cs"], monday.memory, TUESDAY)
    last = fake.requests[-1]
    assert last.headers["if-none-match"] == monday.memory.etags["cs"]


async def test_the_same_day_read_again_is_not_stale_nor_conditional(fake: FakeArxiv) -> None:
    fake.listing = day_of(1, MONDAY)
    monday = await read(fake, ["cs"], None, MONDAY)
    again = await read(fake, ["cs"], monday.memory, MONDAY)
    assert len(again.listing.items) == 40
    assert "if-none-match" not in fake.requests[-1].headers


async def test_a_late_cross_list_of_yesterdays_paper_is_not_staleness(fake: FakeArxiv) -> None:
    fake.listing = day_of(1, MONDAY)
    monday = await read(fake, ["cs"], None, MONDAY)
    late = make_paper(5, categories=["math.OC", "cs.LG"])
    fake.listing = FakeListing(day=TUESDAY, items=[*day_of(101, TUESDAY).items, (late, "cross")])
    assert len((await read(fake, ["cs"], monday.memory, TUESDAY)).listing.items) == 41


def test_an_unreadable_memory_is_as_none(caplog: pytest.LogCaptureFixture) -> None:
    memory = ListingMemory(MONDAY, frozenset({"2611.00001v1"}), (("cs",),), {"cs": '"e"'})
    assert ListingMemory.loads(memory.dumps()) == memory
    assert ListingMemory.loads("{not json") is None
    assert ListingMemory.loads('{"day": "x"}') is None
    assert len(caplog.records) == 2


async def test_no_real_capture_is_judged_stale(corpus: Path) -> None:
    """Each capture read on a later day than each other one, that one as the last received."""
    listings = [parse_listing((corpus / name).read_bytes()) for name in CAPTURES]
    for last in listings:
        memory = ListingMemory(last.day, last.versions(), ())
        for listing in listings:
            if listing is last or listing.day < last.day:
                continue

            async def fetch(spec: str, etag: str | None, served: Listing = listing) -> Fetched:
                return served, None

            got = await read_day(fetch, [], memory, today=listing.day + timedelta(days=1))
            assert got.listing.items == listing.items


async def test_a_real_capture_is_read_in_one_request_and_whole(
    fake: FakeArxiv, corpus: Path
) -> None:
    capture = (corpus / CAPTURES[0]).read_bytes()
    fake.raw_next(capture, content_type="application/rss+xml")
    got = await read(fake, [], None, date(2024, 11, 28))
    assert got.requests == 1 and len(got.listing.items) == 1504
    assert got.memory.day == date(2024, 11, 28) and len(got.memory.versions) == 1504
    next_day = capture.replace(b"Thu, 28 Nov 2024", b"Fri, 29 Nov 2024")
    fake.raw_next(next_day, content_type="application/rss+xml")
    with pytest.raises(StaleListing, match="2024-11-29, last received 2024-11-28"):
        await read(fake, [], got.memory, date(2024, 11, 29))
