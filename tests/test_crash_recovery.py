"""`papers-bot digest` killed with SIGKILL in the middle of posting, then run again at once:
every paper reaches every channel exactly once (real processes, real Redis, fake Discord).
The channel locks of the killed process outlive it for `lock_ttl`; the rerun waits for them
to expire instead of leaving those channels until the next day."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.conftest import RedisServer
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, TOKEN, FakeDiscord

PAPERS = 40  # four messages of ten embeds


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    now = datetime.now(UTC)
    papers = [
        make_paper(n, title=f"Reward model {n}", published=now - timedelta(minutes=n))
        for n in range(1, PAPERS + 1)
    ]
    with FakeArxiv(papers) as fake:
        yield fake


def delivered_ids(fake: FakeDiscord) -> list[str]:
    return [
        embed["url"].rsplit("/", 1)[-1]
        for message in fake.posted(CHANNEL_ID)
        for embed in message.embeds
    ]


async def digest_process(tmp_path: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "digest",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("kill_after", [1, 2, 3])
async def test_sigkill_mid_digest_then_restart_delivers_each_paper_once(
    tmp_path: Path,
    redis_server: RedisServer,
    arxiv: FakeArxiv,
    discord_fake: FakeDiscord,
    kill_after: int,
) -> None:
    (tmp_path / "settings.toml").write_text(
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL_ID}"\n'
        'keywords = ["reward model"]\n'
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAPERS_BOT_")},
        "PAPERS_BOT_REDIS_URL": redis_server.url,
        "PAPERS_BOT_KEY_PREFIX": f"crash{kill_after}",
        "PAPERS_BOT_ARXIV__API_URL": arxiv.url,
        "PAPERS_BOT_ARXIV__RSS_URL": arxiv.rss_url,
        "PAPERS_BOT_ARXIV__REQUEST_INTERVAL": "0",
        "PAPERS_BOT_DIGEST__FIRST_RUN_PAPERS": "100",
        "PAPERS_BOT_SERVICE__LOCK_TTL": "1",
        "PAPERS_BOT_DISCORD__TOKEN": TOKEN,
        "PAPERS_BOT_DISCORD__API_URL": discord_fake.api_url,
        "PAPERS_BOT_DISCORD__GATEWAY_URL": discord_fake.gateway_url,
    }
    discord_fake.post_delay = 0.3
    first = await digest_process(tmp_path, env)
    async with asyncio.timeout(20):
        while len(discord_fake.posted(CHANNEL_ID)) < kill_after:
            assert first.returncode is None
            await asyncio.sleep(0.01)
    first.kill()  # the last message was created; its answer never arrived
    await first.wait()
    before = delivered_ids(discord_fake)
    assert 0 < len(before) < PAPERS

    discord_fake.post_delay = 0
    second = await digest_process(tmp_path, env)  # at once: the dead one's lock is still there
    _, err = await second.communicate()
    assert second.returncode == 0, err.decode()

    ids = delivered_ids(discord_fake)
    assert sorted(ids) == sorted({f"2611.{n:05d}" for n in range(1, PAPERS + 1)})
    assert len(ids) == PAPERS
    assert discord_fake.deduplicated == 1


CHANNELS = tuple(CHANNEL_ID + 100 + n for n in range(10))


@pytest.fixture
async def ten_channels() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(channel_ids=CHANNELS) as fake:
        yield fake


async def test_sigkill_while_ten_channels_post_then_an_immediate_rerun_waits_for_their_locks(
    tmp_path: Path, redis_server: RedisServer, arxiv: FakeArxiv, ten_channels: FakeDiscord
) -> None:
    (tmp_path / "settings.toml").write_text(
        "".join(
            f'[[subscriptions]]\nplatform = "discord"\nchannel = "{c}"\n'
            'keywords = ["reward model"]\n'
            for c in CHANNELS
        )
    )
    prefix = f"crash-ten-{tmp_path.name}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAPERS_BOT_")},
        "PAPERS_BOT_REDIS_URL": redis_server.url,
        "PAPERS_BOT_KEY_PREFIX": prefix,
        "PAPERS_BOT_ARXIV__API_URL": arxiv.url,
        "PAPERS_BOT_ARXIV__RSS_URL": arxiv.rss_url,
        "PAPERS_BOT_ARXIV__REQUEST_INTERVAL": "0",
        "PAPERS_BOT_DIGEST__FIRST_RUN_PAPERS": "100",
        "PAPERS_BOT_SERVICE__LOCK_TTL": "3",
        "PAPERS_BOT_DISCORD__TOKEN": TOKEN,
        "PAPERS_BOT_DISCORD__API_URL": ten_channels.api_url,
        "PAPERS_BOT_DISCORD__GATEWAY_URL": ten_channels.gateway_url,
    }
    ten_channels.post_delay = 0.3
    first = await digest_process(tmp_path, env)
    async with asyncio.timeout(20):  # every channel has posted its first message
        while len({m.channel_id for m in ten_channels.messages}) < len(CHANNELS):
            assert first.returncode is None
            await asyncio.sleep(0.01)
    first.kill()
    await first.wait()
    redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        held = await redis.keys(f"{prefix}:lock:channel:*")
    finally:
        await redis.aclose()
    assert len(held) == len(CHANNELS)  # the dead process's locks, up to 3 s more each

    ten_channels.post_delay = 0
    second = await digest_process(tmp_path, env)
    _, err = await second.communicate()
    log = err.decode()
    assert second.returncode == 0, log
    assert "channel_busy" in log and "channel_free" in log  # it waited, then posted

    expected = sorted(f"2611.{n:05d}" for n in range(1, PAPERS + 1))
    for channel in CHANNELS:
        ids = [
            embed["url"].rsplit("/", 1)[-1]
            for message in ten_channels.posted(channel)
            for embed in message.embeds
        ]
        assert sorted(ids) == expected, channel  # each (channel, paper) exactly once
