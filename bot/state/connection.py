"""The Redis twins' client: one Redis server or a Redis Cluster, found out on first use.

`Connection` is what the twins call for their client (`await connection()`): a plain client
on a waiting pool until the server says it is a cluster node, then redis-py's cluster
client, which finds the other nodes itself. The Lua scripts are registered on whichever is
in use (`script`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.commands.core import AsyncScript
from redis.driver_info import DriverInfo
from redis.exceptions import RedisClusterException, ResponseError

from bot import __version__, metrics
from bot.state import StoreUnavailable

POOL_SIZE = 100
"""Connections to a single Redis server. A command finds one free or waits for one (up to
POOL_WAIT seconds): each is held for one round trip, so a digest of `CHANNEL_CONCURRENCY`
channels and a burst of slash commands share them, where a connection for every channel in
flight cost CPU in opening them and file descriptors (BENCHMARKS.md, figure 2: "A waiting
pool of 100 Redis connections")."""
POOL_WAIT = 10.0
"""Seconds a command waits for a free connection of the pool."""

MAX_CONNECTIONS = 1024
"""Connections per node on a Redis Cluster, whose client has no waiting pool: it refuses the
command after the last one at once ("Too many connections"), so this is above what a digest
and a burst of slash commands use together."""

Client = aioredis.Redis | RedisCluster
"""A plain client for one Redis server, or the cluster client for a Redis Cluster."""


class _CountedPool(BlockingConnectionPool):
    """Counts round trips for `/metrics`: a command, or a pipeline, takes one connection.
    A Redis Cluster's are not counted (its client keeps a pool per node, of its own)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        metrics.redis_round_trip()
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


def client_options() -> dict[str, Any]:
    """What the plain and the cluster client share."""
    return {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        # Made once per client: otherwise every new connection reads redis-py's version from
        # the package metadata (BENCHMARKS.md, "What the numbers changed", item 10).
        "driver_info": DriverInfo().add_upstream_driver("papers-bot", __version__),
    }


class Connection:
    def __init__(self, client: Client, *, unchecked_url: str | None = None) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {}
        self._unchecked_url = unchecked_url
        """Set by `from_url` until the server said whether it is a cluster node."""
        self._checking = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> Connection:
        """The Redis at `url`: a single server, or any node of a Redis Cluster.

        Which of the two is asked on first use (`INFO cluster`). Until the question got an
        answer (Redis may be down at start-up) every call asks again."""
        pool = _CountedPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT, **client_options()
        )
        client = aioredis.Redis(connection_pool=pool)
        client.auto_close_connection_pool = True  # closed with the client, as from_url's
        return cls(client, unchecked_url=url)

    @property
    def current(self) -> Client:
        """The client in use now, asked or not whether the server is a cluster node."""
        return self._client

    async def __call__(self) -> Client:
        """The client to send commands with, once `from_url`'s server said what it is."""
        if self._unchecked_url is not None:
            async with self._checking:
                if self._unchecked_url is not None:
                    await self._check_for_cluster(self._unchecked_url)
                    self._unchecked_url = None
        return self._client

    def script(self, source: str) -> AsyncScript:
        """`source` registered on the client in use (its SHA sent, the source when missing)."""
        found = self._scripts.get(source)
        if found is None:
            found = self._scripts[source] = self._client.register_script(source)
        return found

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _check_for_cluster(self, url: str) -> None:
        try:
            info = await self._client.info("cluster")
        except ResponseError:  # a proxy or server that won't tell: a single server
            return
        if not info.get("cluster_enabled"):
            return
        try:
            cluster = RedisCluster.from_url(
                url, max_connections=MAX_CONNECTIONS, **client_options()
            )
        except RedisClusterException as err:  # e.g. a database other than 0 in the URL
            raise StoreUnavailable(f"a Redis Cluster node: {err}") from None
        # Nodes and slots are learnt here, before commands come in at once: redis-py 8.1's
        # cluster client fails some of many concurrent first commands otherwise
        # (`'NoneType' object has no attribute 'writelines'`; tests/test_cluster.py).
        await cluster.initialize()
        single = self._client
        self._client = cluster
        self._scripts.clear()
        await single.aclose()
