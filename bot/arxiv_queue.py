"""Who goes to arXiv next: the digest's requests before the commands'.

arXiv takes one request at a time, `request_interval` apart. Each request of a process waits
its turn at one `Gate`: when the gate frees, the most urgent request waiting goes (first come,
first served within a priority), and a command still waiting for its slot gives the gate up
to digest work that arrives meanwhile. Across replicas, the pacing slots booked in Redis do
the same (`Store.next_start`, `urgent`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum


class Priority(IntEnum):
    DIGEST = 0
    """The digest's listing, details, OAI-PMH catch-up and submission windows."""
    COMMAND = 1
    """Chat: `/papers add`'s preview, `/papers recent`, a button on a forgotten paper."""


@dataclass(frozen=True, slots=True)
class Caller:
    """On whose behalf requests go to arXiv."""

    priority: Priority = Priority.DIGEST
    charge: Callable[[], Awaitable[None]] | None = None
    """Awaited before each request (each page, each retry); raises to refuse it."""


DIGEST = Caller()


@dataclass(frozen=True, order=True, slots=True)
class Ticket:
    """A request's place in line: its priority, then its order of arrival."""

    priority: Priority
    order: int


@dataclass(order=True, slots=True)
class _Waiter:
    ticket: Ticket
    granted: asyncio.Future[None] = field(compare=False)


class Gate:
    """One holder at a time; when it leaves, the most urgent waiter holds it."""

    def __init__(self) -> None:
        self._holder: Ticket | None = None
        self._waiting: list[_Waiter] = []  # a heap
        self._arrivals = itertools.count()
        self._overtaken = asyncio.Event()

    def ticket(self, priority: Priority) -> Ticket:
        return Ticket(priority, next(self._arrivals))

    async def acquire(self, ticket: Ticket) -> None:
        if self._holder is None and not self._waiting:
            self._hold(ticket)
            return
        waiter = _Waiter(ticket, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, waiter)
        if self._holder is not None and ticket.priority < self._holder.priority:
            self._overtaken.set()
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self.release()  # granted as it was cancelled: the next one goes
            elif waiter in self._waiting:  # a release may have passed over it already
                self._waiting.remove(waiter)
                heapq.heapify(self._waiting)
            raise

    def release(self) -> None:
        self._holder = None
        while self._waiting:
            waiter = heapq.heappop(self._waiting)
            if not waiter.granted.done():
                self._hold(waiter.ticket)
                waiter.granted.set_result(None)
                return

    async def overtaken(self, ticket: Ticket, within: float) -> bool:
        """Waits `within` seconds, holding the gate; True as soon as a request more urgent
        than `ticket` waits for it (the holder should then give it up)."""
        if self._waiting and self._waiting[0].ticket.priority < ticket.priority:
            return True
        try:
            await asyncio.wait_for(self._overtaken.wait(), within)
        except TimeoutError:
            return False
        return True

    def _hold(self, ticket: Ticket) -> None:
        self._holder = ticket
        self._overtaken = asyncio.Event()
