"""A Redis lock held for the length of a block, renewed while the block runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from bot.store import Store

log = logging.getLogger(__name__)

REPLICA_ID = uuid.uuid4().hex[:12]


@contextlib.asynccontextmanager
async def held(store: Store, name: str, ttl: float) -> AsyncIterator[bool]:
    """Yields True while this replica holds `name`, False when another one does."""
    owner = f"{REPLICA_ID}:{uuid.uuid4().hex[:8]}"
    if not await store.acquire(name, owner, ttl):
        yield False
        return

    done = asyncio.Event()

    async def keep() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), ttl / 3)
                return
            try:
                if not await store.renew(name, owner, ttl):
                    log.warning("lock_lost name=%s", name)
                    return
            except Exception as err:
                log.warning("lock_renew_failed name=%s error=%r", name, str(err))

    renewing = asyncio.create_task(keep())
    try:
        yield True
    finally:
        # Asked to end, not cancelled: a cancellation landing inside a Redis call can be
        # swallowed there, and the loop would renew (and this block wait) forever.
        done.set()
        await renewing
        try:
            await store.release(name, owner)
        except Exception as err:
            log.warning("lock_release_failed name=%s error=%r (it expires in %ss)", name, err, ttl)
