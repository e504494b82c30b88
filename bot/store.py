"""State that outlives a run: seen papers, chat subscriptions, recent papers per keyword.

Two twins with one contract: `RedisStore` for real runs and `MemoryStore` for
`--dry-run` and `memory://`. Every Redis key and its retention is listed in README.md.

`RedisStore` works on a single Redis server and on a Redis Cluster alike: what one command,
transaction or script touches shares a hash tag (`{platform:channel}`, `{kwhash}`) or is a
single key, so it stays within one hash slot; only `listing_days` and `save_recent` span
slots, in non-transactional pipelines that the cluster client splits per node.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.driver_info import DriverInfo
from redis.exceptions import OutOfMemoryError, RedisClusterException, RedisError, ResponseError

from bot import __version__, metrics
from bot.alerts import AlertState, MemoryAlerts, RedisAlerts
from bot.batching import Batcher
from bot.keywords import normalize
from bot.models import Channel, Paper, newest_first, utcnow
from bot.ranking import Taste
from bot.signals import MemorySignals, RedisSignals, Signals, taste_from

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """Redis cannot be reached; the message says where."""


POOL_SIZE = 100
"""Connections to a single Redis server. A command finds one free or waits for one (up to
POOL_WAIT seconds): each is held for one round trip, so a digest of `CHANNEL_CONCURRENCY`
channels and a burst of slash commands share them, where a connection for every channel in
flight cost a tenth of a 1000-channel digest's CPU in opening them (measured; BENCHMARKS.md
figure 2) and 500 file descriptors."""
POOL_WAIT = 10.0

MAX_CONNECTIONS = 1024
"""Connections per node on a Redis Cluster, whose client has no waiting pool: it refuses the
command after the last one at once ("Too many connections"), so this is above what a digest
and a burst of slash commands use together."""

STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, StoreUnavailable)
"""What a store call raises while Redis is away (redis-py wraps socket errors in these; its
cluster client raises `RedisClusterException`s, e.g. while a slot has no master)."""

Client = aioredis.Redis | RedisCluster
"""A plain client for one Redis server, or the cluster client for a Redis Cluster."""


CACHE_HEADROOM = 0.1
"""Share of Redis's `maxmemory` kept for delivery state: caches (recent lists, the papers
remembered for buttons) are not written above 90 % of it, so the small writes that keep a
paper from being posted twice (seen ids, locks) still fit."""

OOM_REMEMBERED = 600.0
"""Seconds `/healthz` says "out of memory" after Redis last refused a write for memory."""


@dataclass(frozen=True, slots=True)
class Memory:
    """What Redis says of its memory (`INFO memory`); zeros when it won't say."""

    used: int = 0
    """Bytes in use (`used_memory`)."""
    limit: int = 0
    """`maxmemory` in bytes; 0: no limit."""
    refused: bool = False
    """Redis refused a write for memory (`OutOfMemoryError`) in the last `OOM_REMEMBERED`
    seconds."""

    @property
    def full(self) -> bool:
        """Redis refuses writes (`maxmemory` reached), or did so lately."""
        return self.refused or (self.limit > 0 and self.used >= self.limit)

    @property
    def caches_fit(self) -> bool:
        """Caches may be written: below `1 - CACHE_HEADROOM` of the limit."""
        return not self.full and (not self.limit or self.used < self.limit * (1 - CACHE_HEADROOM))


class AddResult(Enum):
    ADDED = "added"
    EXISTS = "exists"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class ChannelState:
    """What a digest reads of one channel before it posts there, in one round trip."""

    options: dict[str, bool]
    """Options set from chat (`channel_options`)."""
    unseen: set[str]
    """Of the ids asked about, those the channel has not received (`unseen`)."""
    baselined: set[str]
    """Of the keywords asked about, those whose first run is done (`baselined`)."""
    resumed: bool = False
    """With `attempt`: a run read the channel to post that day before (`begin_delivery`)."""
    taste: Taste = field(default_factory=Taste)
    """With `taste`: what the channel voted for (`signals.taste`)."""
    locked: bool = True
    """With `lock`: whether its owner holds it now. False: another owner does, and the
    `attempt` was not noted."""
    held: dict[str, frozenset[str]] = field(default_factory=dict)
    """With `keywords`: per keyword asked about (normalized) that `/papers add` added lately,
    the seen keys of the papers its preview showed (`Hold`), while the hold lasts."""


@dataclass(frozen=True, slots=True)
class Hold:
    """The papers a keyword's `/papers add` preview showed: the digest doesn't post them for
    that keyword (the flood guard), but still does for the channel's other keywords."""

    keys: Sequence[str]
    """Their seen keys (`bot.digest.seen_keys`)."""
    kept: timedelta
    """How long they are held."""

    def to_json(self, now: datetime) -> str:
        return json.dumps({"until": (now + self.kept).timestamp(), "keys": list(self.keys)})


def _holds(
    raw: Mapping[str, str], keywords: Iterable[str], now: datetime
) -> dict[str, frozenset[str]]:
    """The unexpired holds of `keywords` (normalized) among a channel's `raw` ones."""
    found: dict[str, frozenset[str]] = {}
    for name in {normalize(k) for k in keywords} & raw.keys():
        data = json.loads(raw[name])
        if data["until"] > now.timestamp():
            found[name] = frozenset(data["keys"])
    return found


class LockClaim(NamedTuple):
    """A lock to take (or keep, when its owner holds it already) for `ttl` seconds."""

    name: str
    owner: str
    ttl: float


@dataclass(frozen=True, slots=True)
class ChatSubscription:
    keyword: str
    added_by: str
    added_at: datetime


class Opener(NamedTuple):
    """Who brought the bot to a channel (its first chat keyword) and in which workspace or
    server: what the per-member and per-space channel budgets count."""

    member: str
    space: str


GONE_KEPT = timedelta(days=30)
"""How long the failure counts of gone channels (`note_gone`) outlive their last failure."""


class Store(Protocol):
    @property
    def signals(self) -> Signals:
        """Votes, saved papers and each channel's taste (bot/signals.py)."""
        ...

    @property
    def alerts(self) -> AlertState:
        """Who saved which paper, and who wants no alerts about them (bot/alerts.py)."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    async def eviction_policy(self) -> str | None: ...
    async def memory(self) -> Memory: ...
    def refused_for_memory(self) -> None: ...

    async def unseen(self, channel: Channel, ids: Sequence[str]) -> set[str]: ...
    async def mark_seen(self, channel: Channel, ids: Iterable[str]) -> None: ...
    async def add_seen(self, channel: Channel, ids: Iterable[str]) -> None: ...

    async def add_subscription(
        self, channel: Channel, keyword: str, *, added_by: str, cap: int, hold: Hold | None = None
    ) -> AddResult: ...
    async def remove_subscription(self, channel: Channel, keyword: str) -> bool: ...
    async def followed(self, keyword: str) -> bool: ...
    async def forget_keyword(self, keyword: str) -> None: ...
    async def subscriptions(self, channel: Channel) -> list[ChatSubscription]: ...
    async def subscribed_channels(self) -> list[Channel]: ...

    async def save_recent(self, papers: Mapping[str, Sequence[Paper]], cap: int) -> None: ...
    async def recent(self, keyword: str, n: int) -> list[Paper]: ...
    async def last_fetched(self, keywords: Sequence[str]) -> dict[str, datetime | None]: ...
    async def answer(self, keywords: Sequence[str]) -> list[Paper] | None: ...
    async def keep_answer(
        self, keywords: Sequence[str], papers: Sequence[Paper], ttl: float
    ) -> None: ...
    async def set_fetched(self, keywords: Iterable[str], when: datetime) -> None: ...

    async def baselined(self, channel: Channel, keywords: Sequence[str]) -> set[str]: ...
    async def channel_state(
        self,
        channel: Channel,
        ids: Sequence[str],
        keywords: Sequence[str] = (),
        attempt: date | None = None,
        taste: bool = False,
        lock: LockClaim | None = None,
    ) -> ChannelState: ...
    async def set_baselined(self, channel: Channel, keywords: Iterable[str]) -> None: ...

    async def listing_days(self, channels: Sequence[Channel]) -> dict[Channel, date | None]: ...
    async def set_listing_day(self, channel: Channel, day: date) -> None: ...
    async def listing_memory(self, feed: str) -> str | None: ...
    async def set_listing_memory(self, feed: str, memory: str) -> None: ...
    async def finish(
        self,
        channel: Channel,
        seen: Iterable[str],
        baselined: Iterable[str],
        day: date | None,
        lock: tuple[str, str] | None = None,
    ) -> None: ...
    async def begin_delivery(self, channel: Channel, day: date) -> bool: ...

    async def channel_options(self, channel: Channel) -> dict[str, bool]: ...
    async def set_opener(self, channel: Channel, member: str, space: str) -> None: ...
    async def openers(self, platform: str) -> dict[Channel, Opener]: ...
    async def gone_counts(self, channels: Sequence[Channel]) -> dict[Channel, int]: ...
    async def note_gone(self, channel: Channel, day: date) -> int: ...
    async def forget_gone(self, channels: Sequence[Channel]) -> None: ...
    async def drop_channel(self, channel: Channel) -> None: ...
    async def set_channel_option(self, channel: Channel, name: str, value: bool) -> None: ...

    async def hit(self, name: str, window: float) -> int: ...

    async def next_start(self, name: str, interval: float, urgent: bool = False) -> float: ...

    async def acquire(self, name: str, owner: str, ttl: float) -> bool: ...
    async def acquire_many(self, names: Sequence[str], owner: str, ttl: float) -> list[bool]: ...
    async def renew(self, name: str, owner: str, ttl: float) -> bool: ...
    async def release(self, name: str, owner: str) -> None: ...
    async def is_done(self, name: str) -> bool: ...
    async def mark_done(self, name: str, ttl: float) -> None: ...


async def write_cache(store: Store, what: str, write: Callable[[], Awaitable[None]]) -> bool:
    """A cache write (recent lists, the papers remembered for buttons) that never fails its
    caller: skipped while Redis is near its `maxmemory` (`Memory.caches_fit`), logged when
    Redis refuses it. True when it was written."""
    try:
        memory = await store.memory()
        if not memory.caches_fit:
            log.warning(
                "cache_skipped what=%s used=%d maxmemory=%d: Redis is near its memory limit; "
                "what keeps papers from doubling goes first",
                what,
                memory.used,
                memory.limit,
            )
            return False
        await write()
    except OutOfMemoryError as err:
        store.refused_for_memory()
        log.error("redis_out_of_memory what=%s error=%r: the cache is not written", what, str(err))
        return False
    except STORE_ERRORS as err:
        log.warning("cache_not_written what=%s error=%r", what, str(err))
        return False
    return True


def _policy_in(answer: Mapping[Any, Any]) -> str | None:
    """`maxmemory-policy` in CONFIG GET's answer (a cluster client's: one per node)."""
    for name, value in answer.items():
        if isinstance(value, Mapping):
            if (policy := _policy_in(value)) is not None:
                return policy
        elif _text(name) == "maxmemory-policy":
            return _text(value)
    return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _keyword_tag(keyword: str) -> str:
    return hashlib.sha1(normalize(keyword).encode()).hexdigest()[:16]


def _keywords_tag(keywords: Sequence[str]) -> str:
    """One name for a set of keywords, whatever their order and spelling."""
    names = "\n".join(sorted({normalize(k) for k in keywords}))
    return hashlib.sha1(names.encode()).hexdigest()[:16]


# Adds a keyword to a channel unless it is there already or the channel is at its cap
# (KEYS: subs, baseline, held; ARGV: keyword, record, cap, held JSON or '', seconds held);
# with a hold, once added, its first run is done and its preview's papers are held, at once.
_ADD_SUBSCRIPTION = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'exists' end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 'full' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then
    redis.call('SADD', KEYS[2], ARGV[1])
    redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
    if redis.call('TTL', KEYS[3]) < tonumber(ARGV[5]) then
        redis.call('EXPIRE', KEYS[3], ARGV[5])
    end
end
return 'added'
"""


# Adds papers to one keyword's recent list (ARGV: cap, seconds kept, then id, score, JSON
# per paper), drops the oldest beyond the cap from the ids and the details alike, and
# keeps both keys for another ARGV[2] seconds.
_SAVE_RECENT = """
local scored, details = {}, {}
local function flush()
    if #scored > 0 then
        redis.call('ZADD', KEYS[1], unpack(scored))
        redis.call('HSET', KEYS[2], unpack(details))
        scored, details = {}, {}
    end
end
for i = 3, #ARGV, 3 do
    table.insert(scored, ARGV[i + 1])
    table.insert(scored, ARGV[i])
    table.insert(details, ARGV[i])
    table.insert(details, ARGV[i + 2])
    if #scored >= 1000 then flush() end
end
flush()
local dropped = redis.call('ZRANGE', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
if #dropped > 0 then
    redis.call('ZREM', KEYS[1], unpack(dropped))
    redis.call('HDEL', KEYS[2], unpack(dropped))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return #dropped
"""
ATTEMPT_KEPT = timedelta(days=2)
"""A channel's last delivery attempt matters on its day only."""
RECENT_KEPT = timedelta(days=30)
"""A keyword's recent list outlives its last fetch by this long (then nobody follows it)."""
FETCHED_KEPT = timedelta(days=60)
LISTING_MEMORY_KEPT = timedelta(days=30)
"""How long the last listing received is remembered per feed (its versioned ids, split and
ETags, tens of kB): a bot stopped longer judges the next listing fresh without it."""
"""Fetch times older than the longest window are forgotten: such a keyword is new again."""
SAVE_RECENT_BATCH = 50
"""Keywords whose recent lists go to Redis in one round trip."""


# Books the next start of a request paced `interval` ms apart for every replica (KEYS[1]
# holds the earliest next start, in ms of Redis's clock): 0 when booked now, otherwise the
# ms to wait before asking again. Urgent work (ARGV[2] = '1', the digest's) that has to wait
# sets KEYS[2] until half an interval past the slot it waits for: until then the others
# (commands) are told to wait, so the slot goes to it.
_NEXT_START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
if ARGV[2] == '1' then
    if free > now then
        redis.call('SET', KEYS[2], '1', 'PX', free - now + math.max(math.floor(interval / 2), 1))
        return free - now
    end
else
    local urgent = redis.call('PTTL', KEYS[2])
    if urgent > 0 or free > now then return math.max(urgent, free - now) end
end
redis.call('SET', KEYS[1], now + interval, 'PX', math.max(interval, 1))
return 0
"""


# Extends or deletes a lock only for the replica that holds it.
_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Takes a channel's lock (KEYS[1]) for ARGV[1] (or keeps it, when it holds it) for ARGV[2] ms;
# holding it, notes the day's delivery attempt (KEYS[2]: ARGV[3] unless empty, for ARGV[4]
# seconds). Returns {1, the attempt noted before} or {0} when another owner holds the lock.
_TAKE_CHANNEL = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] == '' then return {1} end
return {1, redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4], 'GET')}
"""
# The end of a channel's run, at once (KEYS: seen, baseline, listing day, the lock if any;
# ARGV: now, oldest score kept, seconds kept, the day or '', the lock's owner or '', the
# number n of seen ids, the n ids, then the keywords whose first run is done).
_FINISH = """
local now, n = ARGV[1], tonumber(ARGV[6])
for first = 7, 6 + n, 500 do
    local scored = {}
    for i = first, math.min(first + 499, 6 + n) do
        table.insert(scored, now)
        table.insert(scored, ARGV[i])
    end
    redis.call('ZADD', KEYS[1], unpack(scored))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if #ARGV > 6 + n then redis.call('SADD', KEYS[2], unpack(ARGV, 7 + n)) end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[3]) end
if KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
"""
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# `acquire` for each of KEYS (owner ARGV[1], ARGV[2] ms): 1 where it was taken, else 0.
# On a single server only; a cluster's keys lie in several slots.
_ACQUIRE_MANY = """
local taken = {}
for i, key in ipairs(KEYS) do
    taken[i] = redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
end
return taken
"""


class RedisStore:
    def __init__(
        self,
        client: Client,
        *,
        prefix: str = "papers-bot",
        seen_retention: timedelta = timedelta(days=90),
        clock: Clock = utcnow,
    ) -> None:
        self._p = prefix
        self._retention = seen_retention
        self._clock = clock
        self._use(client)
        self._unchecked_url: str | None = None
        """Set by `from_url` until the server said whether it is a cluster node."""
        self._oom_at = -OOM_REMEMBERED
        self._checking = asyncio.Lock()
        self.signals = RedisSignals(self._client, prefix, clock=clock)
        self.alerts = RedisAlerts(self._client, prefix)
        self.batch = Batcher(self._client)
        """What a digest reads and writes per channel goes through it: concurrent channels
        share pipelines."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """A store on the Redis at `url`: a single server, or any node of a Redis Cluster.

        Which of the two is asked on first use (`INFO cluster`); a cluster node makes the
        store switch to redis-py's cluster client, which finds the other nodes itself. Until
        the question got an answer (Redis may be down at start-up) every call asks again."""
        pool = _CountedPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT, **_client_options()
        )
        client = aioredis.Redis(connection_pool=pool)
        client.auto_close_connection_pool = True  # closed with the client, as from_url's
        store = cls(client, **kwargs)
        store._unchecked_url = url
        return store

    def _use(self, client: Client) -> None:
        self._r: Client = client
        self._add_script = client.register_script(_ADD_SUBSCRIPTION)
        self._next_start_script = client.register_script(_NEXT_START)
        self._renew_script = client.register_script(_RENEW_LOCK)
        self._release_script = client.register_script(_RELEASE_LOCK)

    async def _client(self) -> Client:
        """The client to send commands with, once `from_url`'s server said what it is."""
        if self._unchecked_url is not None:
            async with self._checking:
                if self._unchecked_url is not None:
                    await self._check_for_cluster(self._unchecked_url)
                    self._unchecked_url = None
        return self._r

    async def _check_for_cluster(self, url: str) -> None:
        try:
            info = await self._r.info("cluster")
        except ResponseError:  # a proxy or server that won't tell: a single server
            return
        if not info.get("cluster_enabled"):
            return
        try:
            cluster = RedisCluster.from_url(
                url, max_connections=MAX_CONNECTIONS, **_client_options()
            )
        except RedisClusterException as err:  # e.g. a database other than 0 in the URL
            raise StoreUnavailable(f"a Redis Cluster node: {err}") from None
        # Nodes and slots are learnt here, before commands come in at once: redis-py 8.1's
        # cluster client fails some of many concurrent first commands otherwise
        # (`'NoneType' object has no attribute 'writelines'`; tests/test_cluster.py).
        await cluster.initialize()
        single = self._r
        self._use(cluster)
        await single.aclose()

    # keys -----------------------------------------------------------------
    def _seen(self, channel: Channel) -> str:
        return f"{self._p}:seen:{{{channel.key}}}"

    def _subs(self, channel: Channel) -> str:
        return f"{self._p}:subs:{{{channel.key}}}"

    def _baseline(self, channel: Channel) -> str:
        return f"{self._p}:baseline:{{{channel.key}}}"

    def _attempt(self, channel: Channel) -> str:
        return f"{self._p}:attempt:{{{channel.key}}}"

    def _held(self, channel: Channel) -> str:
        return f"{self._p}:held:{{{channel.key}}}"

    def _day(self, channel: Channel) -> str:
        return f"{self._p}:day:{{{channel.key}}}"

    def _answer(self, keywords: Sequence[str]) -> str:
        return f"{self._p}:answer:{_keywords_tag(keywords)}"

    def _recent_ids(self, keyword: str) -> str:
        return f"{self._p}:recent:{{{_keyword_tag(keyword)}}}"

    def _recent_papers(self, keyword: str) -> str:
        return f"{self._p}:recent:{{{_keyword_tag(keyword)}}}:papers"

    def _options(self, channel: Channel) -> str:
        return f"{self._p}:options:{{{channel.key}}}"

    def _lock(self, name: str) -> str:
        return f"{self._p}:lock:{name}"

    def _listing(self, feed: str) -> str:
        return f"{self._p}:listing:{feed}"

    def _done(self, name: str) -> str:
        return f"{self._p}:done:{name}"

    @property
    def _channels(self) -> str:
        return f"{self._p}:channels"

    @property
    def _fetched(self) -> str:
        return f"{self._p}:fetched"

    @property
    def _openers(self) -> str:
        return f"{self._p}:openers"

    @property
    def _gone(self) -> str:
        return f"{self._p}:gone"

    # ---------------------------------------------------------------------
    async def ping(self) -> None:
        try:
            r = await self._client()
            await r.ping()
        except (RedisError, RedisClusterException, OSError) as err:
            raise StoreUnavailable(f"cannot reach Redis: {err}") from None

    async def close(self) -> None:
        await self._r.aclose()

    async def eviction_policy(self) -> str | None:
        """The server's `maxmemory-policy`; None when it won't say (CONFIG disabled, as on
        some managed Redis)."""
        r = await self._client()
        try:
            found = await r.config_get("maxmemory-policy")
        except ResponseError:
            return None
        return _policy_in(found)

    async def memory(self) -> Memory:
        """`INFO memory` of a single server (a cluster's nodes each have their own: zeros)."""
        refused = time.monotonic() - self._oom_at < OOM_REMEMBERED
        r = await self._client()
        if isinstance(r, RedisCluster):
            return Memory(refused=refused)
        try:
            info = await r.info("memory")
        except ResponseError:
            return Memory(refused=refused)
        return Memory(int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)), refused)

    def refused_for_memory(self) -> None:
        """Notes that Redis refused a write for memory just now (`memory().refused`)."""
        self._oom_at = time.monotonic()

    async def unseen(self, channel: Channel, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        r = await self._client()
        scores = await r.zmscore(self._seen(channel), list(ids))
        return {pid for pid, score in zip(ids, scores, strict=True) if score is None}

    async def mark_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        await self.finish(channel, ids, (), None)

    async def add_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        """`mark_seen` for one posted message: the members and the key's expiry, without the
        trim of old members (the channel's `finish` or next `mark_seen` does it)."""
        members = {pid: self._clock().timestamp() for pid in ids}
        if not members:
            return
        key = self._seen(channel)
        kept = int(self._retention.total_seconds())

        def queue(pipe: Any) -> None:
            pipe.zadd(key, members)
            pipe.expire(key, kept)

        await self.batch.send(queue)

    async def finish(
        self,
        channel: Channel,
        seen: Iterable[str],
        baselined: Iterable[str],
        day: date | None,
        lock: tuple[str, str] | None = None,
    ) -> None:
        """The end of a channel's run in one round trip: papers to count as seen (and those
        older than the retention forgotten), keywords whose first run is done, the listing
        day it received in full, and with `lock` (name, owner) the channel's lock let go."""
        now = self._clock()
        ids = list(dict.fromkeys(seen))
        names = [normalize(k) for k in baselined]
        keys = [self._seen(channel), self._baseline(channel), self._day(channel)]
        if lock is not None:
            keys.append(self._lock(lock[0]))
        args = [
            now.timestamp(),
            (now - self._retention).timestamp(),
            int(self._retention.total_seconds()),
            "" if day is None else day.isoformat(),
            "" if lock is None else lock[1],
            len(ids),
            *ids,
            *names,
        ]
        await self.batch.send(lambda pipe: pipe.eval(_FINISH, len(keys), *keys, *args))

    async def add_subscription(
        self, channel: Channel, keyword: str, *, added_by: str, cap: int, hold: Hold | None = None
    ) -> AddResult:
        """Adds the keyword unless the channel follows it or is at `cap`; with `hold`, in the
        same script, its first run counts as done and the hold's papers are held for it.
        Nothing is written when it is refused."""
        now = self._clock()
        record = json.dumps({"keyword": keyword, "added_by": added_by, "added_at": now.isoformat()})
        held = "" if hold is None else hold.to_json(now)
        kept = 1 if hold is None else max(1, int(hold.kept.total_seconds()))
        r = await self._client()
        keys = [self._subs(channel), self._baseline(channel), self._held(channel)]
        result = await self._add_script(
            keys=keys, args=[normalize(keyword), record, cap, held, kept], client=r
        )
        if result == AddResult.ADDED.value:
            await r.sadd(self._channels, channel.key)
        return AddResult(result)

    async def remove_subscription(self, channel: Channel, keyword: str) -> bool:
        """Also forgets the keyword's first run and hold in the channel, and the channel once
        it follows nothing from chat (unless an `add` came in between)."""
        subs = self._subs(channel)
        r = await self._client()
        async with r.pipeline(transaction=True) as pipe:
            pipe.hdel(subs, normalize(keyword))
            pipe.srem(self._baseline(channel), normalize(keyword))
            pipe.hdel(self._held(channel), normalize(keyword))
            pipe.hlen(subs)
            removed, _, _, left = await pipe.execute()
        if removed and not left:
            await r.srem(self._channels, channel.key)
            if await r.hlen(subs):
                await r.sadd(self._channels, channel.key)
            else:  # nothing followed: the channel no longer counts in anyone's budget
                await r.hdel(self._openers, channel.key)
        return bool(removed)

    async def followed(self, keyword: str) -> bool:
        """Whether any channel follows the keyword from chat (one round trip per node)."""
        channels = await self.subscribed_channels()
        if not channels:
            return False
        r = await self._client()
        async with r.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.hexists(self._subs(channel), normalize(keyword))
            return any(await pipe.execute())

    async def forget_keyword(self, keyword: str) -> None:
        """Drops the keyword's caches (recent list, last fetch): nobody follows it any more.
        A later `recent` or `add` asks arXiv again."""
        r = await self._client()
        await r.delete(self._recent_ids(keyword), self._recent_papers(keyword))
        await r.zrem(self._fetched, normalize(keyword))

    async def subscriptions(self, channel: Channel) -> list[ChatSubscription]:
        r = await self._client()
        raw = await r.hgetall(self._subs(channel))
        return _sorted_subscriptions(_text(v) for v in raw.values())

    async def subscribed_channels(self) -> list[Channel]:
        r = await self._client()
        keys = await r.smembers(self._channels)
        channels = []
        for key in sorted(_text(k) for k in keys):
            platform, _, channel_id = key.partition(":")
            channels.append(Channel(platform, channel_id))
        return channels

    async def save_recent(self, papers: Mapping[str, Sequence[Paper]], cap: int) -> None:
        """Keep each keyword's latest `cap` papers, for `RECENT_KEPT` after this fetch (also
        when it found none): one script per keyword (its two keys share a hash tag),
        `SAVE_RECENT_BATCH` keywords a round trip (one per node on a cluster). The script
        goes whole with each call (EVAL): a cluster pipeline refuses EVALSHA, as a node may
        lack the script."""
        r = await self._client()
        pending = list(papers.items())
        kept = int(RECENT_KEPT.total_seconds())
        for start in range(0, len(pending), SAVE_RECENT_BATCH):
            async with r.pipeline(transaction=False) as pipe:
                for keyword, found in pending[start : start + SAVE_RECENT_BATCH]:
                    args: list[str | int | float] = [cap, kept]
                    for p in newest_first(list(found))[:cap]:  # the rest would be dropped
                        args += [p.id, p.published.timestamp(), p.to_json()]
                    keys = [self._recent_ids(keyword), self._recent_papers(keyword)]
                    pipe.eval(_SAVE_RECENT, len(keys), *keys, *args)
                await pipe.execute()

    async def recent(self, keyword: str, n: int) -> list[Paper]:
        r = await self._client()
        found = await r.zrange(self._recent_ids(keyword), 0, n - 1, desc=True)
        ids = [_text(i) for i in found if isinstance(i, str | bytes)]
        if not ids:
            return []
        raw = await r.hmget(self._recent_papers(keyword), ids)
        return newest_first([Paper.from_json(text) for text in raw if text is not None])

    async def last_fetched(self, keywords: Sequence[str]) -> dict[str, datetime | None]:
        if not keywords:
            return {}
        r = await self._client()
        scores = await r.zmscore(self._fetched, [normalize(k) for k in keywords])
        return {
            k: None if score is None else datetime.fromtimestamp(score, UTC)
            for k, score in zip(keywords, scores, strict=True)
        }

    async def set_fetched(self, keywords: Iterable[str], when: datetime) -> None:
        names = [normalize(k) for k in keywords]
        if not names:
            return
        r = await self._client()
        async with r.pipeline(transaction=True) as pipe:
            pipe.zadd(self._fetched, dict.fromkeys(names, when.timestamp()))
            pipe.zremrangebyscore(self._fetched, "-inf", (when - FETCHED_KEPT).timestamp())
            await pipe.execute()

    async def baselined(self, channel: Channel, keywords: Sequence[str]) -> set[str]:
        if not keywords:
            return set()
        r = await self._client()
        flags = await r.smismember(self._baseline(channel), [normalize(k) for k in keywords])
        return {k for k, flag in zip(keywords, flags, strict=True) if flag}

    async def channel_state(
        self,
        channel: Channel,
        ids: Sequence[str],
        keywords: Sequence[str] = (),
        attempt: date | None = None,
        taste: bool = False,
        lock: LockClaim | None = None,
    ) -> ChannelState:
        """`channel_options`, `unseen`, `baselined` and, with `attempt`, `begin_delivery`,
        and with `taste`, `signals.taste`, in one round trip (one hash slot). With `lock` (a
        lock whose name has the channel's hash tag) it is taken first, in the same round trip,
        and the `attempt` is noted only when it was."""

        def queue(pipe: Any) -> None:
            if lock is not None:
                keys = (self._lock(lock.name), self._attempt(channel))
                day = "" if attempt is None else attempt.isoformat()
                kept = int(ATTEMPT_KEPT.total_seconds())
                pipe.eval(_TAKE_CHANNEL, 2, *keys, lock.owner, _ms(lock.ttl), day, kept)
            elif attempt is not None:
                pipe.set(self._attempt(channel), attempt.isoformat(), ex=ATTEMPT_KEPT, get=True)
            pipe.hgetall(self._options(channel))
            if ids:
                pipe.zmscore(self._seen(channel), list(ids))
            if keywords:
                pipe.smismember(self._baseline(channel), [normalize(k) for k in keywords])
                pipe.hgetall(self._held(channel))
            if taste:
                self.signals.queue_taste(pipe, channel)

        answers = await self.batch.send(queue)
        locked, before = True, None
        if lock is not None:
            taken = answers.pop(0)
            locked, before = bool(taken[0]), taken[1] if len(taken) > 1 else None
        elif attempt is not None:
            before = answers.pop(0)
        options = answers.pop(0)
        scores = answers.pop(0) if ids else []
        flags = answers.pop(0) if keywords else []
        held = _holds(answers.pop(0), keywords, self._clock()) if keywords else {}
        return ChannelState(
            options={_text(k): _text(v) == "1" for k, v in options.items()},
            unseen={pid for pid, score in zip(ids, scores, strict=True) if score is None},
            baselined={k for k, flag in zip(keywords, flags, strict=True) if flag},
            resumed=locked and attempt is not None and _same_day(before, attempt),
            taste=taste_from(answers.pop(0)) if taste else Taste(),
            locked=locked,
            held=held,
        )

    async def set_baselined(self, channel: Channel, keywords: Iterable[str]) -> None:
        members = [normalize(k) for k in keywords]
        if members:
            r = await self._client()
            await r.sadd(self._baseline(channel), *members)

    async def listing_days(self, channels: Sequence[Channel]) -> dict[Channel, date | None]:
        """The last listing day each channel received in full (one round trip per node)."""
        r = await self._client()
        async with r.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.get(self._day(channel))
            raw = await pipe.execute()
        return {
            c: None if v is None else date.fromisoformat(_text(v))
            for c, v in zip(channels, raw, strict=True)
        }

    async def set_listing_day(self, channel: Channel, day: date) -> None:
        r = await self._client()
        await r.set(self._day(channel), day.isoformat(), ex=self._retention)

    async def listing_memory(self, feed: str) -> str | None:
        """What the last listing received from `feed` left (`bot.listing_guard`)."""
        r = await self._client()
        raw = await r.get(self._listing(feed))
        return None if raw is None else _text(raw)

    async def set_listing_memory(self, feed: str, memory: str) -> None:
        r = await self._client()
        await r.set(self._listing(feed), memory, ex=LISTING_MEMORY_KEPT)

    async def begin_delivery(self, channel: Channel, day: date) -> bool:
        """Notes that a run starts posting the channel's digest of `day`; True when one
        did before (it may have posted part of it). One round trip (SET … GET)."""
        r = await self._client()
        before = await r.set(self._attempt(channel), day.isoformat(), ex=ATTEMPT_KEPT, get=True)
        return _same_day(before, day)

    async def channel_options(self, channel: Channel) -> dict[str, bool]:
        r = await self._client()
        raw = await r.hgetall(self._options(channel))
        return {_text(k): _text(v) == "1" for k, v in raw.items()}

    async def set_channel_option(self, channel: Channel, name: str, value: bool) -> None:
        r = await self._client()
        await r.hset(self._options(channel), name, "1" if value else "0")

    # channel budgets and gone channels (issue 22) ------------------------------
    async def set_opener(self, channel: Channel, member: str, space: str) -> None:
        r = await self._client()
        await r.hset(self._openers, channel.key, json.dumps([member, space]))

    async def openers(self, platform: str) -> dict[Channel, Opener]:
        """Who opened each subscribed channel of `platform`; the records of channels that
        follow nothing any more are deleted on the way (so they stay bounded)."""
        r = await self._client()
        subscribed = {c.key: c for c in await self.subscribed_channels()}
        found: dict[Channel, Opener] = {}
        stale: list[str] = []
        for key, raw in (await r.hgetall(self._openers)).items():
            channel = subscribed.get(_text(key))
            if channel is None:
                stale.append(_text(key))
            elif channel.platform == platform:
                member, space = json.loads(_text(raw))
                found[channel] = Opener(str(member), str(space))
        if stale:
            await r.hdel(self._openers, *stale)
        return found

    async def gone_counts(self, channels: Sequence[Channel]) -> dict[Channel, int]:
        if not channels:
            return {}
        r = await self._client()
        raw = await r.hmget(self._gone, [c.key for c in channels])
        return {c: _gone_count(v) for c, v in zip(channels, raw, strict=True) if v is not None}

    async def note_gone(self, channel: Channel, day: date) -> int:
        """One more day on which the channel was gone; the days so far (one per day, however
        many runs that day saw it)."""
        r = await self._client()
        before = await r.hget(self._gone, channel.key)
        count = _gone_count(before)
        if before is None or not _text(before).startswith(day.isoformat()):
            count += 1
        async with r.pipeline(transaction=True) as pipe:
            pipe.hset(self._gone, channel.key, f"{day.isoformat()} {count}")
            pipe.expire(self._gone, int(GONE_KEPT.total_seconds()))
            await pipe.execute()
        return count

    async def forget_gone(self, channels: Sequence[Channel]) -> None:
        if channels:
            r = await self._client()
            await r.hdel(self._gone, *(c.key for c in channels))

    async def drop_channel(self, channel: Channel) -> None:
        """Forget the channel's chat subscriptions, first runs, opener and failure count."""
        r = await self._client()
        async with r.pipeline(transaction=True) as pipe:
            pipe.delete(self._subs(channel))
            pipe.delete(self._baseline(channel))
            await pipe.execute()
        await r.srem(self._channels, channel.key)
        await r.hdel(self._openers, channel.key)
        await r.hdel(self._gone, channel.key)

    async def hit(self, name: str, window: float) -> int:
        """Counts one event in a fixed window; the count so far in this window."""
        key = f"{self._p}:rate:{name}:{int(self._clock().timestamp() // window)}"
        r = await self._client()
        async with r.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, int(window) + 1)
            count, _ = await pipe.execute()
        return int(count)

    async def next_start(self, name: str, interval: float, urgent: bool = False) -> float:
        """Seconds to wait before a request paced `interval` apart across every replica may
        start; 0 means it starts now (the slot is booked). While `urgent` requests wait, the
        others wait too."""
        key = f"{self._p}:pace:{name}"
        # `{key}` hashes as `key` does: the same cluster slot, as the script needs.
        keys = [key, f"{{{key}}}:urgent"]
        args = [_ms(interval), int(urgent)]
        wait = await self._next_start_script(keys=keys, args=args, client=await self._client())
        return int(wait) / 1000

    async def answer(self, keywords: Sequence[str]) -> list[Paper] | None:
        """The papers `keep_answer` kept for this set of keywords, newest first; None when
        none are kept (never asked, or expired)."""
        r = await self._client()
        raw = await r.get(self._answer(keywords))
        if raw is None:
            return None
        return newest_first([Paper.from_json(text) for text in json.loads(raw)])

    async def keep_answer(
        self, keywords: Sequence[str], papers: Sequence[Paper], ttl: float
    ) -> None:
        """Keeps arXiv's answer for a set of keywords for `ttl` seconds (`/papers recent`)."""
        r = await self._client()
        text = json.dumps([p.to_json() for p in papers])
        await r.set(self._answer(keywords), text, px=_ms(ttl))

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        r = await self._client()
        return bool(await r.set(self._lock(name), owner, nx=True, px=_ms(ttl)))

    async def acquire_many(self, names: Sequence[str], owner: str, ttl: float) -> list[bool]:
        """`acquire` for each name, in one round trip (one per node on a cluster). A script
        on a single server: a claim costs redis-py 7 µs of CPU there, 25 µs as a command of
        a pipeline (measured, 50 names at a time); Slack commands claim their signatures
        with it before their acks."""
        if not names:
            return []
        r = await self._client()
        if not isinstance(r, RedisCluster):
            keys = [self._lock(name) for name in names]
            taken = await r.eval(_ACQUIRE_MANY, len(keys), *keys, owner, _ms(ttl))
            return [bool(t) for t in taken]
        async with r.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.set(self._lock(name), owner, nx=True, px=_ms(ttl))
            return [bool(taken) for taken in await pipe.execute()]

    async def renew(self, name: str, owner: str, ttl: float) -> bool:
        r = await self._client()
        renewed = await self._renew_script(
            keys=[self._lock(name)], args=[owner, _ms(ttl)], client=r
        )
        return bool(renewed)

    async def release(self, name: str, owner: str) -> None:
        r = await self._client()
        await self._release_script(keys=[self._lock(name)], args=[owner], client=r)

    async def is_done(self, name: str) -> bool:
        r = await self._client()
        return bool(await r.exists(self._done(name)))

    async def mark_done(self, name: str, ttl: float) -> None:
        r = await self._client()
        await r.set(self._done(name), "1", px=_ms(ttl))


def _gone_count(stored: Any) -> int:
    """The count of a `note_gone` record (`2026-11-04 2`); 0 for none."""
    if stored is None:
        return 0
    _, _, count = _text(stored).partition(" ")
    return int(count) if count.isdecimal() else 0


def _same_day(stored: Any, day: date) -> bool:
    return isinstance(stored, str | bytes) and _text(stored) == day.isoformat()


class _CountedPool(BlockingConnectionPool):
    """Counts round trips for `/metrics`: a command, or a pipeline, takes one connection.
    A Redis Cluster's are not counted (its client keeps a pool per node, of its own)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        metrics.redis_round_trip()
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


def _client_options() -> dict[str, Any]:
    """What the plain and the cluster client share."""
    return {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        # Made once per client: otherwise every new connection reads redis-py's version from
        # the package metadata (6% of a 1000-channel digest's CPU, measured).
        "driver_info": DriverInfo().add_upstream_driver("papers-bot", __version__),
    }


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _sorted_subscriptions(records: Iterable[str]) -> list[ChatSubscription]:
    subs = []
    for raw in records:
        data = json.loads(raw)
        subs.append(
            ChatSubscription(
                keyword=data["keyword"],
                added_by=data["added_by"],
                added_at=datetime.fromisoformat(data["added_at"]),
            )
        )
    return sorted(subs, key=lambda s: (s.added_at, s.keyword))


def _sorted_subscriptions_memory(subs: Iterable[ChatSubscription]) -> list[ChatSubscription]:
    return sorted(subs, key=lambda s: (s.added_at, s.keyword))


@dataclass
class MemoryStore:
    """The in-process twin of RedisStore: same behaviour, nothing survives the process."""

    seen_retention: timedelta = timedelta(days=90)
    clock: Clock = utcnow
    _seen: dict[str, dict[str, datetime]] = field(default_factory=dict)
    _subs: dict[str, dict[str, ChatSubscription]] = field(default_factory=dict)
    _recent: dict[str, dict[str, Paper]] = field(default_factory=dict)
    _fetched: dict[str, datetime] = field(default_factory=dict)
    _baseline: dict[str, set[str]] = field(default_factory=dict)
    _held: dict[str, dict[str, str]] = field(default_factory=dict)
    _options: dict[str, dict[str, bool]] = field(default_factory=dict)
    _days: dict[str, date] = field(default_factory=dict)
    _listings: dict[str, str] = field(default_factory=dict)
    _attempts: dict[str, date] = field(default_factory=dict)
    _locks: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    _hits: dict[str, int] = field(default_factory=dict)
    _done: dict[str, datetime] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict)
    _urgent: dict[str, float] = field(default_factory=dict)
    _answers: dict[str, tuple[list[Paper], datetime]] = field(default_factory=dict)
    _openers: dict[str, Opener] = field(default_factory=dict)
    _gone: dict[str, tuple[date, int]] = field(default_factory=dict)
    signals: MemorySignals = field(init=False)
    alerts: MemoryAlerts = field(default_factory=MemoryAlerts)

    def __post_init__(self) -> None:
        self.signals = MemorySignals(clock=lambda: self.clock())

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def eviction_policy(self) -> str | None:
        return "noeviction"

    async def memory(self) -> Memory:
        return Memory()

    def refused_for_memory(self) -> None:
        return None

    async def unseen(self, channel: Channel, ids: Sequence[str]) -> set[str]:
        self._expire(channel)
        seen = self._seen.get(channel.key, {})
        return {pid for pid in ids if pid not in seen}

    async def mark_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        now = self.clock()
        self._seen.setdefault(channel.key, {}).update(dict.fromkeys(ids, now))
        self._expire(channel)

    async def add_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        await self.mark_seen(channel, ids)

    def _expire(self, channel: Channel) -> None:
        cutoff = self.clock() - self.seen_retention
        seen = self._seen.get(channel.key, {})
        for pid in [pid for pid, when in seen.items() if when <= cutoff]:
            del seen[pid]

    async def add_subscription(
        self, channel: Channel, keyword: str, *, added_by: str, cap: int, hold: Hold | None = None
    ) -> AddResult:
        subs = self._subs.setdefault(channel.key, {})
        name = normalize(keyword)
        if name in subs:
            return AddResult.EXISTS
        if len(subs) >= cap:
            return AddResult.FULL
        subs[name] = ChatSubscription(keyword, added_by, self.clock())
        if hold is not None:
            self._baseline.setdefault(channel.key, set()).add(name)
            self._held.setdefault(channel.key, {})[name] = hold.to_json(self.clock())
        return AddResult.ADDED

    async def remove_subscription(self, channel: Channel, keyword: str) -> bool:
        self._baseline.get(channel.key, set()).discard(normalize(keyword))
        self._held.get(channel.key, {}).pop(normalize(keyword), None)
        removed = self._subs.get(channel.key, {}).pop(normalize(keyword), None) is not None
        if not self._subs.get(channel.key):
            self._openers.pop(channel.key, None)
        return removed

    async def followed(self, keyword: str) -> bool:
        return any(normalize(keyword) in subs for subs in self._subs.values())

    async def forget_keyword(self, keyword: str) -> None:
        self._recent.pop(normalize(keyword), None)
        self._fetched.pop(normalize(keyword), None)

    async def subscriptions(self, channel: Channel) -> list[ChatSubscription]:
        return _sorted_subscriptions_memory(self._subs.get(channel.key, {}).values())

    async def subscribed_channels(self) -> list[Channel]:
        keys = sorted(key for key, subs in self._subs.items() if subs)
        return [Channel(*key.split(":", 1)) for key in keys]

    async def save_recent(self, papers: Mapping[str, Sequence[Paper]], cap: int) -> None:
        for keyword, found in papers.items():
            kept = self._recent.setdefault(normalize(keyword), {})
            kept.update({p.id: p for p in found})
            for stale in newest_first(list(kept.values()))[cap:]:
                del kept[stale.id]

    async def recent(self, keyword: str, n: int) -> list[Paper]:
        return newest_first(list(self._recent.get(normalize(keyword), {}).values()))[:n]

    async def last_fetched(self, keywords: Sequence[str]) -> dict[str, datetime | None]:
        return {k: self._fetched.get(normalize(k)) for k in keywords}

    async def set_fetched(self, keywords: Iterable[str], when: datetime) -> None:
        self._fetched.update({normalize(k): when for k in keywords})
        for name in [n for n, at in self._fetched.items() if at <= when - FETCHED_KEPT]:
            del self._fetched[name]

    async def baselined(self, channel: Channel, keywords: Sequence[str]) -> set[str]:
        done = self._baseline.get(channel.key, set())
        return {k for k in keywords if normalize(k) in done}

    async def channel_state(
        self,
        channel: Channel,
        ids: Sequence[str],
        keywords: Sequence[str] = (),
        attempt: date | None = None,
        taste: bool = False,
        lock: LockClaim | None = None,
    ) -> ChannelState:
        locked = lock is None or self._holder(lock.name) in (None, lock.owner)
        if lock is not None and locked:
            self._locks[lock.name] = (lock.owner, self.clock() + timedelta(seconds=lock.ttl))
        return ChannelState(
            await self.channel_options(channel),
            await self.unseen(channel, ids),
            await self.baselined(channel, keywords),
            locked and attempt is not None and await self.begin_delivery(channel, attempt),
            await self.signals.taste(channel) if taste else Taste(),
            locked,
            _holds(self._held.get(channel.key, {}), keywords, self.clock()),
        )

    async def set_baselined(self, channel: Channel, keywords: Iterable[str]) -> None:
        self._baseline.setdefault(channel.key, set()).update(normalize(k) for k in keywords)

    async def listing_days(self, channels: Sequence[Channel]) -> dict[Channel, date | None]:
        return {c: self._days.get(c.key) for c in channels}

    async def set_listing_day(self, channel: Channel, day: date) -> None:
        self._days[channel.key] = day

    async def listing_memory(self, feed: str) -> str | None:
        return self._listings.get(feed)

    async def set_listing_memory(self, feed: str, memory: str) -> None:
        self._listings[feed] = memory

    async def begin_delivery(self, channel: Channel, day: date) -> bool:
        before, self._attempts[channel.key] = self._attempts.get(channel.key), day
        return before == day

    async def finish(
        self,
        channel: Channel,
        seen: Iterable[str],
        baselined: Iterable[str],
        day: date | None,
        lock: tuple[str, str] | None = None,
    ) -> None:
        await self.mark_seen(channel, seen)
        await self.set_baselined(channel, baselined)
        if day is not None:
            await self.set_listing_day(channel, day)
        if lock is not None:
            await self.release(*lock)

    async def channel_options(self, channel: Channel) -> dict[str, bool]:
        return dict(self._options.get(channel.key, {}))

    async def set_channel_option(self, channel: Channel, name: str, value: bool) -> None:
        self._options.setdefault(channel.key, {})[name] = value

    async def set_opener(self, channel: Channel, member: str, space: str) -> None:
        self._openers[channel.key] = Opener(member, space)

    async def openers(self, platform: str) -> dict[Channel, Opener]:
        subscribed = {c.key: c for c in await self.subscribed_channels()}
        for key in [k for k in self._openers if k not in subscribed]:
            del self._openers[key]
        return {
            subscribed[k]: o for k, o in self._openers.items() if subscribed[k].platform == platform
        }

    async def gone_counts(self, channels: Sequence[Channel]) -> dict[Channel, int]:
        return {c: self._gone[c.key][1] for c in channels if c.key in self._gone}

    async def note_gone(self, channel: Channel, day: date) -> int:
        last, count = self._gone.get(channel.key, (date.min, 0))
        self._gone[channel.key] = (day, count + (last != day))
        return self._gone[channel.key][1]

    async def forget_gone(self, channels: Sequence[Channel]) -> None:
        for channel in channels:
            self._gone.pop(channel.key, None)

    async def drop_channel(self, channel: Channel) -> None:
        for kept in (self._subs, self._baseline, self._openers, self._gone):
            kept.pop(channel.key, None)

    async def hit(self, name: str, window: float) -> int:
        key = f"{name}:{int(self.clock().timestamp() // window)}"
        self._hits[key] = self._hits.get(key, 0) + 1
        return self._hits[key]

    def _holder(self, name: str) -> str | None:
        held = self._locks.get(name)
        if held is None or held[1] <= self.clock():
            return None
        return held[0]

    async def next_start(self, name: str, interval: float, urgent: bool = False) -> float:
        now = time.monotonic()
        free = self._next.get(name, 0.0)
        if urgent and free > now:
            self._urgent[name] = free + interval / 2
        held = 0.0 if urgent else self._urgent.get(name, 0.0)
        if max(free, held) > now:
            return max(free, held) - now
        self._next[name] = now + interval
        return 0.0

    async def answer(self, keywords: Sequence[str]) -> list[Paper] | None:
        kept = self._answers.get(_keywords_tag(keywords))
        if kept is None or kept[1] <= self.clock():
            return None
        return newest_first(kept[0])

    async def keep_answer(
        self, keywords: Sequence[str], papers: Sequence[Paper], ttl: float
    ) -> None:
        until = self.clock() + timedelta(seconds=ttl)
        self._answers[_keywords_tag(keywords)] = (list(papers), until)

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        if self._holder(name) is not None:
            return False
        self._locks[name] = (owner, self.clock() + timedelta(seconds=ttl))
        return True

    async def acquire_many(self, names: Sequence[str], owner: str, ttl: float) -> list[bool]:
        return [await self.acquire(name, owner, ttl) for name in names]

    async def renew(self, name: str, owner: str, ttl: float) -> bool:
        if self._holder(name) != owner:
            return False
        self._locks[name] = (owner, self.clock() + timedelta(seconds=ttl))
        return True

    async def release(self, name: str, owner: str) -> None:
        if self._holder(name) == owner:
            del self._locks[name]

    async def is_done(self, name: str) -> bool:
        until = self._done.get(name)
        return until is not None and until > self.clock()

    async def mark_done(self, name: str, ttl: float) -> None:
        self._done[name] = self.clock() + timedelta(seconds=ttl)


def open_store(url: str, *, prefix: str, seen_retention: timedelta, clock: Clock = utcnow) -> Store:
    if url.startswith("memory://"):
        return MemoryStore(seen_retention=seen_retention, clock=clock)
    return RedisStore.from_url(url, prefix=prefix, seen_retention=seen_retention, clock=clock)
