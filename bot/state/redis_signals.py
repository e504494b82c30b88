"""The Redis twins of `Signals` and `AlertState`, reached as `RedisStore.signals` and
`RedisStore.alerts`.

A user's up vote, down vote or save is pressed again to take it back; an up vote replaces the
same user's down vote and the other way round. Everything one press changes shares a hash tag
and is one script, so replicas and a Redis Cluster see one vote per user per paper. An alert
is claimed by replacing what its saver knew with what the listing says, in one script that
checks the old value first: another replica, or a run again, finds the value changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from bot.models import Channel, Paper, utcnow
from bot.ranking import Taste
from bot.state import Clock, Known, Tally, Voted, WeekPaper, limits, scripts
from bot.state.codec import paper_or_none, taste_from_script, text
from bot.state.connection import Client, Connection
from bot.state.keys import Keys

OFF = "off"
"""The value of a user's `alerts_off` key."""


class RedisSignals:
    def __init__(self, connection: Connection, keys: Keys, *, clock: Clock = utcnow) -> None:
        self._redis = connection
        self._keys = keys
        self._clock = clock

    def _channel_keys(self, channel: Channel) -> list[str]:
        k = self._keys
        return [k.up(channel), k.down(channel), k.voted(channel), k.voted_papers(channel)]

    def _saved_keys(self, user: str) -> list[str]:
        return [self._keys.saved(user), self._keys.saved_papers(user)]

    async def remember(self, papers: Iterable[Paper]) -> None:
        r = await self._redis()
        ttl = int(limits.PAPER_KEPT.total_seconds())
        batch: list[Paper] = []
        for paper in papers:
            batch.append(paper)
            if len(batch) == limits.REMEMBER_BATCH:
                await self._remember(r, batch, ttl)
                batch = []
        if batch:
            await self._remember(r, batch, ttl)

    async def _remember(self, r: Client, papers: list[Paper], ttl: int) -> None:
        async with r.pipeline(transaction=False) as pipe:
            for paper in papers:
                pipe.set(self._keys.paper(paper.id), paper.to_json(), ex=ttl)
            await pipe.execute()

    async def paper(self, paper_id: str) -> Paper | None:
        r = await self._redis()
        return paper_or_none(await r.get(self._keys.paper(paper_id)))

    async def vote(self, channel: Channel, paper: Paper, user: str, *, up: bool) -> Tally:
        r = await self._redis()
        now = self._clock()
        up_count, down_count, mine = await r.eval(
            scripts.VOTE,
            4,
            *self._channel_keys(channel),
            paper.id,
            user,
            "up" if up else "down",
            now.timestamp(),
            paper.to_json(),
            (now - limits.VOTES_KEPT).timestamp(),
            limits.MAX_VOTED,
            int(limits.VOTES_KEPT.total_seconds()),
        )
        return Tally(int(up_count), int(down_count), int(mine))

    async def voted(self, channel: Channel, since: datetime) -> list[Voted]:
        up, _, voted, papers = self._channel_keys(channel)
        r = await self._redis()
        async with r.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(voted, since.timestamp(), "+inf", withscores=True)
            pipe.hgetall(up)
            pipe.hgetall(papers)
            when, voters, stored = await pipe.execute()
        found: list[Voted] = []
        for pid, score in when:
            paper = paper_or_none(stored.get(pid))
            if paper is not None:
                up_count = len(str(voters.get(pid, "")).split())
                found.append(Voted(paper, up_count, datetime.fromtimestamp(score, since.tzinfo)))
        return found

    async def taste(self, channel: Channel) -> Taste:
        r = await self._redis()
        return taste_from_script(
            await r.eval(scripts.TASTE, 4, *self._channel_keys(channel), limits.TASTE_PAPERS)
        )

    def queue_taste(self, pipe: Any, channel: Channel) -> None:
        """Adds the taste's read to a pipeline of the store's: its keys share the channel's
        hash tag, so it rides the channel's state read. Its answer goes to `taste_from_script`."""
        pipe.eval(scripts.TASTE, 4, *self._channel_keys(channel), limits.TASTE_PAPERS)

    async def toggle_saved(self, user: str, paper: Paper) -> bool:
        r = await self._redis()
        saved = await r.eval(
            scripts.TOGGLE_SAVED,
            2,
            *self._saved_keys(user),
            paper.id,
            paper.to_json(),
            self._clock().timestamp(),
            limits.MAX_SAVED,
            int(limits.SAVED_KEPT.total_seconds()),
        )
        return bool(saved)

    async def unsave(self, user: str, paper_id: str) -> bool:
        ids, papers = self._saved_keys(user)
        r = await self._redis()
        async with r.pipeline(transaction=True) as pipe:
            pipe.zrem(ids, paper_id)
            pipe.hdel(papers, paper_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def refresh_saved(self, user: str, paper: Paper) -> bool:
        r = await self._redis()
        keys = self._saved_keys(user)
        return bool(await r.eval(scripts.REFRESH_SAVED, 2, *keys, paper.id, paper.to_json()))

    async def saved(self, user: str, n: int) -> list[Paper]:
        ids, papers = self._saved_keys(user)
        r = await self._redis()
        newest = await r.zrevrange(ids, 0, n - 1)
        if not newest:
            return []
        found = [paper_or_none(raw) for raw in await r.hmget(papers, [str(i) for i in newest])]
        return [p for p in found if p is not None]

    def _week_keys(self, channel: Channel) -> list[str]:
        k = self._keys
        return [k.week(channel), k.week_papers(channel), k.week_savers(channel)]

    async def note_posted(self, channel: Channel, papers: Sequence[Paper]) -> None:
        if not papers:
            return
        now = self._clock()
        pairs = [value for p in papers for value in (p.id, p.to_json())]
        r = await self._redis()
        await r.eval(
            scripts.NOTE_POSTED,
            3,
            *self._week_keys(channel),
            now.timestamp(),
            (now - limits.WEEK_KEPT).timestamp(),
            limits.MAX_WEEK,
            int(limits.WEEK_KEPT.total_seconds()),
            *pairs,
        )

    async def note_saver(self, channel: Channel, paper_id: str, user: str, saved: bool) -> None:
        week, _, savers = self._week_keys(channel)
        r = await self._redis()
        ttl = int(limits.WEEK_KEPT.total_seconds())
        await r.eval(
            scripts.NOTE_SAVER, 2, week, savers, paper_id, user, "1" if saved else "0", ttl
        )

    async def week(self, channel: Channel, since: datetime) -> list[WeekPaper]:
        """The papers posted since `since`, each with the users who saved it from the channel
        and still have it among their saved papers (one look per saver, in one pipeline)."""
        week, papers, savers = self._week_keys(channel)
        r = await self._redis()
        async with r.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(week, since.timestamp(), "+inf", withscores=True)
            pipe.hgetall(papers)
            pipe.hgetall(savers)
            when, stored, saved_by = await pipe.execute()
        found = [
            (paper, score)
            for pid, score in when
            if (paper := paper_or_none(stored.get(pid))) is not None
        ]
        asked = [(p.id, u) for p, _ in found for u in str(saved_by.get(p.id, "")).split()]
        still: list[Any] = []
        if asked:
            async with r.pipeline(transaction=False) as pipe:
                for pid, user in asked:
                    pipe.zscore(self._saved_keys(f"{channel.platform}:{user}")[0], pid)
                still = await pipe.execute()
        saves = {pid: 0 for pid, _ in asked}
        for (pid, _), score in zip(asked, still, strict=True):
            saves[pid] += score is not None
        return [
            WeekPaper(paper, datetime.fromtimestamp(score, since.tzinfo), saves.get(paper.id, 0))
            for paper, score in found
        ]


class RedisAlerts:
    def __init__(self, connection: Connection, keys: Keys) -> None:
        self._redis = connection
        self._keys = keys

    async def follow(self, user: str, paper: Paper) -> None:
        r = await self._redis()
        ttl = int(limits.SAVED_KEPT.total_seconds())
        args = (user, Known.of(paper).dumps(), limits.MAX_SAVERS, ttl)
        await r.eval(scripts.FOLLOW, 1, self._keys.savers(paper.id), *args)

    async def unfollow(self, user: str, paper_id: str) -> None:
        r = await self._redis()
        await r.hdel(self._keys.savers(paper_id), user)

    async def savers(self, paper_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        r = await self._redis()
        found: dict[str, dict[str, str]] = {}
        for start in range(0, len(paper_ids), limits.READ_BATCH):
            batch = paper_ids[start : start + limits.READ_BATCH]
            async with r.pipeline(transaction=False) as pipe:
                for pid in batch:
                    pipe.hgetall(self._keys.savers(pid))
                answers = await pipe.execute()
            for pid, users in zip(batch, answers, strict=True):
                if users:
                    found[pid] = {text(u): text(k) for u, k in users.items()}
        return found

    async def claim(self, paper_id: str, user: str, old: str, new: str) -> bool:
        r = await self._redis()
        return bool(await r.eval(scripts.CLAIM, 1, self._keys.savers(paper_id), user, old, new))

    async def set_enabled(self, user: str, on: bool) -> None:
        r = await self._redis()
        if on:
            await r.delete(self._keys.alerts_off(user))
        else:
            await r.set(self._keys.alerts_off(user), OFF, ex=int(limits.SAVED_KEPT.total_seconds()))

    async def disabled(self, users: Sequence[str]) -> set[str]:
        r = await self._redis()
        async with r.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.exists(self._keys.alerts_off(user))
            answers = await pipe.execute()
        return {user for user, off in zip(users, answers, strict=True) if off}
