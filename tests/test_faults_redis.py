"""Redis going away: stopped in the middle of a digest (and started again, with its
append-only file, as docker-compose.yml runs it), and unreachable at start-up. Nothing may be
marked seen that was not posted, the error must be one clear line, and the bot must recover
without a restart once Redis is back. Real redis-server processes of our own, the real
Discord publisher against the fake Discord (whose nonce check catches a repeated message)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from adapters.discord.app import DiscordPublisher
from adapters.discord.render import PAPERS_WITH_BUTTONS
from bot.arxiv_source import ArxivSource
from bot.cli import main
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner, RunReport
from bot.models import Channel
from bot.service import RETRY_FAILED_RUN, Service
from bot.settings import DigestSettings, ServiceSettings, Settings
from bot.state.redis import RedisStore
from tests.conftest import RedisServer, free_port
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, TOKEN, FakeDiscord
from tests.test_digest import SLACK, Recorder
from tests.test_discord_app import make_settings
from tests.test_service import MONDAY_0700, Clock

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
PAPERS = 30  # three messages of ten embeds
HERE = Channel("discord", str(CHANNEL_ID))
ALL = {f"2611.{n:05d}" for n in range(1, PAPERS + 1)}


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, PAPERS + 1)]
    with FakeArxiv(papers) as fake:
        yield fake


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Our own redis-server, so that this test can stop it; it keeps its data over a restart."""
    server = RedisServer(tmp_path, persist=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def store(redis: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis.url, prefix="blip")
    yield store
    await store.close()


def settings_for(discord_fake: FakeDiscord, arxiv: FakeArxiv) -> Settings:
    settings = make_settings(
        discord_fake,
        arxiv,
        subscriptions={CHANNEL_ID: ["reward model"]},
        digest=DigestSettings(first_run_papers=100),
    )
    settings.service = ServiceSettings(lock_ttl=1)
    return settings


async def digest(settings: Settings, store: RedisStore, *, mark_retry: float) -> RunReport:
    async with DiscordPublisher(settings.discord, TOKEN) as output:
        runner = DigestRunner(
            settings,
            store,
            ArxivSource(settings.arxiv),
            {"discord": output},
            clock=lambda: NOW,
            mark_retry=mark_retry,
        )
        return await runner.run()


async def stop_redis_after_first_message(
    redis: RedisServer, discord_fake: FakeDiscord, down_for: float | None, *, papers: int = 1
) -> None:
    """Stops Redis once Discord created the first message (its answer is still on the way),
    or the message that brings the papers posted to `papers`, then starts it again after
    `down_for` seconds (None: leaves it stopped)."""
    async with asyncio.timeout(10):
        while len(posted_ids(discord_fake)) < papers:
            await asyncio.sleep(0.005)
    await asyncio.to_thread(redis.stop)
    if down_for is not None:
        await asyncio.sleep(down_for)
        await asyncio.to_thread(redis.start)


def posted_ids(discord_fake: FakeDiscord) -> list[str]:
    return [e["url"].rsplit("/", 1)[-1] for m in discord_fake.posted(CHANNEL_ID) for e in m.embeds]


async def seen_ids(redis: RedisServer) -> set[str]:
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        return set(await client.zrange(f"blip:seen:{{{HERE.key}}}", 0, -1))
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "after", [1, PAPERS], ids=["after-the-first-message", "after-the-last-message"]
)
async def test_a_short_redis_outage_mid_digest_is_waited_out(
    redis: RedisServer,
    store: RedisStore,
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    caplog: pytest.LogCaptureFixture,
    after: int,
) -> None:
    """Redis stops once the message that brings the posted papers to `after` is created. The
    last message's papers are marked seen by the channel's final writes (one round trip with
    the lock's release): those are retried like any message's marking."""
    caplog.set_level(logging.INFO)
    settings = settings_for(discord_fake, arxiv)
    discord_fake.post_delay = 0.2
    outage = asyncio.create_task(
        stop_redis_after_first_message(redis, discord_fake, 0.5, papers=after)
    )
    report = await digest(settings, store, mark_retry=10)
    await outage
    assert report.ok and report.delivered == PAPERS
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("seen_retry channel=discord:") for m in messages)
    assert f"seen_recorded channel={HERE}: Redis is back" in messages
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await seen_ids(redis) == ALL
    assert await store._r.keys("blip:lock:*") == [], "let go with the final writes"

    discord_fake.post_delay = 0
    assert (await digest(settings, store, mark_retry=10)).delivered == 0
    assert sorted(posted_ids(discord_fake)) == sorted(ALL)  # each exactly once
    assert discord_fake.deduplicated == 0


async def test_a_long_outage_marks_nothing_unposted_and_the_next_run_recovers(
    redis: RedisServer,
    store: RedisStore,
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(discord_fake, arxiv)
    discord_fake.post_delay = 0.2
    outage = asyncio.create_task(stop_redis_after_first_message(redis, discord_fake, None))
    report = await digest(settings, store, mark_retry=0.3)
    await outage
    (result,) = report.channels
    assert result.error is not None and result.error.startswith("Redis unreachable: ")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    first_message = PAPERS_WITH_BUTTONS  # papers in a Discord message that has buttons
    assert lines[0].startswith(f"seen_not_recorded channel={HERE} keys={first_message} error=")
    assert lines[0].endswith("within 0.3s; the next run may post it again")
    assert lines[1].startswith(f'channel_failed channel={HERE} reason="Redis unreachable: ')
    assert len(lines) == 2
    first = set(posted_ids(discord_fake))
    assert len(first) == first_message  # the rest waited

    await asyncio.to_thread(redis.start)  # same store object: the bot is not restarted
    assert await seen_ids(redis) == set()  # nothing marked that wasn't recorded as posted
    async with asyncio.timeout(5):  # the lock of the failed run expires (lock_ttl 1 s)
        while await store._r.keys("blip:lock:*"):
            await asyncio.sleep(0.05)
    discord_fake.post_delay = 0
    report = await digest(settings, store, mark_retry=0.3)
    assert report.ok and report.delivered == PAPERS  # the lost answer's papers again...
    assert discord_fake.deduplicated == 1  # ...but Discord's nonce check kept one copy
    assert sorted(posted_ids(discord_fake)) == sorted(ALL)
    assert await seen_ids(redis) == ALL


async def test_commands_fail_politely_while_redis_is_away_and_work_when_it_returns(
    redis: RedisServer, store: RedisStore, arxiv: FakeArxiv, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.model_validate(
        {
            "arxiv": {
                "api_url": arxiv.url,
                "oai_url": "",
                "rss_url": arxiv.rss_url,
                "request_interval": 0,
            }
        }
    )
    commands = Commands(settings, store, ArxivSource(settings.arxiv))
    ctx = CommandContext(Channel("slack", "C1"), "U1")
    await asyncio.to_thread(redis.stop)
    reply = await commands.handle(ctx, "add reward model")
    assert not reply.ok
    assert reply.text == "Something went wrong on our side. Please try again later."
    assert arxiv.requests == []
    await asyncio.to_thread(redis.start)
    reply = await commands.handle(ctx, "add reward model")
    assert reply.ok and reply.text.startswith("Added")


async def test_the_scheduled_run_waits_for_redis_and_then_posts_once(
    redis: RedisServer, store: RedisStore, arxiv: FakeArxiv, caplog: pytest.LogCaptureFixture
) -> None:
    when = MONDAY_0700 - timedelta(days=1)
    arxiv.papers[:] = [make_paper(n, title=f"Reward model {n}", published=when) for n in (1, 2)]
    settings = Settings.model_validate(
        {
            "arxiv": {
                "api_url": arxiv.url,
                "oai_url": "",
                "rss_url": arxiv.rss_url,
                "request_interval": 0,
            },
            "digest": {"first_run_papers": 100},
            "schedule": {"time": "08:00", "timezone": "UTC"},
            "subscriptions": [{"platform": "slack", "channel": "C1", "keywords": ["reward model"]}],
        }
    )
    clock = Clock(MONDAY_0700 + timedelta(hours=1))  # Monday 08:00 is due
    retried: list[float] = []

    async def sleep(seconds: float) -> None:
        retried.append(seconds)
        await asyncio.to_thread(redis.start)  # Redis is back before the retry

    out = Recorder()
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock)
    service = Service(settings, store, runner, {}, clock=clock, sleep=sleep)
    await asyncio.to_thread(redis.stop)
    assert (await service.health())[0] == 503
    await service.run_startup()
    assert retried == [RETRY_FAILED_RUN]
    (line,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = line.getMessage()
    assert message.startswith('digest_failed slot=2026-11-23T08:00Z error="Error 111 connecting')
    assert message.endswith(": Redis is unreachable; trying again in 300s")
    assert line.exc_info is None
    assert (await service.health())[0] == 200
    assert out.posted[SLACK] == ["2611.00002", "2611.00001"]
    await service.run_startup()  # the slot is done: nothing twice
    assert out.posted[SLACK] == ["2611.00002", "2611.00001"]


def test_run_without_redis_at_start_up_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PAPERS_BOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    port = free_port()
    monkeypatch.setenv(
        "PAPERS_BOT_REDIS_URL", f"redis://:hunter2-redis-password@127.0.0.1:{port}/0"
    )
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"papers-bot: cannot reach Redis at redis://***@127.0.0.1:{port}/0: start "
        'redis-server, or set redis_url = "memory://" for Markdown and console outputs only '
        "(it remembers nothing)"
    )
