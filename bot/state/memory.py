"""The in-process twins of `RedisStore`, `RedisSignals` and `RedisAlerts`: the same behaviour,
nothing survives the process. For `--dry-run`, `memory://` and tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot.keywords import normalize
from bot.models import Channel, Paper, newest_first, utcnow
from bot.ranking import Taste
from bot.state import (
    AddResult,
    ChannelState,
    ChatSubscription,
    Clock,
    Known,
    LockClaim,
    Memory,
    Opener,
    PreviewHold,
    Tally,
    Voted,
    WeekPaper,
    limits,
)
from bot.state.codec import holds, sorted_subscriptions, taste_of_votes
from bot.state.keys import keywords_tag


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
        cutoff = self.clock() - limits.VOTES_KEPT
        by_age = sorted(voted, key=lambda pid: voted[pid][1])
        recent = [pid for pid in by_age if voted[pid][1] >= cutoff]
        gone = [pid for pid in by_age if voted[pid][1] < cutoff]
        gone += recent[: max(0, len(recent) - limits.MAX_VOTED)]
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
        newest = sorted(voted, key=lambda pid: voted[pid][1], reverse=True)[: limits.TASTE_PAPERS]
        return taste_of_votes(
            (voted[pid][0], _count(votes[pid], 1), _count(votes[pid], -1)) for pid in newest
        )

    async def toggle_saved(self, user: str, paper: Paper) -> bool:
        saved = self._saved.setdefault(user, {})
        if saved.pop(paper.id, None) is not None:
            return False
        saved[paper.id] = (paper, self.clock())
        for pid in sorted(saved, key=lambda p: saved[p][1])[
            : max(0, len(saved) - limits.MAX_SAVED)
        ]:
            del saved[pid]
        return True

    async def unsave(self, user: str, paper_id: str) -> bool:
        return self._saved.get(user, {}).pop(paper_id, None) is not None

    async def refresh_saved(self, user: str, paper: Paper) -> bool:
        saved = self._saved.get(user, {})
        if paper.id not in saved:
            return False
        saved[paper.id] = (paper, saved[paper.id][1])
        return True

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
        cutoff = now - limits.WEEK_KEPT
        by_age = sorted(week, key=lambda pid: week[pid][1])
        gone = [pid for pid in by_age if week[pid][1] < cutoff]
        kept = [pid for pid in by_age if week[pid][1] >= cutoff]
        for pid in gone + kept[: max(0, len(kept) - limits.MAX_WEEK)]:
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


@dataclass
class MemoryAlerts:
    """The in-process twin of RedisAlerts."""

    _savers: dict[str, dict[str, str]] = field(default_factory=dict)
    _off: set[str] = field(default_factory=set)

    async def follow(self, user: str, paper: Paper) -> None:
        savers = self._savers.setdefault(paper.id, {})
        if user in savers or len(savers) < limits.MAX_SAVERS:
            savers[user] = Known.of(paper).dumps()

    async def unfollow(self, user: str, paper_id: str) -> None:
        self._savers.get(paper_id, {}).pop(user, None)

    async def savers(self, paper_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return {pid: dict(self._savers[pid]) for pid in paper_ids if self._savers.get(pid)}

    async def claim(self, paper_id: str, user: str, old: str, new: str) -> bool:
        savers = self._savers.get(paper_id, {})
        if savers.get(user) != old:
            return False
        savers[user] = new
        return True

    async def set_enabled(self, user: str, on: bool) -> None:
        (self._off.discard if on else self._off.add)(user)

    async def disabled(self, users: Sequence[str]) -> set[str]:
        return {u for u in users if u in self._off}


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

    async def mark_message_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        await self.mark_seen(channel, ids)

    def _expire(self, channel: Channel) -> None:
        cutoff = self.clock() - self.seen_retention
        seen = self._seen.get(channel.key, {})
        for pid in [pid for pid, when in seen.items() if when <= cutoff]:
            del seen[pid]

    async def add_subscription(
        self,
        channel: Channel,
        keyword: str,
        *,
        added_by: str,
        cap: int,
        hold: PreviewHold | None = None,
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
        return sorted_subscriptions(self._subs.get(channel.key, {}).values())

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
        for name in [n for n, at in self._fetched.items() if at <= when - limits.FETCHED_KEPT]:
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
            holds(self._held.get(channel.key, {}), keywords, self.clock()),
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
        kept = self._answers.get(keywords_tag(keywords))
        if kept is None or kept[1] <= self.clock():
            return None
        return newest_first(kept[0])

    async def keep_answer(
        self, keywords: Sequence[str], papers: Sequence[Paper], ttl: float
    ) -> None:
        until = self.clock() + timedelta(seconds=ttl)
        self._answers[keywords_tag(keywords)] = (list(papers), until)

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
