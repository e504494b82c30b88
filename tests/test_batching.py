"""Concurrent channels' state reads and writes share pipelines (bot/state/batching.py), on a real
redis-server, and each caller still gets its own answers and errors."""

import asyncio
from datetime import date
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from bot.models import Channel
from bot.state import LockClaim
from bot.state.batching import Batcher
from bot.state.redis import RedisStore
from tests.conftest import free_port

DAY = date(2026, 3, 2)


def channels(n: int) -> list[Channel]:
    return [Channel("slack", f"C{i}") for i in range(n)]


async def test_calls_made_in_one_turn_of_the_loop_share_one_pipeline(
    redis_store: RedisStore,
) -> None:
    chans = channels(50)
    await asyncio.gather(
        *(redis_store.mark_message_seen(c, [f"2501.{i:05d}"]) for i, c in enumerate(chans))
    )
    assert redis_store.batch.pipelines == 1
    for i, c in enumerate(chans):  # each went to its own channel
        assert await redis_store.unseen(c, ["2501.00000", f"2501.{i:05d}"]) == (
            {"2501.00000"} if i else set()
        )


async def test_each_caller_gets_its_own_answers(redis_store: RedisStore) -> None:
    a, b = channels(2)
    await redis_store.mark_message_seen(a, ["x"])
    await redis_store.set_channel_option(b, "revisions", True)
    locks = [LockClaim(f"channel:{{{c.key}}}", "me", 60) for c in (a, b)]
    state_a, state_b = await asyncio.gather(
        redis_store.channel_state(a, ["x", "y"], attempt=DAY, lock=locks[0]),
        redis_store.channel_state(b, ["x", "y"], attempt=DAY, lock=locks[1]),
    )
    assert redis_store.batch.pipelines == 2  # mark_message_seen's, then both reads at once
    assert (state_a.unseen, state_a.options, state_a.locked) == ({"y"}, {}, True)
    assert (state_b.unseen, state_b.locked) == ({"x", "y"}, True)
    assert state_b.options == {"revisions": True}


async def test_a_command_that_fails_fails_only_its_caller(
    redis_store: RedisStore, redis_client: aioredis.Redis
) -> None:
    broken, fine = channels(2)
    await redis_client.set(f"test:seen:{{{broken.key}}}", "not a sorted set")
    results = await asyncio.gather(
        redis_store.mark_message_seen(broken, ["x"]),
        redis_store.mark_message_seen(fine, ["x"]),
        return_exceptions=True,
    )
    assert isinstance(results[0], ResponseError) and "WRONGTYPE" in str(results[0])
    assert results[1] is None
    assert redis_store.batch.pipelines == 1
    assert await redis_store.unseen(fine, ["x"]) == set()


async def test_a_caller_whose_commands_cannot_be_queued_fails_alone(
    redis_client: aioredis.Redis,
) -> None:
    async def client() -> Any:
        return redis_client

    def bad(pipe: Any) -> None:
        pipe.set("k1", "1")
        raise ValueError("bad arguments")

    batcher = Batcher(client)
    results = await asyncio.gather(
        batcher.send(bad),
        batcher.send(lambda pipe: pipe.set("k2", "2")),
        return_exceptions=True,
    )
    assert isinstance(results[0], ValueError)
    assert results[1] == [True]
    assert await redis_client.get("k1") is None  # its half-queued command was taken back


async def test_callers_queue_while_a_pipeline_is_in_flight(
    redis_store: RedisStore, redis_client: aioredis.Redis
) -> None:
    admin = aioredis.Redis.from_url(
        f"redis://{redis_client.connection_pool.connection_kwargs['host']}:"
        f"{redis_client.connection_pool.connection_kwargs['port']}"
    )
    try:
        await admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        first = asyncio.ensure_future(
            redis_store.mark_message_seen(Channel("slack", "first"), ["x"])
        )
        await asyncio.sleep(0.05)  # sent, and held by the pause
        later = []
        for c in channels(10):  # each in a turn of its own
            later.append(asyncio.ensure_future(redis_store.mark_message_seen(c, ["x"])))
            await asyncio.sleep(0.01)
        await asyncio.gather(first, *later)
    finally:
        await admin.aclose()
    assert redis_store.batch.pipelines == 2
    for c in channels(10):
        assert await redis_store.unseen(c, ["x"]) == set()


async def test_a_dead_server_fails_every_caller_in_the_pipeline() -> None:
    client = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    store = RedisStore(client, prefix="test")
    try:
        results = await asyncio.gather(
            *(store.mark_message_seen(c, ["x"]) for c in channels(3)), return_exceptions=True
        )
    finally:
        await client.aclose()
    assert all(isinstance(r, RedisConnectionError) for r in results), results


@pytest.mark.parametrize("cancelled", [0, 1])
async def test_a_cancelled_caller_leaves_the_others_their_answers(
    redis_store: RedisStore, cancelled: int
) -> None:
    calls = [asyncio.ensure_future(redis_store.mark_message_seen(c, ["x"])) for c in channels(2)]
    await asyncio.sleep(0)  # queued
    calls[cancelled].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[cancelled], asyncio.CancelledError)
    assert results[1 - cancelled] is None
    assert await redis_store.unseen(channels(2)[1 - cancelled], ["x"]) == set()
