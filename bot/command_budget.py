"""What chat commands may ask of arXiv: requests a minute for each member, and a share of
arXiv's capacity for all commands together, counted in the store (so across replicas). A
request beyond either is refused before it queues, with one line saying when to try again;
the digest's requests are never counted."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from datetime import datetime

from bot.arxiv_queue import Caller, Priority
from bot.replies import CommandContext, UserError
from bot.settings import Settings
from bot.state import Store, keys

log = logging.getLogger(__name__)

WINDOW = 60.0
"""Seconds both budgets are counted over (fixed windows, as the command limit's)."""


def commands_per_window(settings: Settings) -> int | None:
    """arXiv requests all commands together may make in a `WINDOW`: `arxiv_share` of what
    `request_interval` allows, at least one unless the share is 0; None (no bound) when
    requests are not paced."""
    interval = settings.arxiv.request_interval
    share = settings.commands.arxiv_share
    if interval <= 0:
        return None
    if share <= 0:
        return 0
    return max(1, math.floor(round(share * WINDOW / interval, 6)))  # 0.3 / 0.1 is 3, not 2


class ArxivBudget:
    def __init__(self, settings: Settings, store: Store, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock

    def caller(self, ctx: CommandContext) -> Caller:
        """Requests for this member's command: after the digest's, each one charged."""
        return Caller(Priority.COMMAND, functools.partial(self.charge, ctx.member))

    async def charge(self, member: str) -> None:
        """Counts one arXiv request for `member`, or refuses it (UserError): first the
        member's own budget, so that requests refused there never use up everyone's."""
        mine = self._settings.commands.arxiv_per_user_per_minute
        if await self._store.hit(keys.arxiv_rate(member), WINDOW) > mine:
            raise UserError(
                f"Slow down: your commands asked arXiv {mine} times this minute, the most "
                f"allowed. Try again in {self._seconds_left()} s."
            )
        everyone = commands_per_window(self._settings)
        if everyone == 0:
            raise UserError("Commands may not ask arXiv here ([commands] arxiv_share is 0).")
        if everyone is not None and await self._store.hit(keys.ARXIV_COMMANDS, WINDOW) > everyone:
            log.warning("arxiv_busy member=%s budget=%d", member, everyone)
            raise UserError(f"arXiv is busy: try again in {self._seconds_left()} s.")

    def _seconds_left(self) -> int:
        """Seconds until the current window ends (the store counts in the same windows)."""
        return max(1, math.ceil(WINDOW - self._clock().timestamp() % WINDOW))
