"""Issue 22, finding 2, end to end: real `papers-bot` processes against a real redis-server
started with `--maxmemory` and each eviction policy. An evicting Redis is refused with one
line (exit 2) unless `redis_allow_eviction` accepts it; a Redis at its memory limit still
gets the day's papers delivered (caches give way) and `/healthz` says it is out of memory."""

import asyncio
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from tests.conftest import RedisServer, free_port
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, FakeDiscord
from tests.processes import bot_env, finished, health, spawn

PAPERS = 30
ABSTRACT = "A reward model learns what people prefer. " * 1000  # about 40 kB a paper


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    now = datetime.now(UTC)
    papers = [
        make_paper(
            n, title=f"Reward model {n}", summary=ABSTRACT, published=now - timedelta(hours=n)
        )
        for n in range(1, PAPERS + 1)
    ]
    with FakeArxiv(papers) as fake:
        yield fake


def limited(tmp_path: Path, policy: str, maxmemory: str = "16mb") -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path / "redis", args=["--maxmemory", maxmemory, "--maxmemory-policy", policy]
    )
    server.workdir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["noeviction", "volatile-lru", "allkeys-lru"])
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def evicting(tmp_path: Path, policy: str) -> Iterator[RedisServer]:
    yield from limited(tmp_path, policy)


@pytest.fixture
def full(tmp_path: Path) -> Iterator[RedisServer]:
    yield from limited(tmp_path, "noeviction", "8mb")


def subscribed(tmp_path: Path) -> None:
    slot = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%H:%M")  # no start-up run
    (tmp_path / "settings.toml").write_text(
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL_ID}"\n'
        f'keywords = ["reward model"]\n[schedule]\ntime = "{slot}"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
        "[digest]\nfirst_run_papers = 100\n"
    )


def posted(fake: FakeDiscord) -> list[str]:
    return [e["url"].rsplit("/", 1)[-1] for m in fake.posted(CHANNEL_ID) for e in m.embeds]


async def test_digest_refuses_an_evicting_redis_with_one_line(
    tmp_path: Path, evicting: RedisServer, policy: str, arxiv: FakeArxiv, discord_fake: FakeDiscord
) -> None:
    subscribed(tmp_path)
    env = bot_env(evicting.url, arxiv, discord_fake)
    code, err = await finished(await spawn(tmp_path, env, "digest"))
    if policy == "noeviction":
        assert code == 0, err[-2000:]
        assert len(posted(discord_fake)) == PAPERS
        return
    assert code == 2
    assert err.strip().splitlines() == [
        f"papers-bot: Redis evicts keys (maxmemory-policy {policy}): it would forget what "
        "channels received (papers posted again) or follow (no papers); set "
        "maxmemory-policy noeviction, or redis_allow_eviction = true to accept that"
    ]
    assert posted(discord_fake) == []

    code, err = await finished(
        await spawn(tmp_path, {**env, "PAPERS_BOT_REDIS_ALLOW_EVICTION": "true"}, "digest")
    )
    assert code == 0, err[-2000:]
    assert len(posted(discord_fake)) == PAPERS


async def test_run_and_check_refuse_an_evicting_redis(
    tmp_path: Path, arxiv: FakeArxiv, discord_fake: FakeDiscord
) -> None:
    for server in limited(tmp_path, "volatile-lru"):
        subscribed(tmp_path)
        env = bot_env(server.url, arxiv, discord_fake, SERVICE__HEALTH_PORT=str(free_port()))
        code, err = await finished(await spawn(tmp_path, env, "run"))
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and "maxmemory-policy volatile-lru" in err
        check = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot", "check"),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await check.communicate()
        assert check.returncode == 1
        assert "redis: FAILED: Redis evicts keys (maxmemory-policy volatile-lru)" in out.decode()


async def fill(url: str, *, leave: int = 0) -> None:
    """Other data (another member's churn, another app) fills Redis up to `leave` bytes
    below its maxmemory, or until it refuses writes when `leave` is 0."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        limit = int((await client.config_get("maxmemory"))["maxmemory"])
        for n in range(100_000):
            used = int((await client.info("memory"))["used_memory"])
            if leave and used >= limit - leave:
                return
            try:
                await client.set(f"other:{n}", "x" * 10_000)
            except OutOfMemoryError:
                return
    finally:
        await client.aclose()


async def test_a_redis_near_its_limit_still_gets_the_papers_delivered_once(
    tmp_path: Path, full: RedisServer, arxiv: FakeArxiv, discord_fake: FakeDiscord
) -> None:
    subscribed(tmp_path)
    await fill(full.url, leave=600_000)  # half what the recent list takes
    env = bot_env(full.url, arxiv, discord_fake, KEY_PREFIX=f"oom-{uuid.uuid4().hex[:8]}")
    code, err = await finished(await spawn(tmp_path, env, "digest"))
    assert code == 0, err[-3000:]
    assert "cache_skipped what=recent" in err
    assert sorted(posted(discord_fake)) == sorted(f"2611.{n:05d}" for n in range(1, PAPERS + 1))
    code, err = await finished(await spawn(tmp_path, env, "digest"))  # seen was recorded
    assert code == 0, err[-3000:]
    assert len(posted(discord_fake)) == PAPERS


async def test_healthz_says_redis_is_out_of_memory(
    tmp_path: Path, full: RedisServer, arxiv: FakeArxiv, discord_fake: FakeDiscord
) -> None:
    await fill(full.url)
    port = free_port()
    env = bot_env(full.url, arxiv, discord_fake, SERVICE__HEALTH_PORT=str(port))
    del env["PAPERS_BOT_DISCORD__TOKEN"]  # the schedule and /healthz only
    service = await spawn(tmp_path, env, "run")
    try:
        async with asyncio.timeout(20):
            while (answer := await health(port)) is None:
                assert service.returncode is None
                await asyncio.sleep(0.1)
    finally:
        service.send_signal(signal.SIGTERM)
        code, err = await finished(service)
    assert code == 0, err[-2000:]
    status, body = answer
    assert (status, body["status"], body["redis"]) == (503, "degraded", "out of memory")


async def test_a_redis_that_hides_its_policy_is_said_so_and_used(
    tmp_path: Path, arxiv: FakeArxiv, discord_fake: FakeDiscord
) -> None:
    server = RedisServer(tmp_path / "redis", args=["--rename-command", "CONFIG", ""])
    server.workdir.mkdir()
    server.start()
    try:
        subscribed(tmp_path)
        env = bot_env(server.url, arxiv, discord_fake)
        code, err = await finished(await spawn(tmp_path, env, "digest"))
        assert code == 0, err[-2000:]
        assert "redis_policy_unknown" in err
        assert len(posted(discord_fake)) == PAPERS
    finally:
        server.stop()
