"""The lock held for a digest run or a channel: renewed while held, always let go."""

import asyncio

from bot.state.locks import held
from bot.state.memory import MemoryStore


class SwallowingStore(MemoryStore):
    """A renewal that eats the first cancellation arriving mid-call, as a Redis client may."""

    def __init__(self) -> None:
        super().__init__()
        self.renewals = 0
        self.swallowed = False
        self.in_renewal = asyncio.Event()

    async def renew(self, name: str, owner: str, ttl: float) -> bool:
        self.renewals += 1
        self.in_renewal.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed = True
        return await super().renew(name, owner, ttl)


async def test_the_lock_is_renewed_while_held_and_released_after() -> None:
    store = SwallowingStore()
    async with asyncio.timeout(5), held(store, "digest:x", 0.3) as mine:
        assert mine
        async with held(store, "digest:x", 0.3) as theirs:
            assert not theirs
        await asyncio.sleep(0.45)  # past the ttl: only renewals keep it
        assert store.renewals >= 2
        assert not await store.acquire("digest:x", "someone else", 1)
    renewals = store.renewals
    assert await store.acquire("digest:x", "someone else", 1)
    await asyncio.sleep(0.2)
    assert store.renewals == renewals


async def test_leaving_the_block_mid_renewal_does_not_hang() -> None:
    store = SwallowingStore()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(2):
        async with held(store, "channel:x", 0.3):
            await store.in_renewal.wait()  # leave while a renewal is running
    assert loop.time() - started < 1  # not let go only when the timeout cut in
    assert await store.acquire("channel:x", "next", 1)


async def test_a_lock_the_block_takes_is_renewed_and_let_go_like_one_taken_here() -> None:
    store = SwallowingStore()
    async with asyncio.timeout(5), held(store, "channel:y", 0.3, taken_by_block=True) as hold:
        assert not hold
        await asyncio.sleep(0.15)
        assert store.renewals == 0, "nothing to renew before the block takes it"
        assert await store.acquire("channel:y", hold.owner, 0.3)
        hold.taken = True
        await asyncio.sleep(0.45)  # past the ttl: only renewals keep it
        assert store.renewals >= 1
        assert not await store.acquire("channel:y", "someone else", 1)
    assert await store.acquire("channel:y", "someone else", 1), "let go at the end"


async def test_a_lock_the_block_did_not_take_is_not_let_go() -> None:
    store = MemoryStore()
    assert await store.acquire("channel:z", "them", 5)
    async with held(store, "channel:z", 5, taken_by_block=True) as hold:
        assert not hold
    assert not await store.acquire("channel:z", "me", 5), "still theirs"
