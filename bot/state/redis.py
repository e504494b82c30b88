"""`RedisStore`: the `Store` on Redis, a single server or a Redis Cluster alike.

What one command, transaction or script touches shares a hash tag (`bot.state.keys`) or is a
single key, so it stays within one hash slot; only `listing_days` and `save_recent` span
slots, in non-transactional pipelines that the cluster client splits per node. Its votes and
saved papers (`signals`) and alert state (`alerts`) are in `bot.state.redis_signals`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from bot.keywords import normalize
from bot.models import Channel, Paper, newest_first, utcnow
from bot.ranking import Taste
from bot.state import (
    OOM_REMEMBERED,
    AddResult,
    ChannelState,
    ChatSubscription,
    Clock,
    LockClaim,
    Memory,
    Opener,
    PreviewHold,
    StoreUnavailable,
    limits,
    scripts,
)
from bot.state.batching import Batcher
from bot.state.codec import (
    gone_count,
    holds,
    ms,
    policy_in,
    same_day,
    sorted_subscriptions,
    subscription,
    taste_from_script,
    text,
)
from bot.state.connection import Client, Connection
from bot.state.keys import Keys
from bot.state.redis_locks import RedisLocks
from bot.state.redis_signals import RedisAlerts, RedisSignals


class RedisStore(RedisLocks):
    def __init__(
        self,
        client: Client | Connection,
        *,
        prefix: str = "papers-bot",
        seen_retention: timedelta = timedelta(days=90),
        clock: Clock = utcnow,
    ) -> None:
        self._conn = client if isinstance(client, Connection) else Connection(client)
        self._keys = Keys(prefix)
        self._retention = seen_retention
        self._clock = clock
        self._oom_at = -OOM_REMEMBERED
        self.signals = RedisSignals(self._conn, self._keys, clock=clock)
        self.alerts = RedisAlerts(self._conn, self._keys)
        self.batch = Batcher(self._conn)
        """What a digest reads and writes per channel goes through it: concurrent channels
        share pipelines."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """A store on the Redis at `url`: a single server, or any node of a Redis Cluster
        (`Connection.from_url`)."""
        return cls(Connection.from_url(url), **kwargs)

    @property
    def _r(self) -> Client:
        """The client in use now (tests reach Redis through it)."""
        return self._conn.current

    def _seen(self, channel: Channel) -> str:
        return self._keys.seen(channel)

    def _lock(self, name: str) -> str:
        return self._keys.lock(name)

    async def ping(self) -> None:
        try:
            r = await self._conn()
            await r.ping()
        except (RedisError, RedisClusterException, OSError) as err:
            raise StoreUnavailable(f"cannot reach Redis: {err}") from None

    async def close(self) -> None:
        await self._conn.aclose()

    async def eviction_policy(self) -> str | None:
        """The server's `maxmemory-policy`; None when it won't say (CONFIG disabled, as on
        some managed Redis)."""
        r = await self._conn()
        try:
            found = await r.config_get("maxmemory-policy")
        except ResponseError:
            return None
        return policy_in(found)

    async def memory(self) -> Memory:
        """`INFO memory` of a single server (a cluster's nodes each have their own: zeros)."""
        refused = time.monotonic() - self._oom_at < OOM_REMEMBERED
        r = await self._conn()
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
        r = await self._conn()
        scores = await r.zmscore(self._keys.seen(channel), list(ids))
        return {pid for pid, score in zip(ids, scores, strict=True) if score is None}

    async def mark_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        await self.finish(channel, ids, (), None)

    async def mark_message_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        """`mark_seen` for one posted message: the members and the key's expiry, without the
        trim of old members (the channel's `finish` or next `mark_seen` does it)."""
        members = {pid: self._clock().timestamp() for pid in ids}
        if not members:
            return
        key = self._keys.seen(channel)
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
        keys = [self._keys.seen(channel), self._keys.baseline(channel), self._keys.day(channel)]
        if lock is not None:
            keys.append(self._keys.lock(lock[0]))
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
        await self.batch.send(lambda pipe: pipe.eval(scripts.FINISH, len(keys), *keys, *args))

    async def add_subscription(
        self,
        channel: Channel,
        keyword: str,
        *,
        added_by: str,
        cap: int,
        hold: PreviewHold | None = None,
    ) -> AddResult:
        """Adds the keyword unless the channel follows it or is at `cap`; with `hold`, in the
        same script, its first run counts as done and the hold's papers are held for it.
        Nothing is written when it is refused."""
        now = self._clock()
        record = json.dumps({"keyword": keyword, "added_by": added_by, "added_at": now.isoformat()})
        held = "" if hold is None else hold.to_json(now)
        kept = 1 if hold is None else max(1, int(hold.kept.total_seconds()))
        r = await self._conn()
        keys = [self._keys.subs(channel), self._keys.baseline(channel), self._keys.held(channel)]
        result = await self._conn.script(scripts.ADD_SUBSCRIPTION)(
            keys=keys, args=[normalize(keyword), record, cap, held, kept], client=r
        )
        if result == AddResult.ADDED.value:
            await r.sadd(self._keys.channels, channel.key)
        return AddResult(result)

    async def remove_subscription(self, channel: Channel, keyword: str) -> bool:
        """Also forgets the keyword's first run and hold in the channel, and the channel once
        it follows nothing from chat (unless an `add` came in between)."""
        subs = self._keys.subs(channel)
        r = await self._conn()
        async with r.pipeline(transaction=True) as pipe:
            pipe.hdel(subs, normalize(keyword))
            pipe.srem(self._keys.baseline(channel), normalize(keyword))
            pipe.hdel(self._keys.held(channel), normalize(keyword))
            pipe.hlen(subs)
            removed, _, _, left = await pipe.execute()
        if removed and not left:
            await r.srem(self._keys.channels, channel.key)
            if await r.hlen(subs):
                await r.sadd(self._keys.channels, channel.key)
            else:  # nothing followed: the channel no longer counts in anyone's budget
                await r.hdel(self._keys.openers, channel.key)
        return bool(removed)

    async def followed(self, keyword: str) -> bool:
        """Whether any channel follows the keyword from chat (one round trip per node)."""
        channels = await self.subscribed_channels()
        if not channels:
            return False
        r = await self._conn()
        async with r.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.hexists(self._keys.subs(channel), normalize(keyword))
            return any(await pipe.execute())

    async def forget_keyword(self, keyword: str) -> None:
        """Drops the keyword's caches (recent list, last fetch): nobody follows it any more.
        A later `recent` or `add` asks arXiv again."""
        r = await self._conn()
        await r.delete(self._keys.recent(keyword), self._keys.recent_papers(keyword))
        await r.zrem(self._keys.fetched, normalize(keyword))

    async def subscriptions(self, channel: Channel) -> list[ChatSubscription]:
        r = await self._conn()
        raw = await r.hgetall(self._keys.subs(channel))
        return sorted_subscriptions(subscription(text(v)) for v in raw.values())

    async def subscribed_channels(self) -> list[Channel]:
        r = await self._conn()
        keys = await r.smembers(self._keys.channels)
        channels = []
        for key in sorted(text(k) for k in keys):
            platform, _, channel_id = key.partition(":")
            channels.append(Channel(platform, channel_id))
        return channels

    async def save_recent(self, papers: Mapping[str, Sequence[Paper]], cap: int) -> None:
        """Keep each keyword's latest `cap` papers, for `limits.RECENT_KEPT` after this fetch (also
        when it found none): one script per keyword (its two keys share a hash tag),
        `limits.SAVE_RECENT_BATCH` keywords a round trip (one per node on a cluster). The script
        goes whole with each call (EVAL): a cluster pipeline refuses EVALSHA, as a node may
        lack the script."""
        r = await self._conn()
        pending = list(papers.items())
        kept = int(limits.RECENT_KEPT.total_seconds())
        for start in range(0, len(pending), limits.SAVE_RECENT_BATCH):
            async with r.pipeline(transaction=False) as pipe:
                for keyword, found in pending[start : start + limits.SAVE_RECENT_BATCH]:
                    args: list[str | int | float] = [cap, kept]
                    for p in newest_first(list(found))[:cap]:  # the rest would be dropped
                        args += [p.id, p.published.timestamp(), p.to_json()]
                    keys = [self._keys.recent(keyword), self._keys.recent_papers(keyword)]
                    pipe.eval(scripts.SAVE_RECENT, len(keys), *keys, *args)
                await pipe.execute()

    async def recent(self, keyword: str, n: int) -> list[Paper]:
        r = await self._conn()
        found = await r.zrange(self._keys.recent(keyword), 0, n - 1, desc=True)
        ids = [text(i) for i in found if isinstance(i, str | bytes)]
        if not ids:
            return []
        raw = await r.hmget(self._keys.recent_papers(keyword), ids)
        return newest_first([Paper.from_json(text) for text in raw if text is not None])

    async def last_fetched(self, keywords: Sequence[str]) -> dict[str, datetime | None]:
        if not keywords:
            return {}
        r = await self._conn()
        scores = await r.zmscore(self._keys.fetched, [normalize(k) for k in keywords])
        return {
            k: None if score is None else datetime.fromtimestamp(score, UTC)
            for k, score in zip(keywords, scores, strict=True)
        }

    async def set_fetched(self, keywords: Iterable[str], when: datetime) -> None:
        names = [normalize(k) for k in keywords]
        if not names:
            return
        r = await self._conn()
        async with r.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys.fetched, dict.fromkeys(names, when.timestamp()))
            pipe.zremrangebyscore(
                self._keys.fetched, "-inf", (when - limits.FETCHED_KEPT).timestamp()
            )
            await pipe.execute()

    async def baselined(self, channel: Channel, keywords: Sequence[str]) -> set[str]:
        if not keywords:
            return set()
        r = await self._conn()
        flags = await r.smismember(self._keys.baseline(channel), [normalize(k) for k in keywords])
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
                keys = (self._keys.lock(lock.name), self._keys.attempt(channel))
                day = "" if attempt is None else attempt.isoformat()
                kept = int(limits.ATTEMPT_KEPT.total_seconds())
                pipe.eval(scripts.TAKE_CHANNEL, 2, *keys, lock.owner, ms(lock.ttl), day, kept)
            elif attempt is not None:
                pipe.set(
                    self._keys.attempt(channel),
                    attempt.isoformat(),
                    ex=limits.ATTEMPT_KEPT,
                    get=True,
                )
            pipe.hgetall(self._keys.options(channel))
            if ids:
                pipe.zmscore(self._keys.seen(channel), list(ids))
            if keywords:
                pipe.smismember(self._keys.baseline(channel), [normalize(k) for k in keywords])
                pipe.hgetall(self._keys.held(channel))
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
        held = holds(answers.pop(0), keywords, self._clock()) if keywords else {}
        return ChannelState(
            options={text(k): text(v) == "1" for k, v in options.items()},
            unseen={pid for pid, score in zip(ids, scores, strict=True) if score is None},
            baselined={k for k, flag in zip(keywords, flags, strict=True) if flag},
            resumed=locked and attempt is not None and same_day(before, attempt),
            taste=taste_from_script(answers.pop(0)) if taste else Taste(),
            locked=locked,
            held=held,
        )

    async def set_baselined(self, channel: Channel, keywords: Iterable[str]) -> None:
        members = [normalize(k) for k in keywords]
        if members:
            r = await self._conn()
            await r.sadd(self._keys.baseline(channel), *members)

    async def listing_days(self, channels: Sequence[Channel]) -> dict[Channel, date | None]:
        """The last listing day each channel received in full (one round trip per node)."""
        r = await self._conn()
        async with r.pipeline(transaction=False) as pipe:
            for channel in channels:
                pipe.get(self._keys.day(channel))
            raw = await pipe.execute()
        return {
            c: None if v is None else date.fromisoformat(text(v))
            for c, v in zip(channels, raw, strict=True)
        }

    async def set_listing_day(self, channel: Channel, day: date) -> None:
        r = await self._conn()
        await r.set(self._keys.day(channel), day.isoformat(), ex=self._retention)

    async def listing_memory(self, feed: str) -> str | None:
        """What the last listing received from `feed` left (`bot.listing_guard`)."""
        r = await self._conn()
        raw = await r.get(self._keys.listing(feed))
        return None if raw is None else text(raw)

    async def set_listing_memory(self, feed: str, memory: str) -> None:
        r = await self._conn()
        await r.set(self._keys.listing(feed), memory, ex=limits.LISTING_MEMORY_KEPT)

    async def begin_delivery(self, channel: Channel, day: date) -> bool:
        """Notes that a run starts posting the channel's digest of `day`; True when one
        did before (it may have posted part of it). One round trip (SET … GET)."""
        r = await self._conn()
        before = await r.set(
            self._keys.attempt(channel), day.isoformat(), ex=limits.ATTEMPT_KEPT, get=True
        )
        return same_day(before, day)

    async def channel_options(self, channel: Channel) -> dict[str, bool]:
        r = await self._conn()
        raw = await r.hgetall(self._keys.options(channel))
        return {text(k): text(v) == "1" for k, v in raw.items()}

    async def set_channel_option(self, channel: Channel, name: str, value: bool) -> None:
        r = await self._conn()
        await r.hset(self._keys.options(channel), name, "1" if value else "0")

    # channel budgets and gone channels (issue 22) ------------------------------
    async def set_opener(self, channel: Channel, member: str, space: str) -> None:
        r = await self._conn()
        await r.hset(self._keys.openers, channel.key, json.dumps([member, space]))

    async def openers(self, platform: str) -> dict[Channel, Opener]:
        """Who opened each subscribed channel of `platform`; the records of channels that
        follow nothing any more are deleted on the way (so they stay bounded)."""
        r = await self._conn()
        subscribed = {c.key: c for c in await self.subscribed_channels()}
        found: dict[Channel, Opener] = {}
        stale: list[str] = []
        for key, raw in (await r.hgetall(self._keys.openers)).items():
            channel = subscribed.get(text(key))
            if channel is None:
                stale.append(text(key))
            elif channel.platform == platform:
                member, space = json.loads(text(raw))
                found[channel] = Opener(str(member), str(space))
        if stale:
            await r.hdel(self._keys.openers, *stale)
        return found

    async def gone_counts(self, channels: Sequence[Channel]) -> dict[Channel, int]:
        if not channels:
            return {}
        r = await self._conn()
        raw = await r.hmget(self._keys.gone, [c.key for c in channels])
        return {c: gone_count(v) for c, v in zip(channels, raw, strict=True) if v is not None}

    async def note_gone(self, channel: Channel, day: date) -> int:
        """One more day on which the channel was gone; the days so far (one per day, however
        many runs that day saw it)."""
        r = await self._conn()
        before = await r.hget(self._keys.gone, channel.key)
        count = gone_count(before)
        if before is None or not text(before).startswith(day.isoformat()):
            count += 1
        async with r.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.gone, channel.key, f"{day.isoformat()} {count}")
            pipe.expire(self._keys.gone, int(limits.GONE_KEPT.total_seconds()))
            await pipe.execute()
        return count

    async def forget_gone(self, channels: Sequence[Channel]) -> None:
        if channels:
            r = await self._conn()
            await r.hdel(self._keys.gone, *(c.key for c in channels))

    async def drop_channel(self, channel: Channel) -> None:
        """Forget the channel's chat subscriptions, first runs, opener and failure count."""
        r = await self._conn()
        async with r.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.subs(channel))
            pipe.delete(self._keys.baseline(channel))
            await pipe.execute()
        await r.srem(self._keys.channels, channel.key)
        await r.hdel(self._keys.openers, channel.key)
        await r.hdel(self._keys.gone, channel.key)

    async def answer(self, keywords: Sequence[str]) -> list[Paper] | None:
        """The papers `keep_answer` kept for this set of keywords, newest first; None when
        none are kept (never asked, or expired)."""
        r = await self._conn()
        raw = await r.get(self._keys.answer(keywords))
        if raw is None:
            return None
        return newest_first([Paper.from_json(text) for text in json.loads(raw)])

    async def keep_answer(
        self, keywords: Sequence[str], papers: Sequence[Paper], ttl: float
    ) -> None:
        """Keeps arXiv's answer for a set of keywords for `ttl` seconds (`/papers recent`)."""
        r = await self._conn()
        text = json.dumps([p.to_json() for p in papers])
        await r.set(self._keys.answer(keywords), text, px=ms(ttl))
