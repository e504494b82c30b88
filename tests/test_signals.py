"""Votes, saves and taste: one contract, run on the real Redis and on the memory twin."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from bot.models import Channel
from bot.ranking import paper_text
from bot.state import Signals, Tally, top
from bot.state import limits as signals
from bot.state.redis import RedisStore
from tests.conftest import RedisServer
from tests.factories import Clock, either_store, paper


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "memory"])
async def sig(
    request: pytest.FixtureRequest, clock: Clock, redis_server: RedisServer
) -> AsyncIterator[Signals]:
    async with either_store(request.param, redis_server.url, clock) as store:
        yield store.signals


CH = Channel("slack", "C1")
OTHER = Channel("slack", "C2")


async def test_a_vote_counts_once_per_user_and_pressing_again_takes_it_back(sig: Signals) -> None:
    p = paper(1)
    assert await sig.vote(CH, p, "U1", up=True) == Tally(1, 0, 1)
    assert await sig.vote(CH, p, "U2", up=True) == Tally(2, 0, 1)
    assert await sig.vote(CH, p, "U1", up=True) == Tally(1, 0, 0)
    assert await sig.vote(CH, p, "U1", up=True) == Tally(2, 0, 1)
    assert await sig.vote(OTHER, p, "U1", up=True) == Tally(1, 0, 1), "votes are per channel"


async def test_up_replaces_down_and_down_replaces_up(sig: Signals) -> None:
    p = paper(1)
    assert await sig.vote(CH, p, "U1", up=False) == Tally(0, 1, -1)
    assert await sig.vote(CH, p, "U1", up=True) == Tally(1, 0, 1)
    assert await sig.vote(CH, p, "U1", up=False) == Tally(0, 1, -1)
    assert await sig.vote(CH, p, "U1", up=False) == Tally(0, 0, 0)
    assert await sig.voted(CH, datetime(2000, 1, 1, tzinfo=UTC)) == []


async def test_concurrent_presses_of_many_users_all_count(sig: Signals) -> None:
    p = paper(1)
    await asyncio.gather(*(sig.vote(CH, p, f"U{i}", up=True) for i in range(40)))
    assert await sig.vote(CH, p, "U999", up=True) == Tally(41, 0, 1)


async def test_top_is_most_voted_in_the_period_newest_first_on_ties(
    sig: Signals, clock: Clock
) -> None:
    old, a, b, c = paper(9), paper(3), paper(2), paper(1)  # paper(1) is the newest
    await sig.vote(CH, old, "U1", up=True)
    clock.now += timedelta(days=8)
    for who, p in [("U1", a), ("U2", a), ("U1", b), ("U1", c)]:
        await sig.vote(CH, p, who, up=True)
    await sig.vote(CH, paper(4), "U1", up=False)
    week = await sig.voted(CH, clock.now - timedelta(days=7))
    ranked = top(week, 10)
    assert [(v.paper.id, v.up) for v in ranked] == [(a.id, 2), (c.id, 1), (b.id, 1)]
    assert len(top(await sig.voted(CH, clock.now - timedelta(days=30)), 10)) == 4


async def test_taste_holds_the_liked_and_disliked_texts(sig: Signals) -> None:
    liked, disliked, even = paper(1), paper(2), paper(3)
    assert (await sig.taste(CH)).empty
    await sig.vote(CH, liked, "U1", up=True)
    await sig.vote(CH, disliked, "U1", up=False)
    await sig.vote(CH, even, "U1", up=True)
    await sig.vote(CH, even, "U2", up=False)
    taste = await sig.taste(CH)
    assert taste.liked == (paper_text(liked),)
    assert taste.disliked == (paper_text(disliked),)
    assert (await sig.taste(OTHER)).empty


async def test_votes_are_bounded_by_count_and_age(
    sig: Signals, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signals, "MAX_VOTED", 3)
    for n in range(1, 6):
        clock.now += timedelta(minutes=1)
        await sig.vote(CH, paper(n), "U1", up=True)
    kept = await sig.voted(CH, datetime(2000, 1, 1, tzinfo=UTC))
    assert sorted(v.paper.id for v in kept) == [paper(n).id for n in (3, 4, 5)]
    clock.now += signals.VOTES_KEPT + timedelta(days=1)
    await sig.vote(CH, paper(6), "U1", up=True)
    kept = await sig.voted(CH, datetime(2000, 1, 1, tzinfo=UTC))
    assert [v.paper.id for v in kept] == [paper(6).id]
    assert len((await sig.taste(CH)).liked) == 1


async def test_saves_toggle_are_per_user_newest_first_and_bounded(
    sig: Signals, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await sig.toggle_saved("slack:U1", paper(1)) is True
    clock.now += timedelta(minutes=1)
    assert await sig.toggle_saved("slack:U1", paper(2)) is True
    assert [p.id for p in await sig.saved("slack:U1", 10)] == [paper(2).id, paper(1).id]
    assert await sig.saved("slack:U2", 10) == []
    assert await sig.toggle_saved("slack:U1", paper(2)) is False
    assert await sig.unsave("slack:U1", paper(1).id) is True
    assert await sig.unsave("slack:U1", paper(1).id) is False
    assert await sig.saved("slack:U1", 10) == []
    monkeypatch.setattr(signals, "MAX_SAVED", 2)
    for n in range(1, 4):
        clock.now += timedelta(minutes=1)
        await sig.toggle_saved("slack:U1", paper(n))
    assert [p.id for p in await sig.saved("slack:U1", 10)] == [paper(3).id, paper(2).id]


async def test_a_saved_copy_is_refreshed_only_while_it_is_saved(sig: Signals, clock: Clock) -> None:
    await sig.toggle_saved("slack:U1", paper(1))
    clock.now += timedelta(minutes=1)
    await sig.toggle_saved("slack:U1", paper(2))
    revised = paper(1, version=2, journal_ref="Phys. Rev. B 85, 115117")
    assert await sig.refresh_saved("slack:U1", revised) is True
    assert await sig.saved("slack:U1", 10) == [paper(2), revised]  # still saved when it was
    assert await sig.refresh_saved("slack:U2", revised) is False
    await sig.unsave("slack:U1", paper(1).id)
    assert await sig.refresh_saved("slack:U1", revised) is False
    assert [p.id for p in await sig.saved("slack:U1", 10)] == [paper(2).id]


async def test_remembered_papers_are_found_by_id(sig: Signals) -> None:
    await sig.remember([paper(1, comment="Code at github.com/a/b"), paper(2)])
    found = await sig.paper(paper(1).id)
    assert found == paper(1, comment="Code at github.com/a/b")
    assert await sig.paper("2611.99999") is None


async def test_redis_keys_expire(redis_client: aioredis.Redis, clock: Clock) -> None:
    store = RedisStore(redis_client, prefix="x", clock=clock)
    await store.signals.vote(CH, paper(1), "U1", up=True)
    await store.signals.toggle_saved("slack:U1", paper(1))
    await store.signals.remember([paper(1)])
    keys = await redis_client.keys("x:*")
    assert len(keys) == 6  # no down votes: no down hash
    for key in keys:
        assert await redis_client.ttl(key) > 0, key
