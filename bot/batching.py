"""Redis commands of concurrent channels sent to a single server as one pipeline.

A digest delivers to hundreds of channels at once, and each channel's state read and writes
are a pipeline of their own. What redis-py spends on a call besides packing and parsing its
commands (taking a pooled connection, its timeout and retry wrappers, a socket write and a
wake-up to read the answer) is then paid per channel. `Batcher.send` instead queues a caller's
commands and sends them with the others': one pipeline is in flight at a time, and the
callers that arrive while it is out go together in the next. So a batch is what arrived
during one round trip, and a call waits at most for the one pipeline before its own.

Each caller gets its own commands' answers, or the first error among them, as if it had sent
them alone. When the pipeline as a whole fails (a connection error after redis-py's retries)
every caller in it gets that error. A Redis Cluster is not batched: a pipeline spanning nodes
would fail every caller when one node is down, so each call goes alone there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.cluster import RedisCluster

Queue = Callable[[Any], None]
"""Queues one caller's commands on a pipeline (a redis-py `Pipeline` or `ClusterPipeline`)."""


class Batcher:
    def __init__(self, client: Callable[[], Awaitable[Any]]) -> None:
        self._client = client
        self._pending: list[tuple[Queue, asyncio.Future[list[Any]]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.pipelines = 0
        """Pipelines sent so far (for tests and the benchmark)."""

    async def send(self, queue: Queue) -> list[Any]:
        """The answers to the commands `queue` adds, in their order."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append((queue, answer))
        if len(self._pending) == 1 and not self._sending:
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._execute(batch))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._pending:
            self._flush()

    async def _execute(self, batch: list[tuple[Queue, asyncio.Future[list[Any]]]]) -> None:
        try:
            client = await self._client()
            if isinstance(client, RedisCluster):
                await asyncio.gather(*(self._alone(client, *call) for call in batch))
                return
            async with client.pipeline(transaction=False) as pipe:
                sizes = [_queue(pipe, queue, answer) for queue, answer in batch]
                self.pipelines += 1
                answers = await pipe.execute(raise_on_error=False)
        except BaseException as err:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        start = 0
        for (_, answer), size in zip(batch, sizes, strict=True):
            mine, start = answers[start : start + size], start + size
            if answer.done():  # the caller was cancelled, or its commands failed to queue
                continue
            error = next((a for a in mine if isinstance(a, Exception)), None)
            if error is None:
                answer.set_result(mine)
            else:
                answer.set_exception(error)

    async def _alone(self, client: Any, queue: Queue, answer: asyncio.Future[list[Any]]) -> None:
        try:
            async with client.pipeline(transaction=False) as pipe:
                queue(pipe)
                self.pipelines += 1
                result = await pipe.execute()
        except Exception as err:
            if not answer.done():
                answer.set_exception(err)
        else:
            if not answer.done():
                answer.set_result(result)


def _queue(pipe: Any, queue: Queue, answer: asyncio.Future[list[Any]]) -> int:
    """Queues one caller's commands; how many it added. A caller whose commands could not be
    queued gets that error and adds none."""
    before = len(pipe)
    try:
        queue(pipe)
    except Exception as err:
        del pipe.command_stack[before:]
        answer.set_exception(err)
    return len(pipe) - before
