"""One contract, two twins: every test runs on the real Redis and on the memory store."""

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
import redis.asyncio as aioredis

from bot.models import Channel
from bot.state import AddResult, LockClaim, PreviewHold, Store
from bot.state.connection import POOL_SIZE
from bot.state.memory import MemoryStore
from bot.state.redis import RedisStore
from tests.conftest import RedisServer
from tests.factories import Clock, either_store, paper


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "memory"])
async def store(
    request: pytest.FixtureRequest, clock: Clock, redis_server: RedisServer
) -> AsyncIterator[Store]:
    retention = timedelta(days=30)
    async with either_store(request.param, redis_server.url, clock, seen_retention=retention) as s:
        yield s


CH = Channel("slack", "C1")


async def test_seen_is_per_channel(store: Store) -> None:
    await store.mark_seen(CH, ["a", "b"])
    assert await store.unseen(CH, ["a", "b", "c"]) == {"c"}
    assert await store.unseen(Channel("slack", "C2"), ["a"]) == {"a"}
    assert await store.unseen(CH, []) == set()


async def test_seen_expires_after_the_retention_window(store: Store, clock: Clock) -> None:
    await store.mark_seen(CH, ["old"])
    clock.now += timedelta(days=31)
    await store.mark_seen(CH, ["new"])
    assert await store.unseen(CH, ["old", "new"]) == {"old"}


async def test_subscriptions_add_exists_full_remove(store: Store, clock: Clock) -> None:
    assert await store.add_subscription(CH, "Reward Model", added_by="U1", cap=2) is AddResult.ADDED
    clock.now += timedelta(seconds=1)
    assert await store.add_subscription(CH, "reward models", added_by="U2", cap=2) is (
        AddResult.EXISTS
    )
    assert await store.add_subscription(CH, "diffusion", added_by="U1", cap=2) is AddResult.ADDED
    assert await store.add_subscription(CH, "third", added_by="U1", cap=2) is AddResult.FULL
    assert [s.keyword for s in await store.subscriptions(CH)] == ["Reward Model", "diffusion"]
    assert await store.subscribed_channels() == [CH]
    assert await store.remove_subscription(CH, "REWARD MODEL")
    assert not await store.remove_subscription(CH, "reward model")
    assert [s.keyword for s in await store.subscriptions(CH)] == ["diffusion"]
    await store.set_baselined(CH, ["diffusion"])
    assert await store.remove_subscription(CH, "diffusion")
    assert await store.subscribed_channels() == []
    assert await store.baselined(CH, ["diffusion"]) == set()


async def test_a_hold_is_per_keyword_expires_and_goes_with_remove(
    store: Store, clock: Clock
) -> None:
    hold = PreviewHold(["a", "bv2"], timedelta(days=2))
    assert await store.add_subscription(CH, "RLHF", added_by="U1", cap=1, hold=hold) is (
        AddResult.ADDED
    )
    assert await store.add_subscription(CH, "x", added_by="U1", cap=1, hold=hold) is (
        AddResult.FULL
    )
    state = await store.channel_state(CH, ["a"], ["rlhf", "x"])
    assert state.held == {"rlhf": frozenset({"a", "bv2"})}
    assert state.baselined == {"rlhf"}
    clock.now += timedelta(days=2)
    assert (await store.channel_state(CH, ["a"], ["rlhf"])).held == {}
    clock.now -= timedelta(days=1)
    assert await store.remove_subscription(CH, "rlhf")
    assert (await store.channel_state(CH, ["a"], ["rlhf"])).held == {}


async def test_forgetting_a_keyword_drops_its_caches(store: Store, clock: Clock) -> None:
    await store.save_recent({"kw": [paper(1)], "other": [paper(2)]}, cap=5)
    await store.set_fetched(["kw", "other"], clock.now)
    assert not await store.followed("kw")
    await store.add_subscription(CH, "Other", added_by="U1", cap=5)
    assert await store.followed("other")
    await store.forget_keyword("KW")
    assert await store.recent("kw", 5) == []
    assert await store.last_fetched(["kw", "other"]) == {"kw": None, "other": clock.now}
    assert [p.id for p in await store.recent("other", 5)] == [paper(2).id]


async def test_recent_is_capped_newest_first(store: Store) -> None:
    await store.save_recent({"kw": [paper(n) for n in range(1, 8)]}, cap=5)
    await store.save_recent({"kw": [paper(0)]}, cap=5)
    recent = await store.recent("KW", 10)
    assert [p.id for p in recent] == [paper(n).id for n in range(5)]
    assert await store.recent("other", 3) == []
    assert (await store.recent("kw", 1))[0] == paper(0)


async def test_recent_lists_of_many_keywords_saved_at_once(store: Store) -> None:
    many = {f"keyword {k}": [paper(n) for n in range(k % 7, k % 7 + 4)] for k in range(120)}
    many["nothing new"] = []
    await store.save_recent(many, cap=3)
    for keyword, papers in many.items():
        expected = [p.id for p in papers[:3]]
        assert [p.id for p in await store.recent(keyword, 10)] == expected, keyword


async def test_a_long_recent_list_is_saved_whole(store: Store) -> None:
    papers = [paper(n) for n in range(1, 1801)]
    await store.save_recent({"kw": papers}, cap=1500)
    assert [p.id for p in await store.recent("kw", 2000)] == [p.id for p in papers[:1500]]


async def test_fetch_times_and_baselines(store: Store, clock: Clock) -> None:
    assert await store.last_fetched(["a"]) == {"a": None}
    await store.set_fetched(["A"], clock.now)
    assert await store.last_fetched(["a"]) == {"a": clock.now}
    clock.now += timedelta(days=61)
    await store.set_fetched(["b"], clock.now)
    assert await store.last_fetched(["a", "b"]) == {"a": None, "b": clock.now}
    await store.set_baselined(CH, ["Reward Model"])
    assert await store.baselined(CH, ["reward model", "other"]) == {"reward model"}


async def test_a_channel_run_ends_with_seen_baseline_and_listing_day(store: Store) -> None:
    other = Channel("discord", "9")
    assert await store.listing_days([CH, other]) == {CH: None, other: None}
    await store.finish(CH, ["2611.00001", "2611.00002v2"], ["Reward Model"], date(2026, 11, 24))
    await store.finish(other, [], [], None)
    assert await store.listing_days([CH, other]) == {CH: date(2026, 11, 24), other: None}
    assert await store.unseen(CH, ["2611.00001", "2611.00002v2", "x"]) == {"x"}
    assert await store.baselined(CH, ["reward models"]) == {"reward models"}
    await store.set_listing_day(other, date(2026, 11, 25))
    assert (await store.listing_days([other]))[other] == date(2026, 11, 25)


async def test_finish_marks_many_trims_the_old_and_lets_go_of_its_own_lock_only(
    store: Store, clock: Clock
) -> None:
    await store.mark_seen(CH, ["old"])
    clock.now += timedelta(days=31)
    many = [f"2611.{n:05d}" for n in range(1200)]  # more than one ZADD's worth in the script
    name = f"channel:{{{CH.key}}}"
    assert await store.acquire(name, "me", 60)
    await store.finish(CH, many, [], None, (name, "someone else"))
    assert not await store.acquire(name, "them", 60), "not its lock: kept"
    await store.finish(CH, ["x"], ["Reward Model", "RLHF"], None, (name, "me"))
    assert await store.acquire(name, "them", 60), "its own: let go"
    assert await store.unseen(CH, [*many, "x", "old"]) == {"old"}
    assert await store.baselined(CH, ["reward models", "rlhf", "dpo"]) == {"reward models", "rlhf"}
    assert await store.listing_days([CH]) == {CH: None}


async def test_a_delivery_knows_whether_one_began_that_day(store: Store) -> None:
    day = date(2026, 11, 24)
    assert not await store.begin_delivery(CH, day)
    assert await store.begin_delivery(CH, day)  # a second run the same day: resumed
    assert not await store.begin_delivery(Channel("discord", "9"), day)
    assert not await store.begin_delivery(CH, date(2026, 11, 25))


async def test_redis_keys_carry_hash_tags_and_expire(
    redis_client: aioredis.Redis, clock: Clock
) -> None:
    store = RedisStore(redis_client, prefix="t", seen_retention=timedelta(days=30), clock=clock)
    await store.mark_seen(CH, ["a"])
    await store.save_recent({"kw": [paper(1)]}, cap=5)
    keys = sorted(await redis_client.keys("t:*"))
    assert keys[0] == "t:recent:{" + keys[0].split("{")[1]
    assert "t:seen:{slack:C1}" in keys
    assert 0 < await redis_client.ttl("t:seen:{slack:C1}") <= 30 * 86400
    recent = [k for k in keys if k.startswith("t:recent:")]
    assert len(recent) == 2
    for key in recent:
        assert 29 * 86400 < await redis_client.ttl(key) <= 30 * 86400
    await store.set_listing_day(CH, date(2026, 11, 24))
    assert 0 < await redis_client.ttl("t:day:{slack:C1}") <= 30 * 86400


async def test_a_lock_has_one_holder_until_released_or_expired(store: Store, clock: Clock) -> None:
    assert await store.acquire("digest", "a", ttl=30)
    assert not await store.acquire("digest", "b", ttl=30)
    assert not await store.renew("digest", "b", ttl=30)
    assert await store.renew("digest", "a", ttl=30)
    await store.release("digest", "b")  # not b's to release
    assert not await store.acquire("digest", "b", ttl=30)
    await store.release("digest", "a")
    assert await store.acquire("digest", "b", ttl=0.05)


async def test_done_markers(store: Store) -> None:
    assert not await store.is_done("slot")
    await store.mark_done("slot", ttl=60)
    assert await store.is_done("slot")


async def test_the_store_from_a_url_serves_hundreds_of_calls_at_once(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server.url, prefix="many")
    admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)  # type: ignore[attr-defined]
    try:
        before = (await admin.info("clients"))["connected_clients"]
        answers = await asyncio.gather(*(store.unseen(CH, [f"p{n}"]) for n in range(400)))
        opened = (await admin.info("clients"))["connected_clients"] - before
    finally:
        await store.close()
        await admin.aclose()
    assert answers == [{f"p{n}"} for n in range(400)]
    assert 1 <= opened <= POOL_SIZE < 400, "calls wait for a connection, none is refused"


async def test_channel_state_reads_options_unseen_and_baselined_at_once(store: Store) -> None:
    await store.mark_seen(CH, ["a"])
    await store.set_baselined(CH, ["Reward Model"])
    await store.set_channel_option(CH, "revisions", True)
    state = await store.channel_state(CH, ["a", "b"], ["reward models", "rlhf"])
    assert state.options == {"revisions": True}
    assert state.unseen == {"b"}
    assert state.baselined == {"reward models"}
    empty = await store.channel_state(Channel("slack", "C9"), [], [])
    assert (empty.options, empty.unseen, empty.baselined) == ({}, set(), set())


async def test_acquire_many_answers_as_acquire_one_by_one(store: Store, clock: Clock) -> None:
    assert await store.acquire("b", "me", 10) is True
    assert await store.acquire_many(["a", "b", "c", "a"], "other", 10) == [True, False, True, False]
    assert await store.acquire_many([], "other", 10) == []
    if isinstance(store, MemoryStore):
        clock.now += timedelta(seconds=11)
        assert await store.acquire_many(["a", "b"], "me", 10) == [True, True]


async def test_add_seen_marks_a_message_seen_and_keeps_the_key_bounded(store: Store) -> None:
    await store.mark_message_seen(CH, ["a", "b"])
    await store.mark_message_seen(CH, [])
    assert await store.unseen(CH, ["a", "b", "c"]) == {"c"}
    if isinstance(store, RedisStore):
        ttl = await store._r.ttl(store._seen(CH))
        assert 0 < ttl <= 30 * 86400


async def test_channel_state_notes_the_days_delivery_attempt(store: Store) -> None:
    day = date(2026, 11, 24)
    assert not (await store.channel_state(CH, ["a"], attempt=day)).resumed
    assert (await store.channel_state(CH, ["a"], attempt=day)).resumed
    assert not (await store.channel_state(CH, ["a"])).resumed, "without attempt: not asked"
    assert not (await store.channel_state(CH, [], attempt=date(2026, 11, 25))).resumed
    assert await store.begin_delivery(CH, date(2026, 11, 25)), "the same marker"


async def test_channel_state_takes_the_channels_lock_before_noting_the_attempt(
    store: Store, clock: Clock
) -> None:
    day = date(2026, 11, 24)
    name = f"channel:{{{CH.key}}}"
    mine, theirs = LockClaim(name, "me", 10), LockClaim(name, "them", 10)
    first = await store.channel_state(CH, ["a"], attempt=day, lock=mine)
    assert first.locked and not first.resumed
    if isinstance(store, RedisStore):
        assert 0 < await store._r.pttl(store._lock(name)) <= 10_000
    assert await store.acquire(name, "them", 10) is False, "taken for me"
    busy = await store.channel_state(CH, ["a"], attempt=date(2026, 11, 25), lock=theirs)
    assert not busy.locked and not busy.resumed
    again = await store.channel_state(CH, ["a"], attempt=day, lock=mine)
    assert again.locked and again.resumed, "kept by its owner; the 25th was never noted"
    await store.release(name, "me")
    assert (await store.channel_state(CH, ["a"], lock=theirs)).locked
    assert await store.renew(name, "them", 10), "theirs now"
    if isinstance(store, MemoryStore):
        clock.now += timedelta(seconds=11)
        assert (await store.channel_state(CH, [], lock=mine)).locked, "theirs expired"


async def test_channel_state_reads_the_taste_when_asked(store: Store) -> None:
    await store.signals.vote(CH, paper(1), "U1", up=True)
    state = await store.channel_state(CH, ["a"], taste=True)
    assert len(state.taste.liked) == 1 and state.taste.disliked == ()
    assert (await store.channel_state(CH, ["a"])).taste.empty, "not asked"
    assert (await store.channel_state(Channel("slack", "C9"), [], taste=True)).taste.empty


async def test_openers_count_only_channels_that_follow_something(store: Store) -> None:
    """Issue 22, finding 7: what the channel budgets count, bounded by what is followed."""
    a, b, d = Channel("slack", "C1"), Channel("slack", "C2"), Channel("discord", "9")
    for channel in (a, b, d):
        await store.add_subscription(channel, "x", added_by="U1", cap=5)
        await store.set_opener(channel, "U1", "T1")
    assert await store.openers("slack") == {a: ("U1", "T1"), b: ("U1", "T1")}
    await store.remove_subscription(b, "x")
    assert await store.openers("slack") == {a: ("U1", "T1")}
    await store.add_subscription(b, "x", added_by="U2", cap=5)
    assert await store.openers("slack") == {a: ("U1", "T1")}  # its record went with it


async def test_gone_days_count_once_a_day_and_drop_forgets_the_channel(store: Store) -> None:
    gone, fine = Channel("slack", "C9"), Channel("slack", "C1")
    await store.add_subscription(gone, "x", added_by="U1", cap=5)
    await store.set_opener(gone, "U1", "T1")
    day = date(2026, 11, 4)
    assert await store.note_gone(gone, day) == 1
    assert await store.note_gone(gone, day) == 1
    assert await store.note_gone(gone, day + timedelta(days=1)) == 2
    assert await store.gone_counts([gone, fine]) == {gone: 2}
    await store.forget_gone([gone])
    assert await store.gone_counts([gone]) == {}
    assert await store.note_gone(gone, day + timedelta(days=2)) == 1
    await store.drop_channel(gone)
    assert await store.subscriptions(gone) == []
    assert gone not in await store.subscribed_channels()
    assert await store.gone_counts([gone]) == {} and await store.openers("slack") == {}
