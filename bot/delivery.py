"""Delivery to one channel: take its lock, draw up its plan (`bot.plan`), post it through
the channel's output, and record what went out, so that a message is posted once however
the run ends (a stop, a deadline, a failed platform, Redis away, a replica taking over).

`Delivery.deliver` is the whole of it for one channel; a run (`bot.digest`) makes one
`Delivery` and calls it for each of its channels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from bot import metrics
from bot.fetching import Fetched
from bot.listing import with_details
from bot.models import Channel, Digest, Paper, seen_keys
from bot.plan import ChannelBusy, Plan, Planner
from bot.progress import reporting
from bot.publishing import Delivered, DeliveryError, Publisher, shows_everything
from bot.settings import Settings
from bot.state import STORE_ERRORS, Store, keys, write_cache
from bot.state.locks import Hold, expiry_wait, held, still_held

log = logging.getLogger(__name__)

MARK_RETRY = 30.0
"""Seconds to keep trying to record a posted message as seen while Redis is away: a short
blip must not make the next run post the message again."""


class DigestStopped(Exception):
    """Raised after a delivered message once a stop was asked for: the rest waits."""


class LockLost(Exception):
    """The channel's lock is another replica's now (this one paused past `lock_ttl`)."""


@dataclass(slots=True)
class ChannelOutcome:
    channel: Channel
    delivered: int = 0
    pending: int = 0
    error: str | None = None
    gone: bool = False
    """The platform says the channel is gone (`DeliveryError.gone`)."""


@dataclass(slots=True)
class _Sent:
    """What a channel's messages carried so far, as its publisher reports them."""

    last: list[str]
    """The seen keys of the digest's last message: marked by the channel's final writes."""
    week: list[Paper]
    """The papers posted, for the weekly post (when the channel has one)."""


class Delivery:
    """One run's delivery: `deliver` for each channel. A stop (`stop` set) lets the message
    in flight finish and delivers nothing more; an output that refuses every channel (a
    revoked token) is reported once and skipped for the platform's other channels."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        publishers: Mapping[str, Publisher],
        planner: Planner,
        *,
        stop: asyncio.Event,
        dry_run: bool,
        lock_ttl: float,
        deadline: float,
        mark_retry: float = MARK_RETRY,
    ) -> None:
        self._settings = settings
        self._store = store
        self._publishers = publishers
        self._planner = planner
        self._stop = stop
        self._dry_run = dry_run
        self._lock_ttl = lock_ttl
        self._deadline = deadline
        """Seconds one channel's `publish` may take (`[digest] channel_deadline`)."""
        self._mark_retry = mark_retry
        self._refused: dict[str, str] = {}
        """Platform -> why its output refuses every channel."""

    async def deliver(
        self, channel: Channel, keywords: Sequence[str], fetched: Fetched
    ) -> ChannelOutcome:
        """The channel's delivery under its lock: two processes never post to one channel
        at once, even when a run lock was lost."""
        if self._dry_run:
            return await self._attempt(channel, keywords, fetched)
        name = keys.channel_lock(channel)
        try:
            async with held(self._store, name, self._lock_ttl, taken_by_block=True) as hold:
                return await self._attempt(channel, keywords, fetched, hold)
        except ChannelBusy:
            pass
        return await self._after_wait(channel, keywords, fetched, name)

    async def _after_wait(
        self, channel: Channel, keywords: Sequence[str], fetched: Fetched, name: str
    ) -> ChannelOutcome:
        """The lock is held by a live process finishing this channel, or by one that died,
        whose lock expires within lock_ttl: wait for either, rather than leave the channel
        till next run."""
        patience = expiry_wait(self._lock_ttl)
        log.info(
            "channel_busy channel=%s: another process holds its lock; waiting up to %gs",
            channel,
            patience,
        )
        async with held(self._store, name, self._lock_ttl, wait=patience, stop=self._stop) as mine:
            if not mine and self._stop.is_set():
                return ChannelOutcome(channel, error="stopped before delivery")
            if mine:
                log.info("channel_free channel=%s: its lock was let go or expired", channel)
                await self._reread_listing_day(channel, fetched)
                with contextlib.suppress(ChannelBusy):  # lost again before the state read
                    return await self._attempt(channel, keywords, fetched, mine)
        log.warning(
            "channel_failed channel=%s: another replica kept posting here for %gs "
            "(its lock is being renewed); the channel's papers come next run",
            channel,
            patience,
        )
        return ChannelOutcome(channel, error="another replica is posting here")

    async def _reread_listing_day(self, channel: Channel, fetched: Fetched) -> None:
        """After waiting for the channel's lock: the holder may have delivered this listing in
        full meanwhile. The plan re-reads which papers the channel has; this re-reads whether
        it has the day, so a quiet-days channel gets no "no new papers" line after its papers."""
        if fetched.day is None or channel in fetched.received:
            return
        day = (await self._store.listing_days([channel])).get(channel)
        if day is not None and day >= fetched.day:
            fetched.received.add(channel)

    async def _attempt(
        self,
        channel: Channel,
        keywords: Sequence[str],
        fetched: Fetched,
        hold: Hold | None = None,
    ) -> ChannelOutcome:
        """The channel's delivery. Its lock (`hold`) is taken or kept by the plan's state
        read (`ChannelBusy` when another process holds it) and let go in the round trip of
        the channel's last writes when it ends normally."""
        outcome = ChannelOutcome(channel)
        publisher = self._publisher(outcome)
        if publisher is None:
            return outcome
        try:
            plan = await self._plan(channel, keywords, fetched, publisher, hold)
            outcome.pending = len(plan.digest.items)
            complete = fetched.complete(channel, keywords)
            day = fetched.day if complete else None
            if publisher.needs_recent:
                await self._add_recent(plan.digest, keywords, fetched)
            elif not plan.digest.items and not (
                # "No new papers" once a day, and only when every keyword was looked at.
                plan.options.quiet_days and complete and channel not in fetched.received
            ):
                await self._finish(plan, day, hold)
                return outcome
            await self._post(publisher, plan, outcome, day, hold)
        except ChannelBusy:
            raise
        except Exception as err:
            self._failed(outcome, err)
        outcome.pending -= outcome.delivered
        return outcome

    def _publisher(self, outcome: ChannelOutcome) -> Publisher | None:
        """The channel's output; None, with the outcome's error, when it gets nothing now."""
        platform = outcome.channel.platform
        publisher = self._publishers.get(platform)
        if self._stop.is_set():
            outcome.error = "stopped before delivery"
        elif platform in self._refused:
            outcome.error = self._refused[platform]
            log.debug("channel_skipped channel=%s reason=%r", outcome.channel, outcome.error)
        elif publisher is None:
            outcome.error = f"no {platform} output is configured"
            log.warning("channel_skipped channel=%s reason=%r", outcome.channel, outcome.error)
        return None if outcome.error else publisher

    async def _plan(
        self,
        channel: Channel,
        keywords: Sequence[str],
        fetched: Fetched,
        publisher: Publisher,
        hold: Hold | None,
    ) -> Plan:
        """The channel's plan, its papers with the details the run fetched."""
        plan = await self._planner.build(
            channel,
            keywords,
            fetched,
            shows_everything=shows_everything(publisher),
            dry_run=self._dry_run,
            hold=hold,
        )
        plan.digest.items = [
            replace(item, paper=with_details(item.paper, fetched.details.get(item.paper.id)))
            for item in plan.digest.items
        ]
        return plan

    async def _add_recent(self, digest: Digest, keywords: Sequence[str], fetched: Fetched) -> None:
        """Each keyword's recent list, for an output that shows it whole (Markdown)."""
        for keyword in keywords:
            digest.recent[keyword] = await self._store.recent(
                keyword, self._settings.arxiv.max_results
            ) or fetched.candidates(digest.channel, keyword)

    async def _post(
        self,
        publisher: Publisher,
        plan: Plan,
        outcome: ChannelOutcome,
        day: date | None,
        hold: Hold | None,
    ) -> None:
        """Publish the plan's digest, recording each message's papers as it goes out."""
        channel, digest = outcome.channel, plan.digest
        versions = {item.paper.id: item.paper for item in digest.items}
        sent = _Sent([], [])

        async def delivered(ids: Sequence[str]) -> None:
            outcome.delivered += len(ids)
            reporting().posted(len(ids))
            metrics.posted(channel.platform, len(ids))
            if plan.options.weekly:
                sent.week.extend(versions[i] for i in ids)
            if not self._dry_run:
                seen = seen_keys([versions[i] for i in ids])
                if outcome.delivered < len(digest.items) or self._stop.is_set():
                    # Out already: recorded even when the deadline cuts `publish` short.
                    await asyncio.shield(self._record(channel, seen))
                else:
                    sent.last.extend(seen)
            if self._stop.is_set():
                raise DigestStopped
            if hold is not None and not await still_held(self._store, hold, self._lock_ttl):
                raise LockLost

        try:
            await self._publish(publisher, digest, delivered)
        except BaseException:
            if sent.last:  # failed after its last message was out
                await self._record(channel, sent.last)
            await self._note_week(channel, sent.week)
            raise
        await self._note_week(channel, sent.week)
        await self._finish(plan, day, hold, posted=sent.last)

    def _failed(self, outcome: ChannelOutcome, err: Exception) -> None:
        """Why the channel's delivery ended early, in its outcome and the log."""
        channel = outcome.channel
        if isinstance(err, DeliveryError):
            outcome.error, outcome.gone = err.reason, err.gone
            if not err.everywhere:
                log.error("channel_failed channel=%s reason=%r", channel, err.reason)
            elif channel.platform not in self._refused:
                self._refused[channel.platform] = err.reason
                log.error(
                    "output_failed platform=%s reason=%r: no %s channel gets messages until "
                    "this is fixed; their papers wait for the next run",
                    channel.platform,
                    err.reason,
                    channel.platform,
                )
        elif isinstance(err, STORE_ERRORS):
            outcome.error = store_error(err)
            log.error("channel_failed channel=%s reason=%r", channel, outcome.error)
        elif isinstance(err, LockLost):
            outcome.error = (
                "another replica took the channel's lock (this one paused longer than "
                "lock_ttl); stopped posting here"
            )
            log.error("channel_failed channel=%s reason=%r", channel, outcome.error)
        elif isinstance(err, DigestStopped):
            outcome.error = "stopped; the rest comes next run"
            log.info("channel_stopped channel=%s delivered=%d", channel, outcome.delivered)
        else:
            outcome.error = f"{type(err).__name__}: {err}"
            log.exception("channel_failed channel=%s", channel)

    async def _note_week(self, channel: Channel, papers: Sequence[Paper]) -> None:
        """The papers a weekly channel received, for its weekly post (best effort)."""
        if papers and not self._dry_run:
            await write_cache(
                self._store, "week", lambda: self._store.signals.note_posted(channel, papers)
            )

    async def _publish(self, publisher: Publisher, digest: Digest, delivered: Delivered) -> None:
        """`publisher.publish` within the channel's deadline: a platform that makes it wait
        (rate limits, slow answers) holds up this channel only, and not past the deadline."""
        deadline = self._deadline
        try:
            async with asyncio.timeout(deadline) as limit:
                await publisher.publish(digest, delivered)
        except TimeoutError:
            if not limit.expired():
                raise
            raise DeliveryError(
                digest.channel,
                f"delivery took longer than [digest] channel_deadline ({deadline:g}s); "
                "the rest comes next run",
            ) from None

    async def _record(
        self,
        channel: Channel,
        seen: list[str],
        write: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Mark a posted message's papers seen (by `write` when given: writes that carry
        them). The message is out already, so a short Redis outage is waited out (up to
        `mark_retry` seconds) rather than risk posting it again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._mark_retry
        wait, warned = 0.05, False
        while True:
            try:
                await (self._store.mark_message_seen(channel, seen) if write is None else write())
            except STORE_ERRORS as err:
                if loop.time() + wait > deadline:
                    log.error(
                        "seen_not_recorded channel=%s keys=%d error=%r: the message was posted "
                        "but Redis did not take it within %gs; the next run may post it again",
                        channel,
                        len(seen),
                        str(err),
                        self._mark_retry,
                    )
                    raise
                if not warned:
                    log.warning(
                        "seen_retry channel=%s error=%r: Redis is unreachable, retrying for %gs",
                        channel,
                        str(err),
                        self._mark_retry,
                    )
                    warned = True
                await asyncio.sleep(wait)
                wait = min(wait * 2, 1.0)
            else:
                if warned:
                    log.info("seen_recorded channel=%s: Redis is back", channel)
                return

    async def _finish(
        self, plan: Plan, day: date | None, hold: Hold | None, *, posted: Sequence[str] = ()
    ) -> None:
        """The channel's final writes in one round trip (none in a dry run): `posted` (the
        seen keys of the digest's last message, out already: retried like `_record`) and the
        skipped papers marked seen, the first runs and the listing day noted, the lock let go."""
        if self._dry_run:
            return
        channel = plan.digest.channel
        lock = (hold.name, hold.owner) if hold else None
        seen = [*posted, *seen_keys(plan.skipped)]

        async def write() -> None:
            await self._store.finish(channel, seen, plan.first_run, day, lock)

        if hold:
            hold.released = True  # no renewal from now on; `held` has nothing left to do
        try:
            await (self._record(channel, list(posted), write) if posted else write())
        except BaseException:
            if hold:
                hold.released = False  # `held` lets it go (or it expires)
            raise


def store_error(err: Exception) -> str:
    return f"Redis unreachable: {err}"
