"""`/metrics`: a `papers-bot run` service (the real digest runner, `SlackPublisher` and
`ArxivSource`, a real Redis) against the fake arXiv and the fake Slack, scraped over HTTP
during and after a digest and read with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from adapters.slack.app import publisher_from_settings
from bot import metrics
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner
from bot.metrics import Metrics
from bot.models import Channel, Digest
from bot.publishing import Delivered, Publisher
from bot.service import Service
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.conftest import RedisServer, free_port
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_server import FakeWebhook
from tests.test_discord_app import CHANNEL_ID as DISCORD_CHANNEL
from tests.test_discord_app import make_settings as discord_settings
from tests.test_discord_app import run_digest as run_discord_digest
from tests.test_service import Clock
from tests.test_webhook import digest as webhook_digest
from tests.test_webhook import settings_for as webhook_settings

MONDAY_0700 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
KEYWORD = "zanzibar reward model"
"""Distinctive, so that a scrape showing it anywhere is found."""
CHANNEL = "CZQXSECRET1"
GONE = "CZQXGONE22"
INTERVAL = 0.02

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def zanzibar(n: int) -> object:
    when = MONDAY_0700 - timedelta(days=1)
    return make_paper(n, title=f"Zanzibar reward model {n}", published=when)


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv([zanzibar(n) for n in range(1, 6)]) as fake:  # type: ignore[misc]
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(min_interval=INTERVAL * 0.9) as fake:
        yield fake


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    """From a URL, as `papers-bot run` opens it: its pool counts round trips."""
    opened = RedisStore.from_url(redis_server.url, prefix=f"m{uuid.uuid4().hex[:8]}")
    yield opened
    await opened.close()


class Gated:
    """The real Slack output, held at its first channel until the test opens the gate."""

    platform = "slack"
    needs_recent = False

    def __init__(self, real: Publisher) -> None:
        self.real = real
        self.waiting = asyncio.Event()
        self.gate = asyncio.Event()

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        self.waiting.set()
        await self.gate.wait()
        await self.real.publish(digest, delivered)


def settings_for(arxiv: FakeArxiv, slack: FakeSlack, port: int) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": arxiv.settings(max_retries=3),
            "digest": {"first_run_papers": 100},
            "schedule": {"time": "08:00", "timezone": "UTC"},
            "service": {"health_host": "127.0.0.1", "health_port": port},
            "slack": {"bot_token": SecretStr(slack.bot_token), "api_url": slack.api_url},
            "subscriptions": [
                {"platform": "slack", "channel": CHANNEL, "keywords": [KEYWORD]},
                {"platform": "slack", "channel": GONE, "keywords": [KEYWORD, "quokka"]},
            ],
        }
    )


async def scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def until(condition: object, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_scrape_during_and_after_a_digest_finds_the_counters_moving(
    arxiv: FakeArxiv, slack: FakeSlack, store: RedisStore
) -> None:
    port = free_port()
    settings = settings_for(arxiv, slack, port)
    clock = Clock(MONDAY_0700)  # Friday's slot was missed: the service runs it at start-up
    output = Gated(publisher_from_settings(settings, interval=INTERVAL))
    runner = DigestRunner(
        settings, store, ArxivSource(settings.arxiv), {"slack": output}, clock=clock
    )
    service = Service(settings, store, runner, {}, clock=clock, sleep=clock.sleep)
    arxiv.fail_next(429, headers={"Retry-After": "0"})  # the listing's first request
    slack.rate_limit(CHANNEL, retry_after=0)
    slack.fail_channel(GONE, "channel_not_found")

    async with running(service):
        await until(output.waiting.is_set)
        during = await scrape(port)
        output.gate.set()
        await until(lambda: service.runs)
        after = await scrape(port)

    # During: the listing and the details were asked for, nothing is posted yet.
    assert value(during, "papers_bot_arxiv_requests_total", kind="listing") == 2
    assert value(during, "papers_bot_arxiv_requests_total", kind="details") == 1
    assert value(during, "papers_bot_arxiv_retries_total", kind="listing", reason="rate_limited")
    assert value(during, "papers_bot_rate_limited_total", platform="arxiv") == 1
    assert value(during, "papers_bot_digest_phase_duration_seconds_count", phase="listing") == 1
    assert value(during, "papers_bot_digest_phase_duration_seconds_count", phase="details") == 1
    assert value(during, "papers_bot_papers_posted_total", platform="slack") == 0
    assert value(during, "papers_bot_digest_duration_seconds_count") == 0
    assert value(during, "papers_bot_redis_round_trips_total") > 0
    assert value(during, "papers_bot_redis_up") == 1
    assert value(during, "papers_bot_redis_used_memory_bytes") > 0
    assert ("papers_bot_redis_maxmemory_bytes", frozenset()) in during

    # After: the papers went out, the gone channel failed, Slack's 429 was waited out.
    assert value(after, "papers_bot_papers_posted_total", platform="slack") == 5
    assert value(after, "papers_bot_channels_failed_total", platform="slack") == 1
    assert value(after, "papers_bot_rate_limited_total", platform="slack") == 1
    assert value(after, "papers_bot_retry_after_seconds_total", platform="slack") > 0
    assert value(after, "papers_bot_digests_total", outcome="failed") == 1
    assert value(after, "papers_bot_digest_duration_seconds_count") == 1
    assert value(after, "papers_bot_digest_phase_duration_seconds_count", phase="delivery") == 1
    assert value(after, "papers_bot_digest_last_success_timestamp_seconds") > 0
    assert value(after, "papers_bot_redis_round_trips_total") > value(
        during, "papers_bot_redis_round_trips_total"
    )
    # The listing is the fake's day: its age is counted from that day's start in New York.
    assert ("papers_bot_listing_age_seconds", frozenset()) in after


async def test_no_label_value_carries_a_channel_id_a_keyword_or_a_token(
    arxiv: FakeArxiv, slack: FakeSlack, store: RedisStore
) -> None:
    port = free_port()
    settings = settings_for(arxiv, slack, port)
    clock = Clock(MONDAY_0700)
    output = publisher_from_settings(settings, interval=INTERVAL)
    source = ArxivSource(settings.arxiv)
    runner = DigestRunner(settings, store, source, {"slack": output}, clock=clock)
    service = Service(settings, store, runner, {}, clock=clock, sleep=clock.sleep)
    slack.fail_channel(GONE, "channel_not_found")
    commands = Commands(settings, store, source, clock=clock)
    ctx = CommandContext(channel=Channel("slack", CHANNEL), user="UZQXUSER9")

    async with running(service):
        await until(lambda: service.runs)
        with metrics.reporting_to(service.metrics):
            await commands.handle(ctx, f"add {KEYWORD} extra")
            await commands.handle(ctx, "list")
        samples = await scrape(port)

    assert (
        value(
            samples, "papers_bot_command_duration_seconds_count", platform="slack", kind="command"
        )
        == 2
    )
    labels = {v for (_, pairs) in samples for _, v in pairs}
    secrets = (CHANNEL, GONE, "zanzibar", "quokka", "UZQXUSER9", slack.bot_token)
    leaked = {v for v in labels for secret in secrets if secret.lower() in v.lower()}
    assert not leaked
    assert labels >= {"slack", "listing", "details", "delivery", "command"}


async def test_two_services_in_one_process_count_apart(
    arxiv: FakeArxiv, slack: FakeSlack, store: RedisStore
) -> None:
    settings = settings_for(arxiv, slack, free_port())
    clock = Clock(MONDAY_0700)
    runner = DigestRunner(
        settings,
        store,
        ArxivSource(settings.arxiv),
        {"slack": publisher_from_settings(settings, interval=INTERVAL)},
        clock=clock,
    )
    busy = Service(settings, store, runner, {}, clock=clock, sleep=clock.sleep)
    idle = Service(settings, store, runner, {}, clock=clock, sleep=clock.sleep)
    with metrics.reporting_to(busy.metrics):
        await busy.run_startup()
    assert busy.runs
    assert busy.metrics.papers_posted.labels("slack")._value.get() == 10
    assert idle.metrics.papers_posted.labels("slack")._value.get() == 0
    assert metrics.CURRENT.get() is None


async def test_webhook_and_discord_429s_and_their_waits_are_counted(
    arxiv: FakeArxiv, redis_store: RedisStore, discord_fake: FakeDiscord
) -> None:
    counted = Metrics(process=False)
    async with FakeWebhook() as hook:
        hook.fail_next(429, headers={"Retry-After": "0.05"})
        team = Channel("webhook", hook.url("team"))
        with metrics.reporting_to(counted):
            report = await webhook_digest(webhook_settings(arxiv), redis_store, {team: [KEYWORD]})
    assert report.ok
    discord_fake.fail_channel(DISCORD_CHANNEL, 429, times=1)
    settings = discord_settings(discord_fake, arxiv, subscriptions={DISCORD_CHANNEL: [KEYWORD]})
    with metrics.reporting_to(counted):
        assert (await run_discord_digest(settings, redis_store)).ok

    for platform in ("webhook", "discord"):
        assert counted.rate_limited.labels(platform)._value.get() == 1
        assert counted.retry_after_seconds.labels(platform)._value.get() > 0
