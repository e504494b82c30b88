"""The day's listing parsed from every real RSS capture, and the pure rules for days."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.listing import (
    ListingError,
    catch_up_since,
    missed_days,
    parse,
    previous_listing_day,
    spec,
    with_details,
)
from tests.conftest import CORPUS
from tests.factories import paper
from tests.fakes.arxiv_server import FakeListing, listing_to_rss, make_paper


def _capture(name: str) -> bytes:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"the shared corpus is absent: {path}")
    return path.read_bytes()


QUANT_PH = "arxiv_rss_2025-04-28_quant-ph_81_items_all_announce_types.xml"
LARGE = "arxiv_rss_2024-11-28_all_archives_1504_items_LARGE.xml"
EMPTY = "arxiv_rss_2024-11-28_empty_feed_no_items_test_archive.xml"
ERROR = "arxiv_rss_2024-11-28_error_feed_bad_archive_astroph.xml"


def test_every_rss_capture_is_a_listing_or_the_feed_error() -> None:
    captures = sorted(CORPUS.glob("arxiv_rss_*.xml")) if CORPUS.is_dir() else []
    if not captures:
        pytest.skip(f"the shared corpus is absent: {CORPUS}")
    assert len(captures) == 4
    for path in captures:
        if "error_feed" in path.name:
            with pytest.raises(ListingError):
                parse(path.read_bytes())
        else:
            assert parse(path.read_bytes()).day in (date(2024, 11, 28), date(2025, 4, 28))


def test_a_whole_day_with_all_four_announce_types() -> None:
    listing = parse(_capture(QUANT_PH))
    assert listing.day == date(2025, 4, 28)
    assert Counter(i.kind for i in listing.items) == {
        "new": 40,
        "replace": 22,
        "cross": 10,
        "replace-cross": 9,
    }
    first = listing.items[0].paper
    assert (first.id, first.version) == ("2504.17830", 1)
    assert first.title == "Self-Adjoint Time Operator in a Weighted Energy Space"
    assert first.authors == ("Radmir Kokoulin",)
    assert first.categories == ("quant-ph",)
    assert first.summary.startswith("We introduce a self-adjoint time operator")
    assert "Announce Type" not in first.summary and "Abstract:" not in first.summary
    by_id = {i.paper.id: i for i in listing.items}
    old = by_id["2401.00867"]
    assert (old.kind, old.paper.version, old.revision) == ("replace-cross", 4, True)
    assert old.paper.authors == ("Borja Aizpurua", "Samuel Palmer", "Roman Orus")
    assert old.paper.primary_category == "cs.LG"
    # No submission date in a listing: the announcement (00:00 US Eastern) stands in.
    assert first.published == datetime(2025, 4, 28, 4, 0, tzinfo=UTC)


def test_the_large_multi_archive_day() -> None:
    listing = parse(_capture(LARGE))
    assert len(listing.items) == 1504
    assert len({i.paper.id for i in listing.items}) == 1504
    assert all(i.paper.title and i.paper.summary and i.paper.authors for i in listing.items)


@pytest.mark.parametrize(
    ("name", "count", "paper_id", "journal_ref"),
    [
        (LARGE, 97, "2411.18371", "Physical Review B 110 195151 (2024)"),
        (QUANT_PH, 9, "2504.18166", "Phys. Rev. A 111, 042427 (2025)"),
    ],
)
def test_journal_references_are_read_from_the_listing(
    name: str, count: int, paper_id: str, journal_ref: str
) -> None:
    body = _capture(name)
    papers = {i.paper.id: i.paper for i in parse(body).items}
    assert sum(p.journal_ref is not None for p in papers.values()) == count
    assert body.count(b"<arxiv:journal_reference>") == count
    assert papers[paper_id].journal_ref == journal_ref


def test_an_empty_day_names_its_day() -> None:
    listing = parse(_capture(EMPTY))
    assert (listing.day, listing.items) == (date(2024, 11, 28), ())


def test_a_bad_archive_is_the_feed_error() -> None:
    with pytest.raises(ListingError, match="Bad archive 'astroph'"):
        parse(_capture(ERROR))


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>Service Unavailable</html>", b"<rss><channel><title>x</title>"],
)
def test_what_is_not_a_listing_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse(body)


def test_a_capture_cut_short_is_a_value_error() -> None:
    body = _capture(QUANT_PH)
    with pytest.raises(ValueError):
        parse(body[: len(body) // 2])


def test_spec_names_the_configured_categories_or_every_archive() -> None:
    assert spec(["cs.CL", "math"]) == "cs.CL+math"
    every = spec([]).split("+")
    assert "cs" in every and "quant-ph" in every and "astro-ph" in every
    assert len(every) == 20


MON, TUE, WED, THU, FRI, SAT, SUN = (date(2026, 11, d) for d in range(23, 30))
NEXT_MON = date(2026, 11, 30)


@pytest.mark.parametrize(
    ("last", "today", "missed"),
    [
        (None, TUE, False),  # a channel's first listing
        (MON, TUE, False),
        (TUE, TUE, False),  # the same listing again
        (WED, TUE, False),  # an older listing than the channel has
        (MON, WED, True),  # Tuesday's listing was missed
        (FRI, NEXT_MON, False),  # the weekend has no listings
        (THU, NEXT_MON, True),  # Friday's was missed
        (FRI, SAT, False),
        (THU, SUN, True),
        (MON, None, True),  # no listing at all: search the window
        (None, None, True),
    ],
)
def test_missed_days(last: date | None, today: date | None, missed: bool) -> None:
    assert missed_days(last, today) is missed


NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "since"),
    [
        (None, datetime(2026, 11, 23, 8, 0, tzinfo=UTC)),  # the window
        (THU, datetime(2026, 11, 23, 8, 0, tzinfo=UTC)),  # within the window
        (date(2026, 11, 10), datetime(2026, 11, 9, tzinfo=UTC)),  # the day before the last
        (date(2026, 8, 1), datetime(2026, 10, 1, 8, 0, tzinfo=UTC)),  # at most 60 days
    ],
)
def test_catch_up_since(last: date | None, since: datetime) -> None:
    assert catch_up_since(last, NOW, 7) == since


def test_details_fill_dates_and_comment_but_keep_the_listed_version() -> None:
    listed = paper(1, version=2, published=NOW)
    found = paper(1, version=3, comment="ICML", published=datetime(2025, 1, 2, tzinfo=UTC))
    merged = with_details(listed, found)
    assert (merged.version, merged.comment, merged.published) == (2, "ICML", found.published)
    assert merged.updated == listed.updated  # arXiv has a newer version than the listed one
    assert with_details(listed, None) is listed


def test_the_fake_listing_serves_journal_references_as_arxiv_does() -> None:
    fake = FakeListing(
        date(2026, 11, 23),
        [(make_paper(1, categories=("cs.CL",), journal_ref="A&A 691, A35 (2024)"), "new")],
    )
    fake.items.append((make_paper(2, categories=("cs.CL",)), "new"))
    listed = [i.paper for i in parse(listing_to_rss(fake, "cs")).items]
    assert [p.journal_ref for p in listed] == ["A&A 691, A35 (2024)", None]


def test_details_bring_the_journal_reference_unless_only_the_listing_has_one() -> None:
    listed = paper(1, journal_ref="Phys. Rev. B 1 (2024)")
    assert with_details(listed, paper(1, journal_ref="Phys. Rev. B 2 (2025)")).journal_ref == (
        "Phys. Rev. B 2 (2025)"
    )
    assert with_details(listed, paper(1)).journal_ref == "Phys. Rev. B 1 (2024)"


def test_captures_stay_outside_the_repository() -> None:
    assert not list(Path(__file__).resolve().parents[1].rglob("arxiv_rss_*.xml"))


@pytest.mark.parametrize(
    ("day", "before"),
    [(TUE, MON), (MON, date(2026, 11, 20)), (SUN, FRI), (SAT, FRI)],
)
def test_previous_listing_day_skips_the_weekend(day: date, before: date) -> None:
    assert previous_listing_day(day) == before
