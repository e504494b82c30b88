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

    async def keep() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
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
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        try:
            await store.release(name, owner)
        except Exception as err:
            log.warning("lock_release_failed name=%s error=%r (it expires in %ss)", name, err, ttl)
