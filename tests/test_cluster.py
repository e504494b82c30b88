"""The store on a real Redis Cluster (3 masters, 3 replicas on loopback, see tests/cluster.py):
`RedisStore.from_url` finds out that its URL names a cluster node, the store's contract holds
there, a digest reaches channels whose keys live on different masters, and a master handing
over (`CLUSTER FAILOVER`) or dying (SIGKILL) in the middle of a digest loses and doubles
nothing."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import date, timedelta

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner
from bot.models import Channel, Digest
from bot.publishing import Delivered
from bot.state import StoreUnavailable
from bot.state.redis import RedisStore
from tests import test_store
from tests.cluster import MASTERS, NODES, RedisCluster, running_cluster
from tests.conftest import RedisServer
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.test_digest import Recorder, settings_for
from tests.test_store import Clock

REWARD = {f"2611.{n:05d}" for n in [*range(1, 9), 30]}
DIFFUSION = {f"2611.{n:05d}" for n in [*range(20, 24), 30]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    yield from running_cluster(tmp_path_factory)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(cluster: RedisCluster, clock: Clock) -> AsyncIterator[RedisStore]:
    """A store on the cluster, through the URL of one node, with keys of its own."""
    store = RedisStore.from_url(
        cluster.url(0), prefix=_prefix(), seen_retention=timedelta(days=30), clock=clock
    )
    yield store
    await store.close()


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def channels_on_each_master(cluster: RedisCluster, per_master: int = 1) -> list[Channel]:
    """Slack channels whose keys (`P:...:{slack:ID}`) land `per_master` on each master."""
    found: dict[int, list[Channel]] = {}
    for n in range(1, 1000):
        channel = Channel("slack", f"C{n}")
        on = found.setdefault(cluster.master_of_key(f"{{{channel.key}}}"), [])
        if len(on) < per_master:
            on.append(channel)
        if len(found) == MASTERS and all(len(c) == per_master for c in found.values()):
            return [c for on_one in found.values() for c in on_one]
    raise AssertionError("the cluster's slots are not spread over every master")


# -- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("node", ["master", "replica"])
async def test_a_url_naming_any_cluster_node_gets_the_cluster_client(
    cluster: RedisCluster, node: str
) -> None:
    roles = await asyncio.to_thread(cluster.roles)
    port = next(p for p, role in roles.items() if (role == "master") == (node == "master"))
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix=_prefix())
    try:
        await store.ping()
        assert isinstance(store._r, ClusterClient)
        # Keys on every master, reached through whichever node the URL names.
        channels = channels_on_each_master(cluster)
        for channel in channels:
            await store.mark_seen(channel, ["a"])
        assert [await store.unseen(c, ["a", "b"]) for c in channels] == [{"b"}] * 3
    finally:
        await store.close()


async def test_a_single_server_keeps_the_plain_client(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, prefix=_prefix())
    try:
        await store.ping()
        assert type(store._r) is aioredis.Redis
    finally:
        await store.close()


async def test_a_cluster_url_with_another_database_says_so(cluster: RedisCluster) -> None:
    store = RedisStore.from_url(cluster.url(0).replace("/0", "/1"), prefix=_prefix())
    try:
        with pytest.raises(StoreUnavailable, match="SELECT is not allowed in cluster mode"):
            await store.ping()
    finally:
        await store.close()


async def test_hundreds_of_first_calls_at_once_share_one_check(cluster: RedisCluster) -> None:
    """The cluster client learns the nodes and slots before the calls go: redis-py 8.1
    fails some of many concurrent first commands otherwise (about half the time, hence a
    fresh store through each node)."""
    channel = Channel("slack", "C1")
    for node in range(NODES):
        store = RedisStore.from_url(cluster.url(node), prefix=_prefix())
        try:
            answers = await asyncio.gather(*(store.unseen(channel, [f"p{n}"]) for n in range(400)))
        finally:
            await store.close()
        assert answers == [{f"p{n}"} for n in range(400)]


# -- the contract ------------------------------------------------------------------------------

CONTRACT = [
    test
    for name, test in vars(test_store).items()
    if name.startswith("test_") and set(inspect.signature(test).parameters) <= {"store", "clock"}
]
"""Every test of tests/test_store.py that needs only a store (and its clock)."""


def test_the_contract_is_all_there() -> None:
    assert len(CONTRACT) >= 10, [t.__name__ for t in CONTRACT]


@pytest.mark.parametrize("contract", CONTRACT, ids=lambda test: test.__name__)
async def test_the_store_contract_holds_on_a_cluster(
    contract: Callable[..., Awaitable[None]], store: RedisStore, clock: Clock
) -> None:
    given = {"store": store, "clock": clock}
    await contract(**{name: given[name] for name in inspect.signature(contract).parameters})


async def test_every_multi_key_operation_runs_for_channels_on_every_master(
    cluster: RedisCluster, store: RedisStore
) -> None:
    """A transaction or script whose keys spanned two slots would fail with CROSSSLOT."""
    channels = channels_on_each_master(cluster, per_master=2)
    day = date(2026, 11, 24)
    for n, channel in enumerate(channels):
        await store.add_subscription(channel, "Reward Model", added_by="U1", cap=5)
        await store.finish(channel, [f"p{n}"], ["Reward Model"], day + timedelta(days=n))
        await store.set_channel_option(channel, "revisions", True)
    days = await store.listing_days(channels)  # one pipeline over every master
    assert days == {c: day + timedelta(days=n) for n, c in enumerate(channels)}
    assert await store.subscribed_channels() == sorted(channels, key=lambda c: c.key)
    for n, channel in enumerate(channels):
        assert await store.unseen(channel, [f"p{n}", "x"]) == {"x"}
        assert await store.baselined(channel, ["reward model"]) == {"reward model"}
        assert await store.channel_options(channel) == {"revisions": True}
        assert await store.remove_subscription(channel, "reward model")
        assert await store.baselined(channel, ["reward model"]) == set()
    assert await store.subscribed_channels() == []


async def test_scripts_run_on_masters_that_never_saw_them(
    cluster: RedisCluster, store: RedisStore
) -> None:
    """A node forgets its scripts when it restarts, and a promoted replica may not have them:
    the scripted operations load them again, on whichever master the key is."""
    channels = channels_on_each_master(cluster)
    assert await store.add_subscription(channels[0], "a", added_by="U1", cap=5)
    async with ClusterClient.from_url(cluster.url(0)) as admin:
        await admin.script_flush()  # on every master
    for channel in channels:
        lock = f"channel:{{{channel.key}}}"
        assert await store.add_subscription(channel, "b", added_by="U1", cap=5)
        assert await store.acquire(lock, "me", ttl=30)
        assert await store.renew(lock, "me", ttl=30)
        await store.release(lock, "me")
        assert await store.acquire(lock, "you", ttl=30)
    assert await store.next_start("arxiv", 60) == 0
    assert await store.next_start("arxiv", 60) > 59
    assert await store.next_start("arxiv", 60, urgent=True) > 59  # its two keys: one slot


# -- digests -----------------------------------------------------------------------------------


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"A reward model, part {n}") for n in range(1, 9)]
    papers += [make_paper(n, title=f"Diffusion planning {n}") for n in range(20, 24)]
    papers.append(make_paper(30, title="Reward model meets diffusion"))
    with FakeArxiv(papers) as server:
        yield server


def subscriptions(channels: Sequence[Channel]) -> dict[Channel, list[str]]:
    """Reward model, diffusion, both, then again: each channel's wanted papers differ."""
    keywords = [["reward model"], ["diffusion"], ["reward model", "diffusion"]]
    return {channel: keywords[n % 3] for n, channel in enumerate(channels)}


def wanted(keywords: Sequence[str]) -> set[str]:
    return (REWARD if "reward model" in keywords else set()) | (
        DIFFUSION if "diffusion" in keywords else set()
    )


def runner(
    arxiv: FakeArxiv, store: RedisStore, out: Recorder, clock: Clock, lock_ttl: float = 60
) -> DigestRunner:
    settings = settings_for(arxiv)
    settings.service.lock_ttl = lock_ttl
    return DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock)


def assert_each_paper_posted_once(out: Recorder, subs: dict[Channel, list[str]]) -> None:
    for channel, keywords in subs.items():
        posted = out.posted.get(channel, [])
        assert sorted(posted) == sorted(wanted(keywords)), channel  # all of them, once


async def test_a_digest_reaches_channels_on_every_master_once(
    cluster: RedisCluster, store: RedisStore, arxiv: FakeArxiv, clock: Clock
) -> None:
    subs = subscriptions(channels_on_each_master(cluster))
    out = Recorder()
    run = runner(arxiv, store, out, clock)
    first = await run.run(subs)
    assert first.ok, first.channels
    assert_each_paper_posted_once(out, subs)
    second = await run.run(subs)
    assert second.ok and second.delivered == 0
    assert_each_paper_posted_once(out, subs)


Disruption = Callable[[Channel], Awaitable[None]]


class Disrupted(Recorder):
    """Posts one paper a message, slowly enough that the digest outlasts a failover. After
    the first message to `channel`, `disrupt(channel)` runs while the other channels go on;
    then `channel` goes on too."""

    def __init__(self, channel: Channel, disrupt: Disruption, pace: float = 0.05) -> None:
        super().__init__(per_message=1)
        self.channel = channel
        self.disrupt = disrupt
        self.pace = pace
        self.disrupted = False
        self.after: list[str] = []
        """What `channel` received once the disruption was over."""

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        async def paced(ids: Sequence[str]) -> None:
            if digest.channel == self.channel and self.disrupted:
                self.after.extend(ids)
            await delivered(ids)
            if digest.channel == self.channel and not self.disrupted:
                await self.disrupt(digest.channel)
                self.disrupted = True
            await asyncio.sleep(self.pace)

        await super().publish(digest, paced)


def master_port(cluster: RedisCluster, channel: Channel) -> int:
    return cluster.master_of_key(f"{{{channel.key}}}")


async def test_a_master_failing_over_mid_digest_loses_and_doubles_nothing(
    cluster: RedisCluster, store: RedisStore, arxiv: FakeArxiv, clock: Clock
) -> None:
    """`CLUSTER FAILOVER`: the master hands its slots over to its replica. The store follows
    the MOVED answers (and reloads its scripts there) without a call failing."""
    channels = channels_on_each_master(cluster, per_master=2)
    subs = subscriptions(channels)
    promoted: list[int] = []

    async def fail_over(channel: Channel) -> None:
        master = await asyncio.to_thread(master_port, cluster, channel)
        replica = await asyncio.to_thread(cluster.replica_of, master)
        await asyncio.to_thread(cluster.fail_over, replica)
        promoted.append(replica)

    out = Disrupted(channels[0], fail_over)
    run = runner(arxiv, store, out, clock)
    try:
        first = await run.run(subs)
        second = await run.run(subs)
    finally:
        await asyncio.to_thread(cluster.wait_until_ok)  # whole again for the next tests
    assert master_port(cluster, channels[0]) == promoted[0]  # the channel's keys moved
    assert out.after  # and it went on posting, recorded on the new master
    assert first.ok, first.channels
    assert second.ok and second.delivered == 0
    assert_each_paper_posted_once(out, subs)


async def test_a_master_killed_mid_digest_loses_and_doubles_nothing(
    cluster: RedisCluster, store: RedisStore, arxiv: FakeArxiv, clock: Clock
) -> None:
    """SIGKILL: no handover. Until the other masters agree it failed (the node timeout, 2 s
    here) and its replica is elected, its slots have no master: a posted message's seen
    mark is retried (`MARK_RETRY`), a channel whose other calls fail waits for the next
    run, which catches it up."""
    channels = channels_on_each_master(cluster, per_master=2)
    subs = subscriptions(channels)
    killed: list[int] = []

    async def kill(channel: Channel) -> None:
        master = await asyncio.to_thread(master_port, cluster, channel)
        replica = await asyncio.to_thread(cluster.replica_of, master)
        await asyncio.to_thread(cluster.crash, master)
        killed.append(master)
        await asyncio.to_thread(cluster.wait_for_master, replica)

    out = Disrupted(channels[0], kill)
    # A channel lock on the dead master can't be renewed or released: a short TTL keeps the
    # next run from waiting it out.
    run = runner(arxiv, store, out, clock, lock_ttl=1)
    try:
        reports = [await run.run(subs), await run.run(subs)]
        if not reports[0].ok:  # the second caught up: the third has nothing left
            reports.append(await run.run(subs))
    finally:
        if killed:
            await asyncio.to_thread(cluster.restart, killed[0])
        await asyncio.to_thread(cluster.wait_until_ok)
    assert out.after
    assert reports[-1].ok and reports[-1].delivered == 0
    assert_each_paper_posted_once(out, subs)
