"""Issue 22, finding 3: one member could starve arXiv for everyone. Commands and the digest
shared one first-come queue (the digest's listing waited 20, 40 and 100 intervals behind 1,
2 and 5 members' `/papers recent`). Now the digest goes first, in a process and across
replicas; commands have an arXiv budget per member (requests, not commands) and for all of
them together; answers for keywords the digest doesn't keep are kept briefly. The real
`ArxivSource` and `Commands` against the fake arXiv, on the real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.arxiv_queue import Gate, Priority
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands, Reply
from bot.models import Channel
from bot.settings import Settings, SubscriptionSettings
from bot.state import Store
from bot.state.redis import RedisStore
from tests.conftest import RedisServer
from tests.factories import Clock, either_store
from tests.fakes.arxiv_server import FakeArxiv, RecordedRequest, make_paper

FLOOD = 20
"""`/papers recent` each member sends: the command limit's default, as measured."""


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 9)]
    with FakeArxiv(papers) as fake:
        yield fake


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """The test Redis, with connections for a few hundred commands at once."""
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True, max_connections=500)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def redis_store(client: aioredis.Redis) -> RedisStore:
    return RedisStore(client, prefix="test")


def settings_for(arxiv: FakeArxiv, interval: float, **commands: Any) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": arxiv.settings(request_interval=interval),
            "commands": {"per_user_per_minute": 1000, **commands},
        }
    )


def member(n: int | str, channel: str = "C1") -> CommandContext:
    return CommandContext(channel=Channel("slack", channel), user=f"U{n}")


def is_listing(request: RecordedRequest) -> bool:
    return request.path.startswith("/rss/")


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def cancelled(tasks: list[asyncio.Task[Reply]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def flood(commands: Commands, members: list[str]) -> list[asyncio.Task[Reply]]:
    """Each member's `FLOOD` `/papers recent`, a keyword nobody follows each time."""
    return [
        asyncio.create_task(commands.handle(member(m), f"recent subject m{m} k{i}"))
        for i in range(FLOOD)
        for m in members
    ]


# -- priority ----------------------------------------------------------------------------------


@pytest.mark.parametrize("members", [1, 2, 5])
async def test_the_digest_listing_goes_at_the_next_slot_whatever_members_queued(
    arxiv: FakeArxiv, redis_store: RedisStore, members: int
) -> None:
    """The measurement of the finding: the digest asks for the day's listing while members'
    `recent` are queued. It waited behind all of them (first come, first served); now it
    waits for the slot in progress at most."""
    settings = settings_for(arxiv, 0.05)
    source = ArxivSource(settings.arxiv, shared=redis_store)
    commands = Commands(settings, redis_store, source)
    tasks = flood(commands, [str(m) for m in range(members)])
    await until(lambda: len(arxiv.requests) >= 2)

    before = len(arxiv.requests)
    await source.listing_part("cs", None)
    order = arxiv.requests
    await cancelled(tasks)

    waited = [is_listing(r) for r in order].index(True) - before
    assert waited <= 1  # the command booked before the digest asked, not yet arrived


async def test_across_replicas_the_digest_goes_before_commands(
    arxiv: FakeArxiv, client: aioredis.Redis
) -> None:
    """Three replicas flood arXiv with their members' commands; a fourth runs the digest
    (four listing requests in a row). One Redis paces them all: each digest request gets the
    next slot, at most one command's request comes before it. First come, first served, a
    digest request won a slot against three others one time in four."""
    settings = settings_for(arxiv, 0.1)

    def replica() -> tuple[Store, ArxivSource]:
        store = RedisStore(client, prefix="test")
        return store, ArxivSource(settings.arxiv, shared=store)

    tasks: list[asyncio.Task[Reply]] = []
    for r in range(3):
        store, source = replica()
        tasks += flood(Commands(settings, store, source), [f"{r}-{m}" for m in range(4)])
    _, digest = replica()
    await until(lambda: len(arxiv.requests) >= 2)

    before = len(arxiv.requests)
    for _ in range(4):
        await digest.listing_part("cs", None)
    order = [is_listing(r) for r in arxiv.requests[before:]]
    await cancelled(tasks)

    commands_before_each: list[int] = []
    ahead = 0
    for listing in order:
        if listing:
            commands_before_each.append(ahead)
            ahead = 0
        else:
            ahead += 1
    assert len(commands_before_each) == 4
    assert max(commands_before_each) <= 1, order


async def test_the_gate_lets_the_most_urgent_go_first_then_in_order_of_arrival() -> None:
    gate = Gate()
    holder = gate.ticket(Priority.COMMAND)
    await gate.acquire(holder)
    served: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await gate.acquire(gate.ticket(priority))
        served.append(name)
        gate.release()

    waiting = [
        asyncio.create_task(wait(name, priority))
        for name, priority in [
            ("command 1", Priority.COMMAND),
            ("command 2", Priority.COMMAND),
            ("digest", Priority.DIGEST),
        ]
    ]
    await asyncio.sleep(0)
    assert await gate.overtaken(holder, 1.0)  # the holder is told a digest request waits
    gate.release()
    await asyncio.gather(*waiting)
    assert served == ["digest", "command 1", "command 2"]


async def test_a_waiter_cancelled_as_it_is_granted_passes_the_gate_on() -> None:
    gate = Gate()
    first = gate.ticket(Priority.DIGEST)
    await gate.acquire(first)
    doomed = asyncio.create_task(gate.acquire(gate.ticket(Priority.DIGEST)))
    next_one = asyncio.create_task(gate.acquire(gate.ticket(Priority.COMMAND)))
    await asyncio.sleep(0)
    gate.release()  # grants `doomed`, which is cancelled before it runs
    doomed.cancel()
    await asyncio.wait_for(next_one, 1.0)
    assert doomed.cancelled()


async def test_a_waiter_cancelled_before_the_gate_frees_leaves_quietly() -> None:
    """Cancelled while waiting, then passed over by a release before it runs: it ends
    cancelled (not with an error of the gate's), and the gate goes on to the next."""
    gate = Gate()
    await gate.acquire(gate.ticket(Priority.DIGEST))
    doomed = asyncio.create_task(gate.acquire(gate.ticket(Priority.DIGEST)))
    next_one = asyncio.create_task(gate.acquire(gate.ticket(Priority.COMMAND)))
    await asyncio.sleep(0)
    doomed.cancel()
    gate.release()  # passes over `doomed`, whose wait is cancelled already
    await asyncio.wait_for(next_one, 1.0)
    with pytest.raises(asyncio.CancelledError):
        await doomed


@pytest.fixture(params=["redis", "memory"])
async def either(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[Store]:
    async with either_store(request.param, redis_server.url, Clock()) as store:
        yield store


async def test_a_waiting_digest_request_keeps_commands_off_its_slot(either: Store) -> None:
    """The pacing slots every replica books: digest work that waits for one marks it, and a
    command asking meanwhile, even after the slot came, is told to wait; the digest books it."""
    interval = 0.2
    assert await either.next_start("t", interval) == 0  # someone's request
    wait = await either.next_start("t", interval, urgent=True)
    assert 0 < wait <= interval
    await asyncio.sleep(wait + 0.02)
    assert await either.next_start("t", interval) > 0  # the slot is the digest's
    assert await either.next_start("t", interval, urgent=True) == 0
    assert await either.next_start("t", interval) > interval / 2


# -- budgets -----------------------------------------------------------------------------------


async def test_commands_together_get_their_share_of_arxiv_then_are_told_to_wait(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    """Request every 0.1 s, commands' share 0.5 %: 3 requests a minute for all commands,
    whoever sends them; the fourth member is told arXiv is busy, and nothing changes."""
    settings = settings_for(arxiv, 0.1, arxiv_share=0.005)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=Clock())
    for n in range(3):
        assert (await commands.handle(member(n), f"recent subject {'abc'[n]}")).ok
    busy = await commands.handle(member(3), "add subject three")
    assert not busy.ok
    assert busy.text.startswith("arXiv is busy: try again in ")
    assert "\n" not in busy.text
    assert len(arxiv.requests) == 3
    assert await redis_store.subscriptions(Channel("slack", "C1")) == []
    assert (await commands.handle(member(3), "list")).ok  # no arXiv request: not counted


async def test_a_member_is_limited_in_arxiv_requests_not_commands(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    """`recent` in a channel of 25 keywords the store doesn't hold costs two requests: a
    member with 3 a minute gets one such answer and one more request, then `Slow down`,
    while commands that ask arXiv nothing still answer."""
    settings = settings_for(arxiv, 0, arxiv_per_user_per_minute=3)
    for channel in ("CA", "CB"):
        topics = [f"topic {channel} {n}" for n in range(25)]
        settings.subscriptions.append(
            SubscriptionSettings(platform="slack", channel=channel, keywords=topics)
        )
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=Clock())

    assert (await commands.handle(member("A", "CA"), "recent")).ok
    refused = await commands.handle(member("A", "CB"), "recent")
    assert refused.text.startswith("Slow down: your commands asked arXiv 3 times this minute")
    assert len(arxiv.requests) == 3
    assert (await commands.handle(member("A", "CB"), "list")).ok
    assert (await commands.handle(member("B", "CB"), "recent")).ok  # another member's own
    assert len(arxiv.requests) == 4  # the first 20 keywords were answered for A, and kept


async def test_recent_for_a_keyword_nobody_follows_is_kept_briefly(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = settings_for(arxiv, 0, cache_minutes=0.01)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=Clock())
    first = await commands.handle(member(1), "recent reward model")
    again = await commands.handle(member(2), "recent Reward  Model 3")
    assert len(first.papers) == 5 and len(again.papers) == 3
    assert again.papers == first.papers[:3]
    assert len(arxiv.requests) == 1
    await asyncio.sleep(0.7)  # past cache_minutes
    assert (await commands.handle(member(1), "recent reward model")).ok
    assert len(arxiv.requests) == 2


async def test_without_a_cache_every_recent_asks_arxiv(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = settings_for(arxiv, 0, cache_minutes=0)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=Clock())
    for _ in range(2):
        assert (await commands.handle(member(1), "recent reward model")).ok
    assert len(arxiv.requests) == 2
