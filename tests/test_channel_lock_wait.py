"""A channel whose lock another process holds: the digest waits for it to be let go or to
expire (a process that died), and gives up only on a holder that keeps renewing it. Two
runners on one real Redis; the "other process" is a lock taken directly with another owner."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import redis.asyncio as aioredis

from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner
from bot.models import Digest
from bot.publishing import Delivered
from bot.settings import Settings
from bot.state.locks import REPLICA_ID, held
from bot.state.redis import RedisStore
from tests.factories import RefusedLocks
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, make_paper
from tests.test_digest import OTHER, SLACK, Recorder

DAY = date(2026, 11, 4)
NOW = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
IDS = [f"2611.{n:05d}" for n in range(1, 6)]
LOCK = "channel:{slack:C1}"
LOCK_KEY = f"test:lock:{LOCK}"


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model {n}") for n in range(1, 6)]
    with FakeArxiv(papers) as server:
        server.listing = FakeListing(day=DAY, items=[(p, "new") for p in papers])
        yield server


class WatchedStore(RefusedLocks):
    def __init__(self, client: aioredis.Redis) -> None:
        super().__init__(client, prefix="test")


@pytest.fixture
def store(redis_client: aioredis.Redis) -> WatchedStore:
    return WatchedStore(redis_client)


class LockNoting(Recorder):
    """Notes who held the channel's lock when each digest was posted."""

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__()
        self.redis = redis
        self.holders: list[object] = []

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        self.holders.append(await self.redis.get(f"test:lock:channel:{{{digest.channel.key}}}"))
        await super().publish(digest, delivered)


def runner(fake: FakeArxiv, store: RedisStore, out: Recorder, lock_ttl: float) -> DigestRunner:
    settings = Settings.model_validate(
        {
            "arxiv": fake.settings(),
            "digest": {"first_run_papers": 100},
            "service": {"lock_ttl": max(lock_ttl, 1)},
        }
    )
    made = DigestRunner(
        settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=lambda: NOW
    )
    made.lock_ttl = lock_ttl  # below the settings' minimum, to keep the tests short
    return made


async def test_the_lock_of_a_process_that_died_is_waited_out_and_the_channel_delivered(
    fake: FakeArxiv,
    store: WatchedStore,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A process that died mid-run: its lock stays until its ttl runs out, never renewed.
    assert await store.acquire(LOCK, "dead-process", 0.6)
    out = LockNoting(redis_client)
    async with asyncio.timeout(5):
        report = await runner(fake, store, out, lock_ttl=1).run(
            {SLACK: ["reward model"], OTHER: ["reward model"]}
        )
    assert report.ok, report.channels
    assert sorted(out.posted[SLACK]) == sorted(out.posted[OTHER]) == IDS
    holders = dict(zip([d.channel for d in out.digests], out.holders, strict=True))
    assert str(holders[SLACK]).startswith(f"{REPLICA_ID}:")  # taken after the dead one expired
    assert await redis_client.get(LOCK_KEY) is None  # and let go after
    assert "channel_busy channel=slack:C1" in caplog.text
    assert "channel_free channel=slack:C1" in caplog.text


async def test_a_holder_that_lets_go_is_followed_and_what_it_posted_is_not_posted_again(
    fake: FakeArxiv, store: WatchedStore
) -> None:
    # A live process posting to the channel, its lock good for 30 s more.
    assert await store.acquire(LOCK, "other-replica", 30)
    out = Recorder()
    run = asyncio.create_task(runner(fake, store, out, lock_ttl=30).run({SLACK: ["reward model"]}))
    async with asyncio.timeout(5):
        await store.refused.wait()
        await store.finish(SLACK, IDS[:2], ["reward model"], None)  # it posted two papers
        await store.release(LOCK, "other-replica")  # and finished well before the ttl
        report = await run
    assert report.ok
    assert sorted(out.posted[SLACK]) == IDS[2:]


async def test_a_quiet_days_channel_gets_no_empty_line_after_the_holder_posted_the_listing(
    fake: FakeArxiv, store: WatchedStore
) -> None:
    await store.set_channel_option(SLACK, "quiet_days", True)
    assert await store.acquire(LOCK, "other-replica", 30)
    out = Recorder()
    run = asyncio.create_task(runner(fake, store, out, lock_ttl=30).run({SLACK: ["reward model"]}))
    async with asyncio.timeout(5):
        await store.refused.wait()
        await store.finish(SLACK, IDS, ["reward model"], DAY)  # it posted the whole listing
        await store.release(LOCK, "other-replica")
        report = await run
    assert report.ok
    assert out.digests == []  # neither its papers again nor "no new papers"


async def test_a_holder_that_keeps_renewing_fails_the_channel_after_a_bounded_wait(
    fake: FakeArxiv,
    store: WatchedStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = Recorder()
    loop = asyncio.get_running_loop()
    async with held(store, LOCK, 0.3) as mine:  # renewed every 0.1 s by this block
        assert mine
        started = loop.time()
        async with asyncio.timeout(5):
            report = await runner(fake, store, out, lock_ttl=0.3).run(
                {SLACK: ["reward model"], OTHER: ["reward model"]}
            )
        waited = loop.time() - started
    outcome = {c.channel: c for c in report.channels}
    assert outcome[SLACK].error == "another replica is posting here"
    assert outcome[SLACK].delivered == 0 and SLACK not in out.posted
    assert outcome[OTHER].error is None and sorted(out.posted[OTHER]) == IDS
    assert 0.3 <= waited < 2  # a little over lock_ttl, then given up
    assert "papers come next run" in caplog.text
    assert await store.unseen(SLACK, IDS) == set(IDS)  # they come next run


async def test_a_stop_ends_the_wait_at_once(fake: FakeArxiv, store: WatchedStore) -> None:
    assert await store.acquire(LOCK, "other-replica", 30)
    out = Recorder()
    digest = runner(fake, store, out, lock_ttl=30)  # would wait over 30 s
    run = asyncio.create_task(digest.run({SLACK: ["reward model"]}))
    async with asyncio.timeout(1):
        await store.refused.wait()
        digest.stop()
        report = await run
    assert report.channels[0].error == "stopped before delivery"
    assert out.digests == []
    assert await store.unseen(SLACK, IDS) == set(IDS)


async def test_a_lock_lost_again_before_the_state_read_fails_the_channel_not_the_run(
    fake: FakeArxiv, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    class Contested(WatchedStore):
        """Another replica takes the channel's lock back each time this one gets it."""

        async def acquire(self, name: str, owner: str, ttl: float) -> bool:
            taken = await super().acquire(name, owner, ttl)
            if taken and name == LOCK:
                await self._r.set(self._lock(name), "other-replica", px=30_000)
            return taken

    store = Contested(redis_client)
    await redis_client.set(LOCK_KEY, "dead-process", px=300)  # expires, then is contested
    out = Recorder()
    async with asyncio.timeout(5):
        report = await runner(fake, store, out, lock_ttl=1).run(
            {SLACK: ["reward model"], OTHER: ["reward model"]}
        )
    failed = {c.channel: c.error for c in report.channels if c.error}
    assert failed == {SLACK: "another replica is posting here"}
    assert SLACK not in out.posted and sorted(out.posted[OTHER]) == IDS
    assert "channel_failed channel=slack:C1" in caplog.text
