"""What a team says back about the papers it is sent: votes, saved papers, its taste.

Two twins with one contract, like the store: `RedisSignals` (reached as `RedisStore.signals`)
and `MemorySignals` (`MemoryStore.signals`). Every key is bounded; README.md lists them:

- `P:paper:{id}`: a posted paper (JSON), so a vote or a save knows its title and abstract
  without asking arXiv; written once a run for the papers it matched, kept `PAPER_KEPT`.
- Per channel (`{platform:channel}`), kept `VOTES_KEPT` after the channel's last vote and
  trimmed to the `MAX_VOTED` papers most recently voted on:
  `P:up:{ch}` and `P:down:{ch}` (hashes: paper id -> the ids of the users who voted it up,
  or asked for less like it), `P:voted:{ch}` (sorted set: paper id -> time of its first
  vote), `P:voted:{ch}:papers` (hash: paper id -> the paper, JSON).
- Per user (`{platform:user}`): `P:saved:{u}` (sorted set: paper id -> time saved) and
  `P:saved:{u}:papers` (hash), at most `MAX_SAVED`, kept `SAVED_KEPT` after the last save.
- Per channel with `weekly` on, for its weekly post, kept `WEEK_KEPT` after its last post and
  trimmed to the `MAX_WEEK` papers most recently posted: `P:week:{ch}` (sorted set: paper
  id -> time posted), `P:week:{ch}:papers` (hash: paper id -> the paper, JSON) and
  `P:week:{ch}:savers` (hash: paper id -> the ids of the users who saved it from there).

A user's up vote, down vote or save is pressed again to take it back; an up vote replaces the
same user's down vote and the other way round. Everything one press changes shares a hash tag
and is one script, so replicas and a Redis Cluster see one vote per user per paper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bot.models import Channel, Paper, utcnow
from bot.ranking import Taste, paper_text

if TYPE_CHECKING:
    from bot.store import Client

PAPER_KEPT = timedelta(days=30)
VOTES_KEPT = timedelta(days=180)
MAX_VOTED = 300
"""Papers a channel keeps votes on; the oldest first vote goes first."""
TASTE_PAPERS = 100
"""The most recently voted papers that rank a channel's digest."""
SAVED_KEPT = timedelta(days=365)
MAX_SAVED = 200
REMEMBER_BATCH = 200
WEEK_KEPT = timedelta(days=8)
"""A channel's posted papers are kept for its weekly post: a week, and a day for a late one."""
MAX_WEEK = 1000
"""Papers a channel's week keeps (the oldest posted go first): 7 days of a busy channel."""


@dataclass(frozen=True, slots=True)
class Tally:
    """A paper's votes in a channel after one press."""

    up: int
    down: int
    mine: int
    """The presser's vote now: 1 up, -1 down, 0 none (the press took it back)."""


@dataclass(frozen=True, slots=True)
class Voted:
    paper: Paper
    up: int
    first_vote: datetime


@dataclass(frozen=True, slots=True)
class WeekPaper:
    """A paper posted to a channel this week (`Signals.week`)."""

    paper: Paper
    posted: datetime
    saves: int
    """Users who saved it from this channel and still have it saved."""


class Signals(Protocol):
    async def remember(self, papers: Iterable[Paper]) -> None: ...
    async def paper(self, paper_id: str) -> Paper | None: ...
    async def vote(self, channel: Channel, paper: Paper, user: str, *, up: bool) -> Tally: ...
    async def voted(self, channel: Channel, since: datetime) -> list[Voted]: ...
    async def taste(self, channel: Channel) -> Taste: ...
    async def toggle_saved(self, user: str, paper: Paper) -> bool: ...
    async def unsave(self, user: str, paper_id: str) -> bool: ...
    async def saved(self, user: str, n: int) -> list[Paper]: ...
    async def note_posted(self, channel: Channel, papers: Sequence[Paper]) -> None: ...
    async def note_saver(self, channel: Channel, paper_id: str, user: str, saved: bool) -> None: ...
    async def week(self, channel: Channel, since: datetime) -> list[WeekPaper]: ...


def top(voted: Iterable[Voted], n: int) -> list[Voted]:
    """The most voted up, newest paper first on ties; papers nobody voted up are left out."""
    ranked = sorted(
        (v for v in voted if v.up > 0),
        key=lambda v: (v.up, v.paper.published, v.paper.id),
        reverse=True,
    )
    return ranked[:n]


# Presses `ARGV[3]` ('up' or 'down') for user ARGV[2] on paper ARGV[1].
# KEYS: up, down, voted, voted papers. ARGV: id, user, direction, now, paper JSON, cutoff,
# max papers, ttl seconds. Returns {up voters, down voters, the user's vote now}.
_VOTE = """
local pid, user, dir = ARGV[1], ARGV[2], ARGV[3]
local function voters(key)
  local list = {}
  for u in string.gmatch(redis.call('HGET', key, pid) or '', '%S+') do list[#list + 1] = u end
  return list
end
local function without(list, who)
  local out = {}
  for _, u in ipairs(list) do if u ~= who then out[#out + 1] = u end end
  return out
end
local function put(key, list)
  if #list > 0 then redis.call('HSET', key, pid, table.concat(list, ' '))
  else redis.call('HDEL', key, pid) end
end
local this, other = KEYS[1], KEYS[2]
if dir == 'down' then this, other = KEYS[2], KEYS[1] end
local mine, theirs = voters(this), voters(other)
local kept = without(mine, user)
local state = 0
if #kept == #mine then
  kept[#kept + 1] = user
  theirs = without(theirs, user)
  state = 1
end
put(this, kept)
put(other, theirs)
if #kept + #theirs > 0 then
  redis.call('ZADD', KEYS[3], 'NX', ARGV[4], pid)
  redis.call('HSET', KEYS[4], pid, ARGV[5])
else
  redis.call('ZREM', KEYS[3], pid)
  redis.call('HDEL', KEYS[4], pid)
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
local over = redis.call('ZCARD', KEYS[3]) - #gone - tonumber(ARGV[7])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], #gone, #gone + over - 1)) do
    gone[#gone + 1] = id
  end
end
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[3], id)
  for i = 1, 4 do if i ~= 3 then redis.call('HDEL', KEYS[i], id) end end
end
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[8]) end
if dir == 'down' then
  return {#theirs, #kept, state == 1 and -1 or 0}
end
return {#kept, #theirs, state}
"""

# The channel's newest ARGV[1] voted papers: {JSON, up voters, down voters, ...}.
_TASTE = """
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)) do
  local function count(key)
    local _, n = string.gsub(redis.call('HGET', key, id) or '', '%S+', '')
    return n
  end
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
  out[#out + 1] = count(KEYS[1])
  out[#out + 1] = count(KEYS[2])
end
return out
"""

# Saves paper ARGV[1] (JSON ARGV[2]) at ARGV[3], or takes it back when it was saved.
# KEYS: saved, saved papers. Returns 1 when the paper is saved now.
_TOGGLE_SAVED = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""


# Notes papers (ARGV[5..]: id, JSON, ...) posted at ARGV[1]; forgets those posted before
# ARGV[2] and the oldest beyond ARGV[3]. KEYS: week, week papers, week savers. ARGV[4]: ttl.
_NOTE_POSTED = """
for i = 5, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
local over = redis.call('ZCARD', KEYS[1]) - #gone - tonumber(ARGV[3])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], #gone, #gone + over - 1)) do
    gone[#gone + 1] = id
  end
end
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
"""

# User ARGV[2] saved (ARGV[3] = '1') or unsaved paper ARGV[1] from the channel: noted only
# for a paper of its week. KEYS: week, week savers. ARGV[4]: ttl.
_NOTE_SAVER = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local list = {}
for u in string.gmatch(redis.call('HGET', KEYS[2], ARGV[1]) or '', '%S+') do
  if u ~= ARGV[2] then list[#list + 1] = u end
end
if ARGV[3] == '1' then list[#list + 1] = ARGV[2] end
if #list > 0 then redis.call('HSET', KEYS[2], ARGV[1], table.concat(list, ' '))
else redis.call('HDEL', KEYS[2], ARGV[1]) end
redis.call('EXPIRE', KEYS[2], ARGV[4])
return #list
"""


def taste_of(rows: Iterable[tuple[Paper | None, int, int]]) -> Taste:
    """Papers the channel voted up more than down are liked; the other way round, disliked."""
    liked: list[str] = []
    disliked: list[str] = []
    for paper, up, down in rows:
        if paper is None or up == down:
            continue
        (liked if up > down else disliked).append(paper_text(paper))
    return Taste(tuple(liked), tuple(disliked))


def taste_from(flat: list[Any]) -> Taste:
    """The taste script's answer (JSON, up voters, down voters, …) as a `Taste`."""
    rows = [(_paper(flat[i]), int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]
    return taste_of(rows)


def _paper(raw: str | bytes | None) -> Paper | None:
    if not raw:
        return None
    try:
        return Paper.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None


class RedisSignals:
    def __init__(
        self,
        client: Callable[[], Any],
        prefix: str,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """`client` is the store's coroutine that gives its (single or cluster) client."""
        self._client = client
        self._p = prefix
        self._clock = clock

    async def _redis(self) -> Client:
        client: Client = await self._client()
        return client

    def _channel_keys(self, channel: Channel) -> list[str]:
        tag = f"{{{channel.key}}}"
        return [
            f"{self._p}:up:{tag}",
            f"{self._p}:down:{tag}",
            f"{self._p}:voted:{tag}",
            f"{self._p}:voted:{tag}:papers",
        ]

    def _saved_keys(self, user: str) -> list[str]:
        return [f"{self._p}:saved:{{{user}}}", f"{self._p}:saved:{{{user}}}:papers"]

    def _paper_key(self, paper_id: str) -> str:
        return f"{self._p}:paper:{{{paper_id}}}"

    async def remember(self, papers: Iterable[Paper]) -> None:
        r = await self._redis()
        ttl = int(PAPER_KEPT.total_seconds())
        batch: list[Paper] = []
        for paper in papers:
            batch.append(paper)
            if len(batch) == REMEMBER_BATCH:
                await self._remember(r, batch, ttl)
                batch = []
        if batch:
            await self._remember(r, batch, ttl)

    async def _remember(self, r: Client, papers: list[Paper], ttl: int) -> None:
        async with r.pipeline(transaction=False) as pipe:
            for paper in papers:
                pipe.set(self._paper_key(paper.id), paper.to_json(), ex=ttl)
            await pipe.execute()

    async def paper(self, paper_id: str) -> Paper | None:
        r = await self._redis()
        return _paper(await r.get(self._paper_key(paper_id)))

    async def vote(self, channel: Channel, paper: Paper, user: str, *, up: bool) -> Tally:
        r = await self._redis()
        now = self._clock()
        up_count, down_count, mine = await r.eval(
            _VOTE,
            4,
            *self._channel_keys(channel),
            paper.id,
            user,
            "up" if up else "down",
            now.timestamp(),
            paper.to_json(),
            (now - VOTES_KEPT).timestamp(),
            MAX_VOTED,
            int(VOTES_KEPT.total_seconds()),
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
            paper = _paper(stored.get(pid))
            if paper is not None:
                up_count = len(str(voters.get(pid, "")).split())
                found.append(Voted(paper, up_count, datetime.fromtimestamp(score, since.tzinfo)))
        return found

    async def taste(self, channel: Channel) -> Taste:
        r = await self._redis()
        return taste_from(await r.eval(_TASTE, 4, *self._channel_keys(channel), TASTE_PAPERS))

    def queue_taste(self, pipe: Any, channel: Channel) -> None:
        """Adds the taste's read to a pipeline of the store's: its keys share the channel's
        hash tag, so it rides the channel's state read. Its answer goes to `taste_from`."""
        pipe.eval(_TASTE, 4, *self._channel_keys(channel), TASTE_PAPERS)

    async def toggle_saved(self, user: str, paper: Paper) -> bool:
        r = await self._redis()
        saved = await r.eval(
            _TOGGLE_SAVED,
            2,
            *self._saved_keys(user),
            paper.id,
            paper.to_json(),
            self._clock().timestamp(),
            MAX_SAVED,
            int(SAVED_KEPT.total_seconds()),
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

    async def saved(self, user: str, n: int) -> list[Paper]:
        ids, papers = self._saved_keys(user)
        r = await self._redis()
        newest = await r.zrevrange(ids, 0, n - 1)
        if not newest:
            return []
        found = [_paper(raw) for raw in await r.hmget(papers, [str(i) for i in newest])]
        return [p for p in found if p is not None]

    def _week_keys(self, channel: Channel) -> list[str]:
        week = f"{self._p}:week:{{{channel.key}}}"
        return [week, f"{week}:papers", f"{week}:savers"]

    async def note_posted(self, channel: Channel, papers: Sequence[Paper]) -> None:
        if not papers:
            return
        now = self._clock()
        pairs = [value for p in papers for value in (p.id, p.to_json())]
        r = await self._redis()
        await r.eval(
            _NOTE_POSTED,
            3,
            *self._week_keys(channel),
            now.timestamp(),
            (now - WEEK_KEPT).timestamp(),
            MAX_WEEK,
            int(WEEK_KEPT.total_seconds()),
            *pairs,
        )

    async def note_saver(self, channel: Channel, paper_id: str, user: str, saved: bool) -> None:
        week, _, savers = self._week_keys(channel)
        r = await self._redis()
        ttl = int(WEEK_KEPT.total_seconds())
        await r.eval(_NOTE_SAVER, 2, week, savers, paper_id, user, "1" if saved else "0", ttl)

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
            (paper, score) for pid, score in when if (paper := _paper(stored.get(pid))) is not None
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


@dataclass
class MemorySignals:
    """The in-process twin of RedisSignals."""

    clock: Callable[[], datetime] = utcnow
    _papers: dict[str, Paper] = field(default_factory=dict)
    _votes: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """channel -> paper id -> user -> 1 or -1."""
    _voted: dict[str, dict[str, tuple[Paper, datetime]]] = field(default_factory=dict)
    _saved: dict[str, dict[str, tuple[Paper, datetime]]] = field(default_factory=dict)
    _week: dict[str, dict[str, tuple[Paper, datetime, set[str]]]] = field(default_factory=dict)
    """channel -> paper id -> (the paper, when posted, who saved it from there)."""

    async def remember(self, papers: Iterable[Paper]) -> None:
        self._papers.update((p.id, p) for p in papers)

    async def paper(self, paper_id: str) -> Paper | None:
        return self._papers.get(paper_id)

    async def vote(self, channel: Channel, paper: Paper, user: str, *, up: bool) -> Tally:
        pressed = 1 if up else -1
        votes = self._votes.setdefault(channel.key, {}).setdefault(paper.id, {})
        mine = 0 if votes.get(user) == pressed else pressed
        votes.pop(user, None)
        if mine:
            votes[user] = mine
        voted = self._voted.setdefault(channel.key, {})
        if votes:
            first = voted.get(paper.id, (paper, self.clock()))[1]
            voted[paper.id] = (paper, first)
        else:
            voted.pop(paper.id, None)
        self._trim(channel.key)
        return Tally(_count(votes, 1), _count(votes, -1), mine)

    def _trim(self, key: str) -> None:
        voted = self._voted.get(key, {})
        cutoff = self.clock() - VOTES_KEPT
        by_age = sorted(voted, key=lambda pid: voted[pid][1])
        recent = [pid for pid in by_age if voted[pid][1] >= cutoff]
        gone = [pid for pid in by_age if voted[pid][1] < cutoff]
        gone += recent[: max(0, len(recent) - MAX_VOTED)]
        for pid in gone:
            voted.pop(pid)
            self._votes[key].pop(pid, None)

    async def voted(self, channel: Channel, since: datetime) -> list[Voted]:
        votes = self._votes.get(channel.key, {})
        return [
            Voted(paper, _count(votes.get(pid, {}), 1), first)
            for pid, (paper, first) in self._voted.get(channel.key, {}).items()
            if first >= since
        ]

    async def taste(self, channel: Channel) -> Taste:
        voted = self._voted.get(channel.key, {})
        votes = self._votes.get(channel.key, {})
        newest = sorted(voted, key=lambda pid: voted[pid][1], reverse=True)[:TASTE_PAPERS]
        return taste_of(
            (voted[pid][0], _count(votes[pid], 1), _count(votes[pid], -1)) for pid in newest
        )

    async def toggle_saved(self, user: str, paper: Paper) -> bool:
        saved = self._saved.setdefault(user, {})
        if saved.pop(paper.id, None) is not None:
            return False
        saved[paper.id] = (paper, self.clock())
        for pid in sorted(saved, key=lambda p: saved[p][1])[: max(0, len(saved) - MAX_SAVED)]:
            del saved[pid]
        return True

    async def unsave(self, user: str, paper_id: str) -> bool:
        return self._saved.get(user, {}).pop(paper_id, None) is not None

    async def saved(self, user: str, n: int) -> list[Paper]:
        saved = self._saved.get(user, {})
        newest = sorted(saved.values(), key=lambda found: found[1], reverse=True)
        return [paper for paper, _ in newest[:n]]

    async def note_posted(self, channel: Channel, papers: Sequence[Paper]) -> None:
        week = self._week.setdefault(channel.key, {})
        now = self.clock()
        for paper in papers:
            _, posted, savers = week.get(paper.id, (paper, now, set()))
            week[paper.id] = (paper, posted, savers)
        cutoff = now - WEEK_KEPT
        by_age = sorted(week, key=lambda pid: week[pid][1])
        gone = [pid for pid in by_age if week[pid][1] < cutoff]
        kept = [pid for pid in by_age if week[pid][1] >= cutoff]
        for pid in gone + kept[: max(0, len(kept) - MAX_WEEK)]:
            del week[pid]

    async def note_saver(self, channel: Channel, paper_id: str, user: str, saved: bool) -> None:
        found = self._week.get(channel.key, {}).get(paper_id)
        if found is not None:
            (found[2].add if saved else found[2].discard)(user)

    async def week(self, channel: Channel, since: datetime) -> list[WeekPaper]:
        def saves(pid: str, users: set[str]) -> int:
            return sum(pid in self._saved.get(f"{channel.platform}:{u}", {}) for u in users)

        return [
            WeekPaper(paper, posted, saves(pid, users))
            for pid, (paper, posted, users) in self._week.get(channel.key, {}).items()
            if posted >= since
        ]


def _count(votes: dict[str, int], value: int) -> int:
    return sum(1 for v in votes.values() if v == value)
