"""The service: schedule under a controlled clock, replicas, /healthz, signals."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner
from bot.models import Digest
from bot.publishing import Delivered
from bot.service import Service
from bot.settings import ServiceSettings, Settings, SettingsError
from bot.state.memory import MemoryStore
from bot.state.redis import RedisStore
from tests.conftest import RedisServer, free_port
from tests.factories import RefusedLocks
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.test_digest import SLACK, Recorder

MONDAY_0700 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    when = MONDAY_0700 - timedelta(days=1)
    papers = [make_paper(n, title=f"Reward model {n}", published=when) for n in range(1, 6)]
    with FakeArxiv(papers) as server:
        yield server


def settings_for(fake: FakeArxiv) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": fake.settings(max_retries=3),
            "digest": {"first_run_papers": 100},
            "schedule": {"time": "08:00", "timezone": "UTC"},
            "subscriptions": [{"platform": "slack", "channel": "C1", "keywords": ["reward model"]}],
        }
    )


@pytest.fixture
async def stores(redis_server: RedisServer) -> AsyncIterator[list[RedisStore]]:
    """Two independent connections to one Redis, as two replicas have."""
    clients = [aioredis.Redis.from_url(redis_server.url, decode_responses=True) for _ in "ab"]
    await clients[0].flushdb()
    yield [RedisStore(c, prefix="svc") for c in clients]
    for c in clients:
        await c.aclose()


def replica(fake: FakeArxiv, store: RedisStore, clock: Clock, out: Recorder) -> Service:
    settings = settings_for(fake)
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock)
    return Service(settings, store, runner, {}, clock=clock, sleep=clock.sleep)


async def until(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def stopped(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for its end. A cancellation that lands while redis-py opens a
    connection can be lost there (seen on Python 3.11, redis-py 8.1); a scheduler on the
    test's clock would then run through fake days for ever, so cancel again until it ends."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    with contextlib.suppress(asyncio.CancelledError):
        await task


class TimedRecorder(Recorder):
    """Notes the clock at each digest it is given."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[datetime] = []

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        self.times.append(self.clock.now)
        await super().publish(digest, delivered)


async def test_the_digest_fires_at_the_configured_time(
    fake: FakeArxiv, stores: list[RedisStore]
) -> None:
    clock = Clock(MONDAY_0700)
    out = TimedRecorder(clock)
    await stores[0].mark_done("digest:2026-11-20T08:00Z", 3600)  # Friday's run happened
    service = replica(fake, stores[0], clock, out)
    task = asyncio.create_task(service.scheduler())
    await until(lambda: service.runs)
    await stopped(task)
    assert out.times[0] == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert len(out.posted[SLACK]) == 5


async def test_a_missed_run_happens_once_at_start_up(
    fake: FakeArxiv, stores: list[RedisStore]
) -> None:
    clock = Clock(MONDAY_0700)  # down since before Friday 08:00
    out = TimedRecorder(clock)
    first = replica(fake, stores[0], clock, out)
    await first.run_startup()
    assert out.times == [MONDAY_0700]
    restarted = replica(fake, stores[0], clock, out)
    await restarted.run_startup()
    assert restarted.runs == [] and out.times == [MONDAY_0700]


async def test_a_replica_started_shortly_before_a_slot_leaves_the_missed_one_to_it(
    fake: FakeArxiv, stores: list[RedisStore], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(MONDAY_0700 + timedelta(minutes=30))  # down since before Friday 08:00
    out = TimedRecorder(clock)
    service = replica(fake, stores[0], clock, out)
    await service.run_startup()
    assert service.runs == [] and out.times == []  # Friday's is not made up now
    assert not await stores[0].is_done("digest:2026-11-20T08:00Z")
    assert "digest_catch_up_skipped slot=2026-11-20T08:00Z next=2026-11-23T08:00Z" in caplog.text
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    clock.now = monday
    await service.run_slot(monday)  # half an hour later: one run with everything
    assert len(out.posted[SLACK]) == 5


async def test_a_channel_lock_left_by_a_replica_that_died_is_waited_for_in_the_run(
    fake: FakeArxiv, stores: list[RedisStore]
) -> None:
    clock = Clock(MONDAY_0700 + timedelta(hours=2))  # 08:00's run is due at start-up
    await stores[0].mark_done("digest:2026-11-20T08:00Z", 3600)
    # A replica died making the run: its run lock has expired, its channel lock not yet.
    assert await stores[1].acquire("channel:{slack:C1}", "dead-replica", 0.5)
    settings = settings_for(fake).model_copy(update={"service": ServiceSettings(lock_ttl=1)})
    out = Recorder()
    runner = DigestRunner(
        settings, stores[0], ArxivSource(settings.arxiv), {"slack": out}, clock=clock
    )
    service = Service(settings, stores[0], runner, {}, clock=clock, sleep=clock.sleep)
    await asyncio.wait_for(service.run_startup(), 5)
    assert [r.ok for r in service.runs] == [True]
    assert len(out.posted[SLACK]) == len(set(out.posted[SLACK])) == 5
    assert await stores[0].is_done("digest:2026-11-23T08:00Z")


class RefusalNoting(RefusedLocks):
    def __init__(self, client: aioredis.Redis) -> None:
        super().__init__(client, prefix="svc")


async def test_a_stop_ends_the_wait_for_a_channel_lock_and_leaves_the_slot_to_the_restart(
    fake: FakeArxiv, redis_client: aioredis.Redis
) -> None:
    store = RefusalNoting(redis_client)
    clock = Clock(MONDAY_0700 + timedelta(hours=2))
    await store.mark_done("digest:2026-11-20T08:00Z", 3600)
    assert await store.acquire("channel:{slack:C1}", "other-replica", 30)
    settings = settings_for(fake).model_copy(
        update={"service": ServiceSettings(health_host="127.0.0.1", health_port=free_port())}
    )
    out = Recorder()
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock)
    service = Service(settings, store, runner, {}, clock=clock, sleep=clock.sleep)
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(store.refused.wait(), 5)  # waiting for the channel (up to 61 s)
    stop.set()
    await asyncio.wait_for(running, 1)
    assert out.posted == {}
    assert not await store.is_done("digest:2026-11-23T08:00Z")  # the next start-up makes it


async def test_two_replicas_post_each_run_once(fake: FakeArxiv, stores: list[RedisStore]) -> None:
    clock, out = Clock(MONDAY_0700), Recorder()
    a, b = (replica(fake, store, clock, out) for store in stores)
    slot = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    reports = await asyncio.gather(a.run_slot(slot), b.run_slot(slot), a.run_slot(slot))
    assert sum(r is not None for r in reports) == 1
    assert len(out.posted[SLACK]) == len(set(out.posted[SLACK])) == 5


async def test_healthz_follows_redis(tmp_path: Path, fake: FakeArxiv) -> None:
    server = RedisServer(tmp_path)
    server.start()
    client = aioredis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1)
    store = RedisStore(client, prefix="h")
    clock = Clock(MONDAY_0700)
    service = replica(fake, store, clock, Recorder())
    port = free_port()
    health = await service.start_health("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
                assert (await response.json())["redis"] == "ok"
            server.stop()
            async with http.get(url) as response:
                assert response.status == 503
                assert (await response.json())["redis"].startswith("unreachable")
            server.start()
            async with http.get(url) as response:
                assert response.status == 200
    finally:
        await health.cleanup()
        await client.aclose()
        server.stop()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_sigterm_stops_the_service_promptly_with_exit_0(
    tmp_path: Path, redis_server: RedisServer, fake: FakeArxiv
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAPERS_BOT_")},
        "PAPERS_BOT_REDIS_URL": redis_server.url,
        "PAPERS_BOT_KEY_PREFIX": "sigterm",
        "PAPERS_BOT_ARXIV__API_URL": fake.url,
        "PAPERS_BOT_ARXIV__RSS_URL": fake.rss_url,
        "PAPERS_BOT_SERVICE__HEALTH_HOST": "127.0.0.1",
        "PAPERS_BOT_SERVICE__HEALTH_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _healthy(port):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=10)
        assert process.returncode == 0, log
        assert time.monotonic() - started < 5
        assert "service_stopped" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_an_adapter_that_fails_is_restarted_with_growing_pauses_but_not_for_a_bad_token(
    fake: FakeArxiv, stores: list[RedisStore]
) -> None:
    clock = Clock(MONDAY_0700)
    service = replica(fake, stores[0], clock, Recorder())
    starts: list[str] = []
    serving = asyncio.Event()

    async def flaky() -> None:
        starts.append("flaky")
        if len(starts) <= 3:
            raise ConnectionResetError("the platform went away")
        serving.set()
        await asyncio.Event().wait()

    async def refused() -> None:
        starts.append("refused")
        raise SettingsError("[discord] token was refused by Discord (401)")

    task = asyncio.create_task(service.supervise("slack", flaky))
    await asyncio.wait_for(serving.wait(), 5)
    assert clock.slept == [5.0, 10.0, 20.0]
    with pytest.raises(SettingsError):
        await service.supervise("discord", refused)
    assert starts.count("refused") == 1
    await stopped(task)


async def test_a_slot_held_by_a_replica_that_died_is_run_once_its_lock_expires(
    fake: FakeArxiv,
) -> None:
    clock = Clock(MONDAY_0700)
    store = MemoryStore(clock=clock)
    await store.mark_done("digest:2026-11-20T08:00Z", 3600 * 24)  # Friday's run happened
    # A replica took Monday's slot and was killed: its lock outlives it by lock_ttl.
    assert await store.acquire("digest:2026-11-23T08:00Z", "dead-replica", 3600 + 90)
    out = TimedRecorder(clock)
    settings = settings_for(fake)
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock)
    service = Service(settings, store, runner, {}, clock=clock, sleep=clock.sleep)
    task = asyncio.create_task(service.scheduler())
    await until(lambda: service.runs)
    await stopped(task)
    assert out.times == [datetime(2026, 11, 23, 8, 1, 30, tzinfo=UTC)]  # when the lock expired
    assert len(out.posted[SLACK]) == 5


class HeldPublisher:
    """Posts a digest two papers a message; each message waits until `release` is set."""

    platform = "slack"
    needs_recent = False

    def __init__(self) -> None:
        self.posting = asyncio.Event()
        self.release = asyncio.Event()
        self.posted: list[str] = []

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        ids = [item.paper.id for item in digest.items]
        for start in range(0, len(ids), 2):
            self.posting.set()
            await self.release.wait()
            self.posted += ids[start : start + 2]
            await delivered(ids[start : start + 2])


async def test_a_stop_mid_digest_finishes_the_message_in_flight_and_the_restart_the_rest(
    fake: FakeArxiv, stores: list[RedisStore]
) -> None:
    clock = Clock(MONDAY_0700 + timedelta(hours=2))  # 08:00's run is due at start-up
    await stores[0].mark_done("digest:2026-11-20T08:00Z", 3600)
    settings = settings_for(fake).model_copy(
        update={"service": ServiceSettings(health_host="127.0.0.1", health_port=free_port())}
    )

    def service(out: HeldPublisher) -> Service:
        source = ArxivSource(settings.arxiv)
        runner = DigestRunner(settings, stores[0], source, {"slack": out}, clock=clock)
        return Service(settings, stores[0], runner, {}, clock=clock, sleep=clock.sleep)

    first, stop = HeldPublisher(), asyncio.Event()
    running = asyncio.create_task(service(first).run(stop))
    await asyncio.wait_for(first.posting.wait(), 5)
    stop.set()
    await asyncio.sleep(0.05)
    first.release.set()  # the message in flight goes out
    await asyncio.wait_for(running, 5)
    assert first.posted == ["2611.00005", "2611.00004"]
    assert await stores[0].unseen(SLACK, ["2611.00005", "2611.00004", "2611.00003"]) == {
        "2611.00003"
    }

    second, stop = HeldPublisher(), asyncio.Event()
    second.release.set()
    restarted = service(second)
    running = asyncio.create_task(restarted.run(stop))
    await until(lambda: restarted.runs)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert second.posted == ["2611.00003", "2611.00002", "2611.00001"]
