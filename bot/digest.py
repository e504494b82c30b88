"""One digest run: read the day's listing, match it, find what is new per channel, publish.

What "new" means, as arXiv means it: a paper arXiv announced (its daily listing) that the
channel has not received, however long ago it was submitted (`new` and `cross`); a new
version (`replace`, `replace-cross`) only for channels with `revisions` on. The listing
costs one request for any number of keywords; the papers about to be posted get their
submission dates and comments from one `id_list` request per 400. A channel that missed a
listing (the bot was down, or the channel failed that day) is caught up with batched window
queries over the submissions since, and every channel is when the listing can't be read.
Each channel remembers the last listing it received in full, so one listing is posted once.

This module runs the whole: reading arXiv is `bot.fetching`, a channel's plan (what it gets)
is `bot.plan`, its delivery (lock, post, record) is `bot.delivery`, its options `bot.options`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot import metrics
from bot.alerts import follow_saved
from bot.arxiv_source import ArxivError, ArxivSource, describe
from bot.delivery import MARK_RETRY, ChannelOutcome, Delivery, store_error
from bot.fetching import Fetched, Fetcher, Subscriptions
from bot.listing import REVISIONS, previous_listing_day, with_details
from bot.matching import distinct
from bot.models import Channel, Paper, utcnow
from bot.plan import Planner
from bot.progress import Progress, reporting, reporting_to
from bot.publishing import STOP_ASKED, Publisher, shows_everything
from bot.settings import Settings
from bot.state import STORE_ERRORS, Store, write_cache

log = logging.getLogger(__name__)

CHANNEL_CONCURRENCY = 500
"""Channels delivered at once. Each output paces its own channels (Slack about one message
a second per channel), so this bound only needs to keep sockets and Redis connections sane."""


@dataclass(slots=True)
class RunReport:
    keywords: int = 0
    failed_keywords: dict[str, str] = field(default_factory=dict)
    channels: list[ChannelOutcome] = field(default_factory=list)
    arxiv_requests: int = 0
    stale: str | None = None
    """Why the listing was refused as one received before: nothing was posted."""

    @property
    def ok(self) -> bool:
        return (
            not self.failed_keywords
            and self.stale is None
            and all(c.error is None for c in self.channels)
        )

    @property
    def delivered(self) -> int:
        return sum(c.delivered for c in self.channels)


async def all_subscriptions(settings: Settings, store: Store) -> dict[Channel, list[str]]:
    """Keywords per channel: those of the settings file first, then those added from chat."""
    merged: dict[Channel, list[str]] = {}
    for sub in settings.subscriptions:
        merged.setdefault(Channel(sub.platform, sub.channel), []).extend(sub.keywords)
    for channel in await store.subscribed_channels():
        chat = [s.keyword for s in await store.subscriptions(channel)]
        merged.setdefault(channel, []).extend(chat)
    return {channel: distinct(kws) for channel, kws in merged.items() if kws}


class DigestRunner:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        source: ArxivSource,
        publishers: Mapping[str, Publisher],
        *,
        clock: Callable[[], datetime] = utcnow,
        concurrency: int = CHANNEL_CONCURRENCY,
        progress: Progress | None = None,
        mark_retry: float = MARK_RETRY,
        channel_deadline: float | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._source = source
        self._publishers = publishers
        self._clock = clock
        self._concurrency = concurrency
        self._progress = progress
        self._stopping = False
        self._stop_asked = asyncio.Event()
        """Set with `_stopping`: ends a wait for a channel's lock at once."""
        self._mark_retry = mark_retry
        self._deadline = channel_deadline or settings.digest.channel_deadline
        """Seconds one channel's `publish` may take (`[digest] channel_deadline`)."""
        self.lock_ttl = settings.service.lock_ttl
        self._fetcher = Fetcher(settings, store, source, clock=clock, concurrency=concurrency)

    def stop(self) -> None:
        """Finish the messages in flight, then deliver nothing more in this run."""
        self._stopping = True
        self._stop_asked.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(
        self, channels: Mapping[Channel, Sequence[str]] | None = None, *, dry_run: bool = False
    ) -> RunReport:
        shown = reporting_to(self._progress) if self._progress else contextlib.nullcontext()
        started = time.monotonic()
        outcome = "error"
        with shown:  # without one, the caller's (`bot.progress.reporting`); waits too
            try:
                report = await self._run(channels, dry_run=dry_run)
                outcome = _outcome(report, stopped=self._stopping)
                return report
            finally:
                metrics.digest_done(outcome, time.monotonic() - started)

    async def _run(
        self, channels: Mapping[Channel, Sequence[str]] | None, *, dry_run: bool
    ) -> RunReport:
        if channels is None:
            channels = await all_subscriptions(self._settings, self._store)
        requests_before = self._source.request_count
        keywords = distinct(k for kws in channels.values() for k in kws)
        fetched = await self.fetch(keywords, channels=channels, dry_run=dry_run)
        if fetched.stale is not None:
            return RunReport(
                keywords=len(keywords),
                channels=[ChannelOutcome(c, error="the listing is stale") for c in channels],
                arxiv_requests=self._source.request_count - requests_before,
                stale=fetched.stale,
            )
        with metrics.phase("details"):
            await self._fill_details(channels, fetched)
        if not dry_run:
            await self._save_recent(channels, fetched)
            await self._remember(channels, fetched)
            if fetched.day is not None:  # a first listing that fails is a missed one
                for channel in fetched.first:
                    await self._store.set_listing_day(channel, previous_listing_day(fetched.day))
        done = await self._deliver_all(channels, fetched, dry_run=dry_run)
        if not dry_run:
            await self._count_gone(done)
            await self._follow_saved(fetched)
        by_channel = {outcome.channel: outcome for outcome in done}
        report = RunReport(
            keywords=len(keywords),
            failed_keywords=fetched.failed,
            channels=[by_channel[c] for c in channels],
            arxiv_requests=self._source.request_count - requests_before,
        )
        log.info(
            "digest_done day=%s keywords=%d failed_keywords=%d channels=%d delivered=%d "
            "arxiv_requests=%d",
            fetched.day,
            report.keywords,
            len(report.failed_keywords),
            len(report.channels),
            report.delivered,
            report.arxiv_requests,
        )
        return report

    async def _deliver_all(
        self, channels: Subscriptions, fetched: Fetched, *, dry_run: bool
    ) -> list[ChannelOutcome]:
        """Every channel's delivery (`bot.delivery`), `concurrency` at once."""
        delivery = Delivery(
            self._settings,
            self._store,
            self._publishers,
            Planner(self._settings, self._store, clock=self._clock, lock_ttl=self.lock_ttl),
            stop=self._stop_asked,
            dry_run=dry_run,
            lock_ttl=self.lock_ttl,
            deadline=self._deadline,
            mark_retry=self._mark_retry,
        )
        limit = asyncio.Semaphore(self._concurrency)

        async def one(channel: Channel, kws: Sequence[str]) -> ChannelOutcome:
            async with limit:
                try:
                    outcome = await delivery.deliver(channel, kws, fetched)
                except STORE_ERRORS as err:  # the channel lock could not be taken
                    log.error("channel_failed channel=%s reason=%r", channel, store_error(err))
                    outcome = ChannelOutcome(channel, error=store_error(err))
            if outcome.error is not None and not self._stopping:
                metrics.channel_failed(channel.platform)
            reporting().channel_done(outcome.error is not None)
            return outcome

        # Channels with the most to post start first: a channel holds its slot for as many
        # paced messages as it posts, and one started last would end long after the rest.
        cap = self._settings.digest.max_papers_per_channel
        busiest_first = sorted(
            channels.items(), key=lambda ck: -expected_papers(fetched, cap, ck[1])
        )
        reporting().channels(len(channels))
        asked = STOP_ASKED.set(self._stop_asked)  # publishers' waits end on a stop
        try:
            with metrics.phase("delivery"):
                return await asyncio.gather(*(one(c, k) for c, k in busiest_first))
        finally:
            STOP_ASKED.reset(asked)

    async def fetch(
        self, keywords: Sequence[str], *, channels: Subscriptions, dry_run: bool = False
    ) -> Fetched:
        """What the run reads from arXiv for these keywords (`bot.fetching.Fetcher.fetch`)."""
        return await self._fetcher.fetch(keywords, channels=channels, dry_run=dry_run)

    async def _fill_details(self, channels: Subscriptions, fetched: Fetched) -> None:
        await self._fetcher.fill_details(channels, fetched)

    async def _save_recent(self, channels: Subscriptions, fetched: Fetched) -> None:
        """Each keyword's recent list gains what the listing announced as new and what
        catch-up found; a keyword that a full-list output (Markdown) shows for the first
        time gets its latest `max_results` from a search of its own."""
        await write_cache(self._store, "recent", lambda: self._save_recent_now(channels, fetched))

    async def _save_recent_now(self, channels: Subscriptions, fetched: Fetched) -> None:
        cfg = self._settings.arxiv
        found: dict[str, list[Paper]] = {}
        for keyword, papers in [*fetched.papers.items(), *fetched.catch_up.items()]:
            fresh = [
                with_details(p, fetched.details.get(p.id))
                for p in papers
                if fetched.kinds.get(p.id) not in REVISIONS
            ]
            found.setdefault(keyword, []).extend(fresh)
        await self._store.save_recent({k: v for k, v in found.items() if v}, cfg.max_results)

        full = distinct(
            k
            for channel, kws in channels.items()
            if (output := self._publishers.get(channel.platform)) and output.needs_recent
            for k in kws
        )
        last = await self._store.last_fetched(full)
        for keyword in [k for k in full if last[k] is None]:
            try:
                latest = await self._source.latest(keyword, cfg.max_results)
            except ArxivError as err:
                log.error("arxiv_failed keywords=%s error=%r", describe([keyword]), str(err))
                continue
            await self._store.save_recent({keyword: latest}, cfg.max_results)
            await self._store.set_fetched([keyword], self._clock())

    async def _remember(self, channels: Subscriptions, fetched: Fetched) -> None:
        """The run's papers, for the buttons under them: a vote or a save finds its paper's
        title and abstract without asking arXiv. Best effort: a press can ask arXiv instead."""
        outputs = [self._publishers.get(channel.platform) for channel in channels]
        if not self._settings.signals.buttons or all(map(shows_everything, outputs)):
            return
        papers = {p.id: p for found in fetched.papers.values() for p in found}
        papers.update((p.id, p) for found in fetched.catch_up.values() for p in found)
        await write_cache(
            self._store,
            "papers",
            lambda: self._store.signals.remember(
                with_details(p, fetched.details.get(p.id)) for p in papers.values()
            ),
        )

    async def _follow_saved(self, fetched: Fetched) -> None:
        """Private alerts to the savers of the papers this run read (`bot.alerts`), after
        the channels' digests, which they never hold up. Best effort."""
        if not self._settings.signals.alerts or self._stopping:
            return
        caught_up = (p for found in fetched.catch_up.values() for p in found)
        papers = [with_details(p, fetched.details.get(p.id)) for p in fetched.announced]
        try:
            await follow_saved(self._store, self._publishers, [*papers, *caught_up])
        except STORE_ERRORS as err:
            log.warning("alerts_not_sent error=%r", store_error(err))

    async def _count_gone(self, outcomes: Sequence[ChannelOutcome]) -> None:
        """Counts the days each channel was gone, in a row (a delivery clears its count), and
        drops the chat subscriptions of one gone for `drop_after_failures` days."""
        limit = self._settings.commands.drop_after_failures
        today = self._clock().date()
        try:
            counts = await self._store.gone_counts([o.channel for o in outcomes])
            back = [o.channel for o in outcomes if o.channel in counts and o.error is None]
            await self._store.forget_gone(back)
            for outcome in outcomes:
                if outcome.gone:
                    days = await self._store.note_gone(outcome.channel, today)
                    if days >= limit:
                        await self._drop(outcome, days)
        except STORE_ERRORS as err:
            log.warning("gone_not_counted error=%r", store_error(err))

    async def _drop(self, outcome: ChannelOutcome, days: int) -> None:
        channel = outcome.channel
        await self._store.drop_channel(channel)
        in_file = any(
            Channel(s.platform, s.channel) == channel for s in self._settings.subscriptions
        )
        log.warning(
            "channel_dropped channel=%s days=%d reason=%r: its chat keywords are removed%s",
            channel,
            days,
            outcome.error,
            "; its settings-file keywords stay (remove them from the file)" if in_file else "",
        )


def expected_papers(fetched: Fetched, cap: int, keywords: Sequence[str]) -> int:
    """The most papers a channel may post this run: its keywords' listed papers, capped."""
    return min(cap, len({p.id for k in keywords for p in fetched.papers.get(k, [])}))


def _outcome(report: RunReport, *, stopped: bool) -> str:
    """How a run ended, for `/metrics` (`bot.metrics.digest_done`)."""
    if report.stale is not None:
        return "stale"
    if stopped:
        return "stopped"
    return "ok" if report.ok else "failed"
