"""Calls that arrive while one is on its way to Redis, sent together in the next one.

`Grouped` is the mechanism: one send in flight at a time, and the calls that arrive while it
is out go together in the next. So a group is what arrived during one round trip, and a call
waits at most for the one send before its own. Slack's replay claims use it (one claim
script for a burst of commands), and so does `Batcher`.

`Batcher` sends the Redis commands of concurrent channels to a single server as one
pipeline. A digest delivers to hundreds of channels at once, and each channel's state read
and writes are a pipeline of their own. What redis-py spends on a call besides packing and
parsing its commands (taking a pooled connection, its timeout and retry wrappers, a socket
write and a wake-up to read the answer) would then be paid per channel.

Each caller gets its own answer, or its own error, as if it had sent alone. When a send as a
whole fails (a connection error after redis-py's retries) every caller in it gets that error.
A Redis Cluster is not batched: a pipeline spanning nodes would fail every caller when one
node is down, so each call goes alone there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from redis.asyncio.cluster import RedisCluster

T = TypeVar("T")
R = TypeVar("R")


class Grouped(Generic[T, R]):
    """Calls `send` with the items of the calls that arrived while the last send was out.
    `send` answers each item in order, with its result or an exception for that item alone."""

    def __init__(self, send: Callable[[list[T]], Awaitable[list[R | Exception]]]) -> None:
        self._send = send
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all())
        return await future

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    answers = await self._send([item for item, _ in batch])
                except asyncio.CancelledError:
                    for _, future in [*batch, *self._waiting]:
                        future.cancel()
                    raise
                except Exception as err:
                    answers = [err] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():  # its caller was cancelled
                        continue
                    if isinstance(answer, Exception):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._sender = None  # in the same step as the last look at _waiting


Queue = Callable[[Any], None]
"""Queues one caller's commands on a pipeline (a redis-py `Pipeline` or `ClusterPipeline`)."""


class Batcher:
    def __init__(self, client: Callable[[], Awaitable[Any]]) -> None:
        self._client = client
        self._grouped: Grouped[Queue, list[Any]] = Grouped(self._execute)
        self.pipelines = 0
        """Pipelines sent so far (for tests and the benchmark)."""

    async def send(self, queue: Queue) -> list[Any]:
        """The answers to the commands `queue` adds, in their order."""
        return await self._grouped(queue)

    async def _execute(self, batch: list[Queue]) -> list[list[Any] | Exception]:
        client = await self._client()
        if isinstance(client, RedisCluster):
            return list(await asyncio.gather(*(self._alone(client, queue) for queue in batch)))
        async with client.pipeline(transaction=False) as pipe:
            queued = [_queue(pipe, queue) for queue in batch]
            self.pipelines += 1
            answers = await pipe.execute(raise_on_error=False)
        results: list[list[Any] | Exception] = []
        start = 0
        for size in queued:
            if isinstance(size, Exception):
                results.append(size)
                continue
            mine, start = answers[start : start + size], start + size
            error = next((a for a in mine if isinstance(a, Exception)), None)
            results.append(mine if error is None else error)
        return results

    async def _alone(self, client: Any, queue: Queue) -> list[Any] | Exception:
        try:
            async with client.pipeline(transaction=False) as pipe:
                queue(pipe)
                self.pipelines += 1
                return list(await pipe.execute())
        except Exception as err:
            return err


def _queue(pipe: Any, queue: Queue) -> int | Exception:
    """Queues one caller's commands: how many it added, or why they could not be queued (then
    it added none)."""
    before = len(pipe)
    try:
        queue(pipe)
    except Exception as err:
        del pipe.command_stack[before:]
        return err
    return len(pipe) - before
