"""Claims: which replica answers a request that every replica may receive.

Slack may deliver a signed request again (a replay, or a retry after a slow ack) and
Discord sends every interaction to every gateway session sharing the token, so each platform
asks a `Claim` before answering: True for the first asker of a name, False after. Claims in
the store are shared by every replica; `answers_here` decides what a failed claim means.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.state import Store
from bot.state.batching import Grouped
from bot.state.locks import REPLICA_ID

log = logging.getLogger(__name__)

Claim = Callable[[str], Awaitable[bool]]
"""Takes a name (a request's signature, an interaction's id); True for the one replica that
should answer it."""


class StoreClaims:
    """Claims in the store (SET NX with a TTL) under `kind`, grouped (`Grouped`): those that
    arrive while a claim is on its way go together in the next one (one round trip when
    requests come one by one, a few for a burst; BENCHMARKS.md, figure 3)."""

    def __init__(self, store: Store, kind: str, ttl: float) -> None:
        self._store = store
        self._kind = kind
        self._ttl = ttl
        self._grouped: Grouped[str, bool] = Grouped(self._claim)

    async def __call__(self, name: str) -> bool:
        return await self._grouped(f"{self._kind}:{name}")

    async def _claim(self, names: list[str]) -> list[bool | Exception]:
        if len(names) == 1:  # a plain command costs less than a script or pipeline of one
            return [await self._store.acquire(names[0], REPLICA_ID, self._ttl)]
        return list(await self._store.acquire_many(names, REPLICA_ID, self._ttl))


async def answers_here(claim: Awaitable[bool], failed: str) -> bool:
    """Whether this replica answers a request every replica may receive (a Discord
    interaction, a replayed Slack request): what `claim` says; True when the claim itself
    fails (the store unreachable), as answering twice beats not answering. `failed` starts
    the log line then (its event and what it was about)."""
    try:
        return await claim
    except Exception as err:
        log.warning("%s error=%r", failed, str(err))
        return True
