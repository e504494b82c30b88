"""A Redis lock held for the length of a block, renewed while the block runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.state import Store

log = logging.getLogger(__name__)

REPLICA_ID = uuid.uuid4().hex[:12]

LOCK_POLL = 0.5
"""Seconds between two tries at a lock that another process holds (at most a quarter of the
lock's ttl, so a short ttl is noticed soon after it ends)."""


def poll_interval(ttl: float) -> float:
    return min(LOCK_POLL, ttl / 4)


def expiry_wait(ttl: float) -> float:
    """How long to wait for a lock of `ttl` seconds held by another process. The lock of a
    process that died expires within `ttl` of its last renewal, so it is free by then (plus a
    poll or two to notice); one still held after that is renewed by a live process."""
    return ttl + 2 * poll_interval(ttl)


async def _take(
    store: Store,
    name: str,
    owner: str,
    ttl: float,
    *,
    wait: float = 0.0,
    stop: asyncio.Event | None = None,
) -> bool:
    """Take `name` for `owner`; while another owner holds it, try again every poll interval
    for up to `wait` seconds. A set `stop` ends the wait at once (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    stop = stop or asyncio.Event()
    while not await store.acquire(name, owner, ttl):
        left = deadline - loop.time()
        if left <= 0 or stop.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(poll_interval(ttl), left))
    return True


@dataclass(slots=True)
class Hold:
    """A lock this block asked for: true while this replica holds it."""

    name: str
    owner: str
    taken: bool
    released: bool = False
    """Let go already (by a store call that releases it with other writes): the block's
    end neither renews nor releases it again."""
    lost: bool = False
    """A renewal found it held by another owner (this process paused past its ttl)."""
    confirmed: float = 0.0
    """The event loop's time when Redis last said this replica holds it."""

    def __bool__(self) -> bool:
        return self.taken

    def confirm(self) -> None:
        self.confirmed = asyncio.get_running_loop().time()


async def still_held(store: Store, hold: Hold, ttl: float) -> bool:
    """Whether this replica may go on writing under `hold`: asked of Redis (renewing it)
    when no renewal confirmed it for a third of its ttl, as after a pause of the process (a
    stopped VM, a long GC), during which it may have expired and been taken by another
    replica. A Redis that doesn't answer leaves it as it was (see docs/reliability.md)."""
    if hold.lost:
        return False
    if asyncio.get_running_loop().time() - hold.confirmed < ttl / 3:
        return True
    try:
        renewed = await store.renew(hold.name, hold.owner, ttl)
    except Exception as err:
        log.warning("lock_renew_failed name=%s error=%r", hold.name, str(err))
        return True
    if not renewed:
        hold.lost = True
        log.warning("lock_lost name=%s", hold.name)
        return False
    hold.confirm()
    return True


class _Renewal:
    """Renews a hold every third of its ttl, from a timer: a block that ends sooner, as most
    do, costs no task and no Redis call."""

    def __init__(self, store: Store, hold: Hold, ttl: float) -> None:
        self._store, self._hold, self._ttl = store, hold, ttl
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._timer = self._loop.call_later(ttl / 3, self._due)

    def _due(self) -> None:
        if not self._stopped and not self._hold.released:
            self._task = self._loop.create_task(self._renew())

    async def _renew(self) -> None:
        hold = self._hold
        if hold.taken:
            try:
                if not await self._store.renew(hold.name, hold.owner, self._ttl):
                    hold.lost = True
                    log.warning("lock_lost name=%s", hold.name)
                    return
                hold.confirm()
            except Exception as err:
                log.warning("lock_renew_failed name=%s error=%r", hold.name, str(err))
        if not self._stopped:
            self._timer = self._loop.call_later(self._ttl / 3, self._due)

    async def stop(self) -> None:
        # Waited for, not cancelled: a cancellation landing inside a Redis call can be
        # swallowed there.
        self._stopped = True
        self._timer.cancel()
        if self._task is not None:
            await self._task


@contextlib.asynccontextmanager
async def held(
    store: Store,
    name: str,
    ttl: float,
    *,
    wait: float = 0.0,
    stop: asyncio.Event | None = None,
    taken_by_block: bool = False,
) -> AsyncIterator[Hold]:
    """Yields a true `Hold` while this replica holds `name`, a false one when another does
    (still, after up to `wait` seconds of trying again; a set `stop` ends that wait early).

    With `taken_by_block` it is not taken here: the block takes it in a store call of its own
    (with the hold's owner, reading what it needs in the same round trip) and sets `taken`;
    from then on it is renewed and let go here as if taken here."""
    hold = Hold(name, f"{REPLICA_ID}:{uuid.uuid4().hex[:8]}", taken=False)
    if not taken_by_block:
        if not await _take(store, name, hold.owner, ttl, wait=wait, stop=stop):
            yield hold
            return
        hold.taken = True
        hold.confirm()
    renewal = _Renewal(store, hold, ttl)
    try:
        yield hold
    finally:
        await renewal.stop()
        if hold.taken and not hold.released:
            try:
                await store.release(name, hold.owner)
            except Exception as err:
                log.warning(
                    "lock_release_failed name=%s error=%r (it expires in %ss)", name, err, ttl
                )
