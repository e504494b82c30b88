"""arXiv failing in every way we know, through whole digest runs: the real `DigestRunner`,
`ArxivSource` (the real `arxiv` client) against the fake arXiv, a real Redis and the real
console output. Each fault must cost bounded retries and one clear error line, leave the
other keyword's channel served, and lose nothing: the failed keyword's papers all arrive
with the next good run, each once. docs/reliability.md lists these rows.

The search faults hit the window queries, which serve channels that missed a listing: the
`Bot` here runs every digest as such a catch-up (an empty listing today, the channels' last
listing a week back). Faults of the listing itself are at the end."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.console import ConsolePublisher
from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner, RunReport
from bot.models import Channel
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.conftest import CORPUS
from tests.fakes.arxiv_server import (
    RSS_CONTENT_TYPE,
    FakeArxiv,
    FakeListing,
    FakePaper,
    RecordedRequest,
    closed_port_url,
    make_paper,
)

NOW = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
A = Channel("console", "reward")
B = Channel("console", "diffusion")
CHANNELS = {A: ["reward model"], B: ["diffusion"]}
MAX_RETRIES = 1
ATTEMPTS = MAX_RETRIES + 1
TIMEOUT = 0.3


def reward(n: int) -> FakePaper:
    return make_paper(n, title=f"Reward model study {n}")


def diffusion(n: int) -> FakePaper:
    return make_paper(100 + n, title=f"Diffusion policy {n}")


def ids(papers: list[FakePaper]) -> list[str]:
    return [p.id for p in papers]


class Sleeps:
    """Stands in for the retry back-off's sleep: records, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Bot:
    """One digest process after another (a new source each time, as cron runs it), on one
    Redis, printing to one console stream."""

    def __init__(
        self, url: str, store: RedisStore, *, batch_size: int = 20, rss_url: str | None = None
    ) -> None:
        self.url = url
        self.rss_url = rss_url or url.removesuffix("api/query") + "rss/"
        self.store = store
        self.batch_size = batch_size
        self.now = NOW
        self.out = io.StringIO()
        self.sleeps = Sleeps()

    def settings(self) -> Settings:
        return Settings.model_validate(
            {
                "arxiv": {
                    "api_url": self.url,
                    "oai_url": "",
                    "rss_url": self.rss_url,
                    "request_interval": 0,
                    "timeout": TIMEOUT,
                    "max_retries": MAX_RETRIES,
                    "retry_backoff": 0.5,
                    "page_size": 10,
                    "batch_size": self.batch_size,
                },
            }
        )

    async def digest(self, *, catch_up: bool = True) -> RunReport:
        if catch_up:
            for channel in CHANNELS:
                await self.store.set_listing_day(channel, self.now.date() - timedelta(days=7))
        settings = self.settings()
        source = ArxivSource(settings.arxiv, sleep=self.sleeps)
        output = ConsolePublisher(stream=self.out)
        runner = DigestRunner(settings, self.store, source, {"console": output}, clock=self.now_)
        return await runner.run(CHANNELS)

    def now_(self) -> datetime:
        return self.now

    def printed(self) -> dict[Channel, list[str]]:
        """The arXiv ids printed under each channel's header, in order, repeats kept."""
        found: dict[Channel, list[str]] = {A: [], B: []}
        current: Channel | None = None
        for line in self.out.getvalue().splitlines():
            header = re.match(r"^console:(\S+) · ", line)
            if header:
                current = Channel("console", header.group(1))
            link = re.search(r"https://arxiv\.org/abs/(\S+)$", line)
            if link and current is not None:
                found[current].append(link.group(1))
        return found


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    papers = [reward(n) for n in range(1, 26)] + [diffusion(n) for n in range(1, 6)]
    with FakeArxiv(papers) as server:
        server.listing = FakeListing(day=NOW.date(), items=[])  # all comes from the window
        yield server


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("arxiv_retry")]


@dataclass(frozen=True)
class Fault:
    inject: Callable[[FakeArxiv, int], Any]
    """Queue `times` of this fault for the next requests."""
    reason: str
    """What the error line says."""
    retried: bool = True
    per_attempt: int = 1
    """Requests one attempt makes. A truncated page makes the `arxiv` client ask again from
    the last entry it could read; only that second answer being broken too fails the try."""


FAULTS = {
    "http-500": Fault(lambda f, n: f.fail_next(500, times=n), "HTTP 500"),
    "http-503": Fault(lambda f, n: f.fail_next(503, times=n), "HTTP 503"),
    "http-429": Fault(
        lambda f, n: f.fail_next(429, times=n, headers={"Retry-After": "7"}), "HTTP 429"
    ),
    "hang": Fault(lambda f, n: f.hang_next(n), f"no answer within {TIMEOUT:g}s"),
    "truncated": Fault(lambda f, n: f.truncate_next(times=n), "malformed feed", per_attempt=2),
    "malformed": Fault(lambda f, n: f.malformed_next(times=n), "malformed feed"),
    "error-feed": Fault(
        lambda f, n: f.error_feed_next(times=n), "arXiv refused the query", retried=False
    ),
    "empty-page-mid-paging": Fault(
        lambda f, n: (f.pass_next(), f.empty_page_next(times=n)), "empty page"
    ),
}


@pytest.mark.parametrize("phase", ["first-fetch", "window"])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_failing_keyword_costs_bounded_retries_and_one_line_then_comes_next_run(
    fake: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    phase: str,
) -> None:
    spec = FAULTS[fault]
    # batch_size 1: in the window phase each keyword has its own query (a batch fails whole)
    bot = Bot(fake.url, redis_store, batch_size=1)
    expected_a = ids(fake.papers[:25])
    expected_b = ids(fake.papers[25:])
    if phase == "window":
        assert (await bot.digest()).ok  # day 1: both keywords known from now on
        bot.now += timedelta(days=1)
        fake.papers += [reward(n) for n in range(26, 31)] + [diffusion(n) for n in (6, 7)]
        expected_a += [f"2611.{n:05d}" for n in range(26, 31)]
        expected_b += ["2611.00106", "2611.00107"]
    fake.clear_requests()
    caplog.clear()
    bot.sleeps.waits.clear()

    tries = ATTEMPTS if spec.retried else 1
    fake.pass_next()  # the listing
    spec.inject(fake, tries * spec.per_attempt)  # every try for "reward model" fails
    report = await bot.digest()

    assert list(report.failed_keywords) == ["reward model"]
    assert spec.reason in report.failed_keywords["reward model"]
    (line,) = errors(caplog)  # one clear line, naming the keyword and the reason
    assert line.startswith("arxiv_failed keywords='reward model'") and spec.reason in line
    assert len(retries(caplog)) == (MAX_RETRIES if spec.retried else 0)
    failing = [r for r in fake.requests if "reward" in r.params.get("search_query", "")]
    assert len(failing) == tries * spec.per_attempt + (1 if "mid-paging" in fault else 0)
    if fault == "http-429":
        assert bot.sleeps.waits == [7.0]  # Retry-After honoured, not the 0.5 s back-off
    printed = bot.printed()
    assert sorted(printed[B]) == sorted(expected_b)  # the other keyword was served
    assert sorted(printed[A]) == sorted(expected_a[:25] if phase == "window" else [])
    unseen = await redis_store.unseen(A, expected_a)
    assert unseen == set(expected_a[25:] if phase == "window" else expected_a)

    caplog.clear()
    bot.now += timedelta(hours=1)
    report = await bot.digest()
    assert report.ok and errors(caplog) == []
    printed = bot.printed()
    assert sorted(printed[A]) == sorted(expected_a)  # everything, each exactly once
    assert sorted(printed[B]) == sorted(expected_b)


@pytest.mark.parametrize("fault", [name for name, spec in FAULTS.items() if spec.retried])
async def test_one_transient_fault_is_retried_within_the_run(
    fake: FakeArxiv, redis_store: RedisStore, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    spec = FAULTS[fault]
    bot = Bot(fake.url, redis_store)
    fake.pass_next()  # the listing
    spec.inject(fake, 1)
    report = await bot.digest()
    assert report.ok and errors(caplog) == []
    if spec.per_attempt == 1:
        (warning,) = retries(caplog)
        assert "keywords='reward model', 'diffusion' attempt=1/2" in warning  # one batch
        assert spec.reason in warning
    else:  # the client's own second request, from the last entry it read, was whole
        assert retries(caplog) == []
    printed = bot.printed()
    assert sorted(printed[A]) == sorted(ids(fake.papers[:25]))
    assert sorted(printed[B]) == sorted(ids(fake.papers[25:]))


async def test_arxiv_refusing_connections_fails_every_keyword_and_loses_nothing(
    fake: FakeArxiv, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    down = Bot(closed_port_url(), redis_store)
    report = await down.digest()
    assert sorted(report.failed_keywords) == ["diffusion", "reward model"]
    assert report.delivered == 0 and down.printed() == {A: [], B: []}
    lines = errors(caplog)
    assert len(lines) == 2  # the listing, then the keywords' batch; not one per attempt
    assert all("connection failed: ConnectionError" in line for line in lines)
    assert len(retries(caplog)) == 2 * MAX_RETRIES
    assert await redis_store.unseen(A, ids(fake.papers[:25])) == set(ids(fake.papers[:25]))

    back = Bot(fake.url, redis_store)
    report = await back.digest()
    assert report.ok
    assert sorted(back.printed()[A]) == sorted(ids(fake.papers[:25]))
    assert sorted(back.printed()[B]) == sorted(ids(fake.papers[25:]))


class ShiftingArxiv(FakeArxiv):
    """arXiv while papers are being announced: a new one arrives between two pages of a
    search, so the next page starts one paper later and repeats the previous page's last."""

    def __init__(self, papers: list[FakePaper], newcomer: FakePaper) -> None:
        super().__init__(papers)
        self.newcomer = newcomer

    def _request_started(self, record: RecordedRequest) -> Any:
        fault = super()._request_started(record)
        if record.start > 0 and self.newcomer not in self.papers:
            self.papers.append(self.newcomer)
        return fault


async def test_a_paper_repeated_across_pages_is_posted_once(redis_store: RedisStore) -> None:
    papers = [reward(n) for n in range(1, 26)] + [diffusion(n) for n in range(1, 6)]
    newcomer = reward(90)
    with ShiftingArxiv(papers, newcomer) as fake:
        fake.listing = FakeListing(day=NOW.date(), items=[])
        bot = Bot(fake.url, redis_store)
        report = await bot.digest()
        pages = [r for r in fake.requests if "reward" in r.params.get("search_query", "")]
        assert [r.start for r in pages] == [0, 10, 20, 30]  # both keywords, one batch
        assert report.ok
        printed = bot.printed()
        assert len(printed[A]) == len(set(printed[A])) == 25  # the repeat was dropped
        assert newcomer.id not in printed[A]  # it was announced mid-search

        bot.now += timedelta(days=1)
        report = await bot.digest()
        assert report.ok and bot.printed()[A][25:] == [newcomer.id]
        assert sorted(bot.printed()[A]) == sorted(ids([*papers[:25], newcomer]))


LISTING_FAULTS = {
    name: FAULTS[name] for name in ("http-500", "http-503", "http-429", "hang", "malformed")
}


@pytest.mark.parametrize("exhausted", [False, True], ids=["once", "every-try"])
@pytest.mark.parametrize("fault", list(LISTING_FAULTS))
async def test_a_failing_listing_is_retried_then_replaced_by_the_window(
    fake: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    exhausted: bool,
) -> None:
    fake.listing = None  # the listing announces every paper the fake holds
    bot = Bot(fake.url, redis_store)
    LISTING_FAULTS[fault].inject(fake, ATTEMPTS if exhausted else 1)
    report = await bot.digest(catch_up=False)
    assert report.ok
    (warning, *_) = retries(caplog)
    assert "the day's listing (" in warning and "attempt=1/2" in warning
    listing_errors = [line for line in errors(caplog) if line.startswith("arxiv_listing_failed")]
    assert len(listing_errors) == (1 if exhausted else 0)
    searched = [r for r in fake.requests if r.params.get("search_query")]
    assert bool(searched) is exhausted  # the window stands in for the listing
    printed = bot.printed()
    assert sorted(printed[A]) == sorted(ids(fake.papers[:25]))
    assert sorted(printed[B]) == sorted(ids(fake.papers[25:]))


async def test_a_listing_of_an_archive_arxiv_does_not_know_is_not_retried(
    fake: FakeArxiv, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    capture = CORPUS / "arxiv_rss_2024-11-28_error_feed_bad_archive_astroph.xml"
    if not capture.is_file():
        pytest.skip(f"the shared corpus is absent: {capture}")
    bot = Bot(fake.url, redis_store)
    fake.raw_next(capture.read_bytes(), content_type=RSS_CONTENT_TYPE)
    report = await bot.digest(catch_up=False)
    assert report.ok and retries(caplog) == []
    (line,) = errors(caplog)
    assert "Bad archive 'astroph'" in line
    assert sorted(bot.printed()[A]) == sorted(ids(fake.papers[:25]))
