"""State that outlives a run, and what it is made of: the contracts.

`Store` (seen papers, chat subscriptions, recent papers per keyword, locks), and beside it
`Signals` (votes, saved papers, the week's papers) and `AlertState` (who saved which paper,
who wants no alerts), each with two twins of one behaviour: `redis` for real runs and
`memory` for `--dry-run` and `memory://` (`open_store` picks one).

The package: this module (contracts and value types), `keys` (every Redis key name and hash
tag), `scripts` (the Lua scripts), `limits` (how long and how many), `connection` (the
single-server or cluster client), `redis`, `redis_locks` and `redis_signals` (the Redis
twin), `memory` (the in-process twin), `codec` (stored values to value types), `locks` (a
lock held for a block) and `batching` (concurrent calls sent in one pipeline).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import NamedTuple, Protocol

from redis.exceptions import OutOfMemoryError, RedisClusterException, RedisError

from bot.models import Channel, Paper, utcnow
from bot.ranking import Taste

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """Redis cannot be reached; the message says where."""


STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, StoreUnavailable)
"""What a store call raises while Redis is away (redis-py wraps socket errors in these; its
cluster client raises `RedisClusterException`s, e.g. while a slot has no master)."""

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
    the seen keys of the papers its preview showed (`PreviewHold`), while the hold lasts."""


@dataclass(frozen=True, slots=True)
class PreviewHold:
    """The papers a keyword's `/papers add` preview showed: the digest doesn't post them for
    that keyword (the flood guard), but still does for the channel's other keywords."""

    keys: Sequence[str]
    """Their seen keys (`bot.models.seen_keys`)."""
    kept: timedelta
    """How long they are held."""

    def to_json(self, now: datetime) -> str:
        return json.dumps({"until": (now + self.kept).timestamp(), "keys": list(self.keys)})


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


def top(voted: Iterable[Voted], n: int) -> list[Voted]:
    """The most voted up, newest paper first on ties; papers nobody voted up are left out."""
    ranked = sorted(
        (v for v in voted if v.up > 0),
        key=lambda v: (v.up, v.paper.published, v.paper.id),
        reverse=True,
    )
    return ranked[:n]


@dataclass(frozen=True, slots=True)
class Known:
    """What a saver knows of a paper: the version, journal reference and DOI last told."""

    version: int
    journal_ref: str | None = None
    doi: str | None = None

    @classmethod
    def of(cls, paper: Paper) -> Known:
        return cls(paper.version, paper.journal_ref, paper.doi)

    def dumps(self) -> str:
        data = {"v": self.version, "j": self.journal_ref, "d": self.doi}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> Known | None:
        try:
            data = json.loads(raw)
            return cls(int(data["v"]), data.get("j") or None, data.get("d") or None)
        except (ValueError, KeyError, TypeError):
            return None

    def changes(self, paper: Paper) -> tuple[str, ...]:
        """What `paper` (as a listing carries it) says that this saver was not told."""
        lines: list[str] = []
        if paper.version > self.version:
            lines.append(f"New version: v{paper.version} (you saved v{self.version})")
        if paper.journal_ref and paper.journal_ref != self.journal_ref:
            lines.append(f"Journal reference: {paper.journal_ref}")
        if paper.doi and paper.doi != self.doi:
            lines.append(f"DOI: {paper.doi}")
        return tuple(lines)

    def after(self, paper: Paper) -> Known:
        """What the saver knows once told about `paper`."""
        return Known(
            max(self.version, paper.version),
            paper.journal_ref or self.journal_ref,
            paper.doi or self.doi,
        )


class Signals(Protocol):
    async def remember(self, papers: Iterable[Paper]) -> None: ...
    async def paper(self, paper_id: str) -> Paper | None: ...
    async def vote(self, channel: Channel, paper: Paper, user: str, *, up: bool) -> Tally: ...
    async def voted(self, channel: Channel, since: datetime) -> list[Voted]: ...
    async def taste(self, channel: Channel) -> Taste: ...
    async def toggle_saved(self, user: str, paper: Paper) -> bool: ...
    async def unsave(self, user: str, paper_id: str) -> bool: ...
    async def refresh_saved(self, user: str, paper: Paper) -> bool:
        """The user's saved copy of `paper` replaced by this one (a new version, a journal
        reference), keeping when it was saved; False when the user no longer saves it."""
        ...

    async def saved(self, user: str, n: int) -> list[Paper]: ...
    async def note_posted(self, channel: Channel, papers: Sequence[Paper]) -> None: ...
    async def note_saver(self, channel: Channel, paper_id: str, user: str, saved: bool) -> None: ...
    async def week(self, channel: Channel, since: datetime) -> list[WeekPaper]: ...


class AlertState(Protocol):
    async def follow(self, user: str, paper: Paper) -> None: ...
    async def unfollow(self, user: str, paper_id: str) -> None: ...
    async def savers(self, paper_ids: Sequence[str]) -> dict[str, dict[str, str]]: ...
    async def claim(self, paper_id: str, user: str, old: str, new: str) -> bool: ...
    async def set_enabled(self, user: str, on: bool) -> None: ...
    async def disabled(self, users: Sequence[str]) -> set[str]: ...


class Store(Protocol):
    @property
    def signals(self) -> Signals:
        """Votes, saved papers and each channel's taste."""
        ...

    @property
    def alerts(self) -> AlertState:
        """Who saved which paper, and who wants no alerts about them (`bot.alerts`)."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...
    async def eviction_policy(self) -> str | None: ...
    async def memory(self) -> Memory: ...
    def refused_for_memory(self) -> None: ...

    async def unseen(self, channel: Channel, ids: Sequence[str]) -> set[str]: ...
    async def mark_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        """Marks `ids` seen in the channel and trims members past `seen_retention`."""
        ...

    async def mark_message_seen(self, channel: Channel, ids: Iterable[str]) -> None:
        """Marks one posted message's papers seen, without the trim (cheaper, per message)."""
        ...

    async def add_subscription(
        self,
        channel: Channel,
        keyword: str,
        *,
        added_by: str,
        cap: int,
        hold: PreviewHold | None = None,
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


def open_store(url: str, *, prefix: str, seen_retention: timedelta, clock: Clock = utcnow) -> Store:
    """The Redis twin on `url`, or the in-process one for `memory://`."""
    if url.startswith("memory://"):
        from bot.state.memory import MemoryStore

        return MemoryStore(seen_retention=seen_retention, clock=clock)
    from bot.state.redis import RedisStore

    return RedisStore.from_url(url, prefix=prefix, seen_retention=seen_retention, clock=clock)
