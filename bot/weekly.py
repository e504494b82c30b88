"""The week's papers, posted: once a week each channel with `weekly` on (`/papers set weekly
on`, or `weekly = true` in its subscription) gets the papers posted to it in the last seven
days, the most voted first with their votes and saves (counts, never names), and one line
for the papers nobody voted for.

Posted at `[schedule] weekly_day` and `weekly_time` (in `[schedule] timezone`), once per
week and channel across replicas and restarts: each channel's post is claimed under
`weekly:{YYYY-Www}:{platform:channel}` with the lock and the done mark of the digest's slots.
A channel whose post failed is tried again every `RETRY` seconds, and a slot missed while no
replica ran is posted at start-up, both for up to `CATCH_UP` after the slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, cast

from bot.digest import all_subscriptions
from bot.models import Channel, Paper, utcnow
from bot.options import channel_options
from bot.publishing import DeliveryError, Publisher, message_key
from bot.schedule import Schedule
from bot.settings import Settings
from bot.state import STORE_ERRORS, Store, Voted, WeekPaper, keys
from bot.state.locks import expiry_wait, held

log = logging.getLogger(__name__)

WEEK = timedelta(days=7)
WEEKLY_PAPERS = 10
"""The most voted papers a weekly post shows, each with its buttons."""
UNVOTED_NAMED = 5
"""Titles the line for the papers nobody voted for names before "and N more"."""
UNVOTED_TITLE_CHARS = 80
CATCH_UP = timedelta(hours=24)
"""How long after its slot a week's post is still made (a failed post retried, a slot missed
while no replica ran); after that, the channel skips that week."""
RETRY = 300.0
"""Seconds between two tries at the channels whose weekly post failed or is being made by
another replica."""
DONE_KEPT = timedelta(days=8)
CONCURRENCY = 50
"""Channels posted to at once; each platform paces its own messages."""


@dataclass(frozen=True, slots=True)
class Ranked:
    """A paper of the week that got votes."""

    paper: Paper
    up: int
    saves: int

    @property
    def label(self) -> str:
        """`👍 3 · 🔖 2`: counts only, nobody named."""
        return f"👍 {self.up}" + (f" · 🔖 {self.saves}" if self.saves else "")


@dataclass(frozen=True, slots=True)
class WeeklyPost:
    """One channel's week, platform-neutral: adapters render it with their own markup."""

    channel: Channel
    week: str
    """`2026-W45`."""
    first: date
    last: date
    ranked: tuple[Ranked, ...]
    """The most voted, at most `WEEKLY_PAPERS`, most votes first."""
    voted: int
    """Papers that got votes (more than `ranked` shows when over `WEEKLY_PAPERS`)."""
    unvoted: tuple[WeekPaper, ...]
    """The week's papers nobody voted for, the most saved and newest first."""

    @property
    def title(self) -> str:
        first = f"{self.first.day} {self.first:%b}"
        if self.first.year != self.last.year:
            first += f" {self.first.year}"
        return f"The week's papers · {first} – {self.last.day} {self.last:%b %Y}"

    @property
    def summary(self) -> str:
        total = self.voted + len(self.unvoted)
        noun = "paper" if total == 1 else "papers"
        if not self.voted:
            return f"{total} {noun} this week; nobody voted for any. Press 👍 Relevant under one."
        shown = len(self.ranked)
        most = f"the {shown} most voted" if shown < self.voted else "most votes first"
        return f"{total} {noun} this week, {self.voted} with votes ({most}):"

    def unvoted_line(self) -> str:
        """`No votes for 9 papers: “A” (🔖 1), “B”, … and 4 more.`; empty when none."""
        if not self.unvoted:
            return ""
        named = [_short_title(w) for w in self.unvoted[:UNVOTED_NAMED]]
        rest = len(self.unvoted) - len(named)
        noun = "paper" if len(self.unvoted) == 1 else "papers"
        line = f"No votes for {len(self.unvoted)} {noun}: " + ", ".join(named)
        return line + (f" and {rest} more." if rest else ".")

    def key(self, n: int) -> str:
        """The name of the post's `n`th message, the same on every replica and retry
        (Slack's lookup key, Discord's nonce)."""
        return message_key(self.channel, (), f"weekly {self.week} {n}")


def _short_title(found: WeekPaper) -> str:
    title = " ".join(found.paper.title.split())
    if len(title) > UNVOTED_TITLE_CHARS:
        title = title[: UNVOTED_TITLE_CHARS - 1].rstrip() + "…"
    return f"“{title}”" + (f" (🔖 {found.saves})" if found.saves else "")


class WeeklyPublisher(Protocol):
    """A platform whose publisher posts the week's papers (Slack, Discord)."""

    async def publish_weekly(self, post: WeeklyPost) -> None:
        """Post it to `post.channel`; raise DeliveryError when the channel can't take it."""
        ...


def choose(
    week: Sequence[WeekPaper], voted: Sequence[Voted]
) -> tuple[list[Ranked], list[WeekPaper]]:
    """The week's papers with votes, most first (then the most saved, the newest), and those
    nobody voted for. Papers first voted this week count even if posted before it."""
    up = {v.paper.id: v.up for v in voted}
    papers = {w.paper.id: w for w in week}
    for v in voted:
        if v.up and v.paper.id not in papers:
            papers[v.paper.id] = WeekPaper(v.paper, v.first_vote, 0)
    ranked = sorted(
        (Ranked(w.paper, up[pid], w.saves) for pid, w in papers.items() if up.get(pid, 0) > 0),
        key=lambda r: (r.up, r.saves, r.paper.published, r.paper.id),
        reverse=True,
    )
    unvoted = sorted(
        (w for pid, w in papers.items() if up.get(pid, 0) <= 0),
        key=lambda w: (w.saves, w.paper.published, w.paper.id),
        reverse=True,
    )
    return ranked, unvoted


class WeeklyPoster:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        publishers: Mapping[str, Publisher],
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._store = store
        self._publishers = publishers
        self._clock = clock
        self._sleep = sleep
        self.schedule = Schedule.weekly(settings.schedule)

    def _output(self, channel: Channel) -> WeeklyPublisher | None:
        publisher = self._publishers.get(channel.platform)
        if not callable(getattr(publisher, "publish_weekly", None)):
            return None
        return cast(WeeklyPublisher, publisher)

    async def channels(self) -> list[Channel]:
        """The channels with `weekly` on whose platform posts the week's papers."""
        found: list[Channel] = []
        for channel in await all_subscriptions(self._settings, self._store):
            if self._output(channel) is None:
                continue
            if (await channel_options(self._settings, self._store, channel)).weekly:
                found.append(channel)
        return found

    async def build(self, channel: Channel, slot: datetime) -> WeeklyPost | None:
        """The channel's week up to `slot`; None when nothing was posted or voted for."""
        since = slot - WEEK
        week = await self._store.signals.week(channel, since)
        voted = await self._store.signals.voted(channel, since)
        ranked, unvoted = choose(week, voted)
        if not ranked and not unvoted:
            return None
        last = slot.astimezone(self.schedule.zone).date()
        return WeeklyPost(
            channel=channel,
            week=self.schedule.week_id(slot),
            first=last - (WEEK - timedelta(days=1)),
            last=last,
            ranked=tuple(ranked[:WEEKLY_PAPERS]),
            voted=len(ranked),
            unvoted=tuple(unvoted),
        )

    async def post_channel(self, channel: Channel, slot: datetime) -> bool:
        """The channel's post for the slot's week, unless any replica made it; True once it
        is made (or there was nothing to post), False while another replica still is."""
        output = self._output(channel)
        week = self.schedule.week_id(slot)
        name = keys.weekly_post(week, channel)
        if output is None or await self._store.is_done(name):
            return True
        ttl = self._settings.service.lock_ttl
        # Another replica posting it, or one that died doing so, lets go within the ttl.
        async with held(self._store, name, ttl, wait=expiry_wait(ttl)) as mine:
            if not mine:
                return False
            if await self._store.is_done(name):
                return True
            post = await self.build(channel, slot)
            if post is None:
                log.info("weekly_empty channel=%s week=%s", channel, week)
            else:
                await output.publish_weekly(post)
                log.info(
                    "weekly_posted channel=%s week=%s voted=%d unvoted=%d",
                    channel,
                    post.week,
                    post.voted,
                    len(post.unvoted),
                )
            await self._store.mark_done(name, DONE_KEPT.total_seconds())
        return True

    async def run_slot(self, slot: datetime) -> list[Channel]:
        """Every weekly channel's post for the slot; the channels still without one."""
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(channel: Channel) -> bool:
            async with limit:
                try:
                    return await self.post_channel(channel, slot)
                except DeliveryError as err:
                    log.error("weekly_failed channel=%s reason=%r", channel, err.reason)
                except STORE_ERRORS as err:
                    log.error("weekly_failed channel=%s reason=%r", channel, f"Redis: {err}")
                except Exception:
                    log.exception("weekly_failed channel=%s", channel)
                return False

        channels = await self.channels()
        done = await asyncio.gather(*(one(c) for c in channels))
        return [c for c, ok in zip(channels, done, strict=True) if not ok]

    async def run_until_done(self, slot: datetime) -> None:
        """The slot's posts, tried again every `RETRY` seconds for the channels still
        without one, until `CATCH_UP` after the slot."""
        while True:
            try:
                pending = len(await self.run_slot(slot))
            except STORE_ERRORS as err:
                log.error("weekly_failed slot=%s error=%r", slot.isoformat(), str(err))
                pending = -1
            if not pending:
                return
            if self._clock() + timedelta(seconds=RETRY) > slot + CATCH_UP:
                log.warning("weekly_given_up slot=%s channels=%d", slot.isoformat(), pending)
                return
            await self._sleep(RETRY)

    async def scheduler(self) -> None:
        """The latest slot if it is less than `CATCH_UP` old (made once: a replica that
        starts after the others finds it done), then every slot as it comes."""
        now = self._clock()
        latest = self.schedule.latest(now)
        if latest is not None and now - latest < CATCH_UP:
            await self.run_until_done(latest)
        while True:
            slot = self.schedule.next(self._clock())
            log.info("weekly_scheduled at=%s", slot.isoformat())
            while (left := (slot - self._clock()).total_seconds()) > 0:
                await self._sleep(min(left, 60.0))
            await self.run_until_done(slot)
