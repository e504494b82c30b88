"""The part of `RedisStore` that replicas coordinate through: locks, done markers, rate
counters and the pacing of requests. Lock names share a channel's hash tag where a lock must
ride that channel's state read (`Store.channel_state`)."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio.cluster import RedisCluster

from bot.state import Clock, scripts
from bot.state.codec import ms
from bot.state.connection import Connection
from bot.state.keys import Keys


class RedisLocks:
    _conn: Connection
    _keys: Keys
    _clock: Clock

    async def hit(self, name: str, window: float) -> int:
        """Counts one event in a fixed window; the count so far in this window."""
        key = self._keys.rate(name, int(self._clock().timestamp() // window))
        r = await self._conn()
        async with r.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int(window) + 1)
            count, _ = await pipe.execute()
        return int(count)

    async def next_start(self, name: str, interval: float, urgent: bool = False) -> float:
        """Seconds to wait before a request paced `interval` apart across every replica may
        start; 0 means it starts now (the slot is booked). While `urgent` requests wait, the
        others wait too."""
        keys = [self._keys.pace(name), self._keys.urgent(name)]
        args = [ms(interval), int(urgent)]
        wait = await self._conn.script(scripts.NEXT_START)(
            keys=keys, args=args, client=await self._conn()
        )
        return int(wait) / 1000

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        r = await self._conn()
        return bool(await r.set(self._keys.lock(name), owner, nx=True, px=ms(ttl)))

    async def acquire_many(self, names: Sequence[str], owner: str, ttl: float) -> list[bool]:
        """`acquire` for each name, in one round trip (one per node on a cluster). A script
        on a single server, where a claim costs redis-py a third of its CPU as a command of a
        pipeline (BENCHMARKS.md, figure 3); Slack commands claim their signatures with it
        before their acks."""
        if not names:
            return []
        r = await self._conn()
        if not isinstance(r, RedisCluster):
            keys = [self._keys.lock(name) for name in names]
            taken = await r.eval(scripts.ACQUIRE_MANY, len(keys), *keys, owner, ms(ttl))
            return [bool(t) for t in taken]
        async with r.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.set(self._keys.lock(name), owner, nx=True, px=ms(ttl))
            return [bool(taken) for taken in await pipe.execute()]

    async def renew(self, name: str, owner: str, ttl: float) -> bool:
        r = await self._conn()
        renewed = await self._conn.script(scripts.RENEW_LOCK)(
            keys=[self._keys.lock(name)], args=[owner, ms(ttl)], client=r
        )
        return bool(renewed)

    async def release(self, name: str, owner: str) -> None:
        r = await self._conn()
        await self._conn.script(scripts.RELEASE_LOCK)(
            keys=[self._keys.lock(name)], args=[owner], client=r
        )

    async def is_done(self, name: str) -> bool:
        r = await self._conn()
        return bool(await r.exists(self._keys.done(name)))

    async def mark_done(self, name: str, ttl: float) -> None:
        r = await self._conn()
        await r.set(self._keys.done(name), "1", px=ms(ttl))
