"""The real `arxiv` client through ArxivSource, against the fake arXiv on loopback."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.arxiv_source import (
    USER_AGENT,
    ArxivError,
    ArxivQueryError,
    ArxivSource,
    retry_after_seconds,
)
from bot.models import Paper
from bot.settings import ArxivSettings
from bot.state import Store
from bot.state.redis import RedisStore
from tests.conftest import free_port
from tests.fakes.arxiv_server import (
    RSS_CONTENT_TYPE,
    FakeArxiv,
    closed_port_url,
    listing_to_rss,
    make_paper,
)

# The source paces the starts of its requests; the fake records their arrivals, which a thread
# hand-off and the scheduler can bring up to a few tens of milliseconds closer together.
ARRIVAL_JITTER = 0.04


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 26)]
    with FakeArxiv(papers) as server:
        yield server


def source_for(
    url: str, sleeps: Sleeps | None = None, *, shared: Store | None = None, **overrides: float
) -> ArxivSource:
    values: dict[str, object] = {
        "api_url": url,
        "request_interval": 0,
        "timeout": 2,
        "max_retries": 2,
        "retry_backoff": 0.5,
        "page_size": 10,
    }
    settings = ArxivSettings.model_validate(values | overrides)
    return ArxivSource(settings, sleep=sleeps or Sleeps(), shared=shared)


async def test_latest_pages_through_results_newest_first(fake: FakeArxiv) -> None:
    source = source_for(fake.url)
    papers = await source.latest("reward model", 25)
    assert [p.id for p in papers] == [f"2611.{n:05d}" for n in range(25, 0, -1)]
    assert len(fake.requests) == 3
    assert source.request_count == 3


async def test_ids_lose_their_version(fake: FakeArxiv) -> None:
    fake.papers[0] = fake.papers[0].new_version()
    papers = await source_for(fake.url).latest("reward model", 30)
    updated = next(p for p in papers if p.id == "2611.00001")
    assert updated.version == 2


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried_with_backoff(fake: FakeArxiv, status: int) -> None:
    sleeps = Sleeps()
    fake.fail_next(status, times=2)
    papers = await source_for(fake.url, sleeps).latest("reward model", 5)
    assert len(papers) == 5
    assert sleeps.waits == [0.5, 1.0]


async def test_429_waits_for_retry_after(fake: FakeArxiv) -> None:
    sleeps = Sleeps()
    fake.fail_next(429, headers={"Retry-After": "7"})
    assert await source_for(fake.url, sleeps).latest("reward model", 1)
    assert sleeps.waits == [7.0]


async def test_retries_are_bounded_and_the_error_names_the_keyword(fake: FakeArxiv) -> None:
    fake.fail_next(503, times=5)
    with pytest.raises(ArxivError, match="3 times for 'reward model'"):
        await source_for(fake.url).latest("reward model", 5)
    assert len(fake.requests) == 3


async def test_a_server_that_never_answers_times_out(fake: FakeArxiv) -> None:
    fake.hang_next()
    source = source_for(fake.url, timeout=0.3)
    papers = await asyncio.wait_for(source.latest("reward model", 3), timeout=10)
    assert len(papers) == 3


async def test_connection_refused_is_retried_then_reported() -> None:
    sleeps = Sleeps()
    with pytest.raises(ArxivError, match="connection failed"):
        await source_for(closed_port_url(), sleeps).latest("x", 1)
    assert len(sleeps.waits) == 2


@pytest.mark.parametrize("fault", ["truncate_next", "malformed_next", "empty_page_next"])
async def test_broken_pages_are_retried(fake: FakeArxiv, fault: str) -> None:
    getattr(fake, fault)()
    papers = await source_for(fake.url).latest("reward model", 25)
    assert len(papers) == 25


async def test_an_empty_page_in_the_middle_of_paging_is_retried(fake: FakeArxiv) -> None:
    source = source_for(fake.url)
    first = await source.latest("reward model", 10)
    fake.clear_requests()
    fake.raw_next(b"", status=200)  # consumed by the next request only
    again = await source.latest("reward model", 25)
    assert [p.id for p in again[:10]] == [p.id for p in first]
    assert len(again) == 25


@pytest.mark.parametrize("status", [400, 200])
async def test_the_error_feed_is_an_error_not_a_paper(fake: FakeArxiv, status: int) -> None:
    fake.error_feed_next(status=status)
    with pytest.raises(ArxivQueryError, match="reward model"):
        await source_for(fake.url).latest("reward model", 5)
    assert len(fake.requests) == 1


async def test_one_request_at_a_time_spaced_by_the_interval(fake: FakeArxiv) -> None:
    source = source_for(fake.url, request_interval=0.2)
    await asyncio.gather(*(source.latest("reward model", 5) for _ in range(4)))
    assert fake.max_concurrent == 1
    gaps = fake.request_gaps()
    assert len(gaps) == 3
    assert min(gaps) >= 0.2 - ARRIVAL_JITTER


async def test_the_interval_runs_from_start_to_start_so_latency_is_not_added() -> None:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 6)]
    with FakeArxiv(papers, latency=0.15) as slow:
        source = source_for(slow.url, request_interval=0.25)
        await asyncio.gather(*(source.latest("reward model", 5) for _ in range(4)))
        gaps = slow.request_gaps()
    assert len(gaps) == 3
    assert min(gaps) >= 0.25 - ARRIVAL_JITTER
    assert max(gaps) < 0.25 + ARRIVAL_JITTER  # end to start would be 0.40


def corpus_feeds(corpus: Path) -> list[Path]:
    return sorted(corpus.glob("arxiv_api_*.xml"))


async def test_every_corpus_feed_parses_or_is_recognised_as_an_error(
    fake: FakeArxiv, corpus: Path
) -> None:
    feeds = corpus_feeds(corpus)
    assert len(feeds) >= 18
    source = source_for(fake.url, max_retries=0)
    for path in feeds:
        body = path.read_bytes()
        fake.raw_next(body, status=400 if "http400" in path.name else 200)
        # Ask for exactly the entries the file holds: several files claim a larger
        # totalResults, and the client would go on to ask the fake for the next page.
        entries = max(1, body.count(b"<entry"))
        if "error_feed" in path.name:
            with pytest.raises(ArxivQueryError):
                await source.search("x", entries, [path.name])
            continue
        papers = await source.search("x", entries, [path.name])
        if "empty_result" in path.name:
            assert papers == [], path.name
            continue
        assert papers, path.name
        for paper in papers:
            assert paper.id and "v" not in paper.id.rsplit("/", 1)[-1].split(".")[-1], paper.id
            assert paper.title.strip() and "\n" not in paper.title, path.name
            assert paper.summary and paper.authors and paper.published.tzinfo is not None


async def test_corpus_details_survive(fake: FakeArxiv, corpus: Path) -> None:
    source = source_for(fake.url, max_retries=0)

    async def serve(name: str) -> list[Paper]:
        body = (corpus / name).read_bytes()
        fake.raw_next(body)
        return await source.search("x", body.count(b"<entry"), [name])

    (many,) = await serve("arxiv_api_2026_idlist_two_ids_one_missing_34_authors.xml")
    assert len(many.authors) == 34 and "Dirk Wübben" in many.authors
    (zero,) = await serve("arxiv_api_2026_versioned_id_numeric_title_no_comment.xml")
    assert zero.title == "0" and zero.comment is None
    (old,) = await serve("arxiv_api_2026_old_style_id_astro-ph_0601001_affiliations_journalref.xml")
    assert old.id == "astro-ph/0601001" and old.version == 1
    assert old.journal_ref == "ActaAstron.56:1-50,2006"
    assert many.journal_ref is None and zero.journal_ref is None
    (v2,) = await serve(
        "arxiv_api_2016_legacy_idlist_1111.2011v2_doi_journalref_multiline_title.xml"
    )
    assert (v2.id, v2.version) == ("1111.2011", 2)
    assert v2.journal_ref == "Phys. Rev. B 85, 115117 (2012)"
    (bare,) = await serve("arxiv_api_docs_user_manual_typical_response_all_electron_legacy2007.xml")
    assert (bare.id, bare.version) == ("hep-ex/0307015", 1)


async def test_the_journal_reference_comes_through_the_real_client() -> None:
    papers = [make_paper(1, journal_ref="Phys. Rev.\n  Lett. 133, 226001 (2024)"), make_paper(2)]
    with FakeArxiv(papers) as server:
        found = await source_for(server.url).details(["2611.00001", "2611.00002"])
    assert found["2611.00001"].journal_ref == "Phys. Rev. Lett. 133, 226001 (2024)"
    assert found["2611.00002"].journal_ref is None


async def test_sources_sharing_a_store_keep_the_interval_together(
    fake: FakeArxiv, redis_store: RedisStore
) -> None:
    replicas = [
        source_for(fake.url, request_interval=0.2, shared=redis_store),
        source_for(fake.url, request_interval=0.2, shared=redis_store),
    ]
    await asyncio.gather(*(s.latest("reward model", 5) for s in replicas for _ in range(2)))
    gaps = fake.request_gaps()
    assert len(gaps) == 3
    # each source alone would let its requests arrive together with the other's
    assert min(gaps) >= 0.2 - ARRIVAL_JITTER


async def test_an_unreachable_shared_store_falls_back_to_pacing_alone(
    fake: FakeArxiv, caplog: pytest.LogCaptureFixture
) -> None:
    gone = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    source = source_for(fake.url, request_interval=0.05, shared=gone)
    assert len(await source.latest("reward model", 5)) == 5
    assert "arxiv_pace_unshared" in caplog.text
    await gone.close()


# -- issue 21: a robust source ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("1.5", 1.5),  # fractional seconds: raised ValueError before
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.5),  # a past date, RFC 5322's "-0000": naive
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.5),
        ("inf", 0.5),
        ("soon", 0.5),
        ("-3", 0.5),  # never less than the backoff
    ],
)
async def test_any_retry_after_is_parsed_or_ignored_never_raised(
    fake: FakeArxiv, header: str, wait: float
) -> None:
    sleeps = Sleeps()
    fake.fail_next(503, headers={"Retry-After": header})
    assert await source_for(fake.url, sleeps).latest("reward model", 1)
    assert sleeps.waits == [wait]
    fake.fail_next(503, headers={"Retry-After": header})
    listing = await source_for(fake.url, sleeps, rss_url=fake.rss_url).listing()
    assert len(listing.items) == 25


def test_retry_after_dates_in_any_zone() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("Mon, 07 Dec 2026 12:00:30 -0000", now) == 30
    assert retry_after_seconds("Mon, 07 Dec 2026 07:00:30 -0500", now) == 30
    assert retry_after_seconds("Mon, 07 Dec 2026 12:00:30 GMT", now) == 30
    assert retry_after_seconds("2.25", now) == 2.25
    assert retry_after_seconds("nan", now) is None
    assert retry_after_seconds("x" * 1000, now) is None


async def test_406_is_retried_like_503(fake: FakeArxiv) -> None:
    sleeps = Sleeps()
    fake.fail_next(406)
    assert await source_for(fake.url, sleeps).latest("reward model", 1)
    fake.fail_next(406)
    assert await source_for(fake.url, sleeps, rss_url=fake.rss_url).listing()
    assert sleeps.waits == [0.5, 0.5]


async def test_requests_send_accept_and_name_the_bot(fake: FakeArxiv) -> None:
    source = source_for(fake.url, rss_url=fake.rss_url)
    await source.latest("reward model", 1)
    await source.listing()
    api, rss = fake.requests
    assert api.headers["user-agent"] == rss.headers["user-agent"] == USER_AGENT
    assert "papers-bot" in USER_AGENT
    assert api.headers["accept"].startswith("application/atom+xml")
    assert rss.headers["accept"].startswith("application/rss+xml")


async def test_a_trickling_answer_ends_at_the_whole_request_deadline(fake: FakeArxiv) -> None:
    """One byte every 0.05 s: every socket read gets something, so a per-read timeout never
    fires; the whole answer (tens of kB) would take half an hour."""
    sleeps = Sleeps()
    fake.trickle_next(0.05, times=2)
    source = source_for(fake.url, sleeps, rss_url=fake.rss_url, timeout=1, max_retries=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ArxivError, match="no answer within 1s"):
        await asyncio.wait_for(source.listing(), timeout=60)
    assert loop.time() - started < 30
    assert len(fake.requests) == 2


async def test_an_answer_over_the_size_limit_is_refused(fake: FakeArxiv) -> None:
    huge = b"<rss>" + b" " * (2 * 1024 * 1024) + b"</rss>"
    fake.raw_next(huge, times=2)
    source = source_for(fake.url, rss_url=fake.rss_url, max_response_mb=1, max_retries=1)
    with pytest.raises(ArxivError, match="AnswerTooLarge"):
        await source.listing()


async def test_one_unreadable_item_is_skipped_and_the_rest_kept(
    fake: FakeArxiv, caplog: pytest.LogCaptureFixture
) -> None:
    body = listing_to_rss(fake.everything_today(), "cs")
    first = body.index(b"<arxiv:announce_type>new<")
    body = body[:first] + body[first:].replace(b">new<", b">novel<", 1)
    second = body.index(b"<guid", body.index(b"<item>", first))
    body = body[:second] + body[second:].replace(b"2611.", b"bogus", 1)
    fake.raw_next(body, content_type=RSS_CONTENT_TYPE)
    listing = await source_for(fake.url, rss_url=fake.rss_url).listing()
    assert len(listing.items) == 24 and listing.skipped == 1
    (warning,) = [
        r.getMessage() for r in caplog.records if "listing_items_skipped" in r.getMessage()
    ]
    assert "unknown announce type 'novel'" in warning and "skipped=1" in warning
