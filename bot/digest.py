"""One digest run: read the day's listing, match it, find what is new per channel, publish.

What "new" means, as arXiv means it: a paper arXiv announced (its daily listing) that the
channel has not received, however long ago it was submitted (`new` and `cross`); a new
version (`replace`, `replace-cross`) only for channels with `revisions` on. The listing
costs one request for any number of keywords; the papers about to be posted get their
submission dates and comments from one `id_list` request per 400. A channel that missed a
listing (the bot was down, or the channel failed that day) is caught up with batched window
queries over the submissions since, and every channel is when the listing can't be read.
Each channel remembers the last listing it received in full, so one listing is posted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from bot import metrics
from bot.alerts import follow_saved
from bot.arxiv_source import ArxivError, ArxivQueryError, ArxivSource, describe
from bot.explain import RANKED_TERMS, why
from bot.keywords import normalize
from bot.listing import (
    ARXIV_ZONE,
    CATCH_UP_LIMIT,
    REVISIONS,
    Listing,
    catch_up_since,
    missed_days,
    next_listing_day,
    previous_listing_day,
    with_details,
)
from bot.listing import spec as listing_spec
from bot.listing_guard import ListingMemory, StaleListing, read_day
from bot.matching import assign, batches, distinct, newest_versions
from bot.models import Channel, Digest, DigestItem, Paper, Why, newest_first, utcnow
from bot.oai import OaiError
from bot.progress import Progress, reporting, reporting_to
from bot.publishing import STOP_ASKED, Delivered, DeliveryError, Publisher
from bot.ranking import rank_explained
from bot.settings import Settings
from bot.state import STORE_ERRORS, LockClaim, Store, write_cache
from bot.state.locks import Hold, expiry_wait, held, still_held

log = logging.getLogger(__name__)

FULL_LIST_PLATFORMS = frozenset({"markdown", "console"})
"""Outputs that show everything new at once: no first-run limit for a new keyword."""

Subscriptions = Mapping[Channel, Sequence[str]]

CHANNEL_CONCURRENCY = 500
"""Channels delivered at once. Each output paces its own channels (Slack about one message
a second per channel), so this bound only needs to keep sockets and Redis connections sane."""

MARK_RETRY = 30.0
"""Seconds to keep trying to record a posted message as seen while Redis is away: a short
blip must not make the next run post the message again."""


class DigestStopped(Exception):
    """Raised after a delivered message once a stop was asked for: the rest waits."""


class LockLost(Exception):
    """The channel's lock is another replica's now (this one paused past `lock_ttl`)."""


class ChannelBusy(Exception):
    """Another process holds the channel's lock (found by the state read that would take it)."""


@dataclass(slots=True)
class ChannelOutcome:
    channel: Channel
    delivered: int = 0
    pending: int = 0
    error: str | None = None
    gone: bool = False
    """The platform says the channel is gone (`DeliveryError.gone`)."""


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


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    revisions: bool = False
    """Announce a new version of a paper the channel already received."""
    quiet_days: bool = False
    """Post a one-line "no new papers" when a run finds nothing."""
    weekly: bool = False
    """Post the week's most voted papers once a week (bot/weekly.py)."""


OPTION_NAMES = ("revisions", "quiet_days", "weekly")


async def channel_options(settings: Settings, store: Store, channel: Channel) -> ChannelOptions:
    """The settings file's flags for the channel, overridden by what chat set."""
    return merged_options(settings, channel, await store.channel_options(channel))


def merged_options(
    settings: Settings, channel: Channel, chosen: Mapping[str, bool]
) -> ChannelOptions:
    merged = dict.fromkeys(OPTION_NAMES, False)
    for sub in settings.subscriptions:
        if Channel(sub.platform, sub.channel) == channel:
            merged["revisions"] |= sub.revisions
            merged["quiet_days"] |= sub.quiet_days
            merged["weekly"] |= sub.weekly
    merged.update({k: v for k, v in chosen.items() if k in OPTION_NAMES})
    return ChannelOptions(**merged)


def seen_keys(papers: Sequence[Paper]) -> list[str]:
    """What a channel remembers of delivered papers: the id, and the version after v1."""
    return [p.id for p in papers] + [p.version_key for p in papers if p.version > 1]


@dataclass(slots=True)
class Fetched:
    papers: dict[str, list[Paper]]
    """Per keyword: its papers in the day's listing (every keyword of the run is here,
    with no papers when none matched), or nothing when the listing could not be read."""
    failed: dict[str, str]
    """Keywords whose catch-up queries failed, with the reason."""
    day: date | None = None
    """The listing's announcement day; None when it could not be read."""
    stale: str | None = None
    """Set when the listing was one received before: nothing is delivered this run."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Each listed paper's announce type (`new`, `cross`, `replace`, `replace-cross`)."""
    catch_up: dict[str, list[Paper]] = field(default_factory=dict)
    """Per keyword: what window queries found for the channels in `behind`."""
    behind: set[Channel] = field(default_factory=set)
    """Channels that missed a listing (or all, when there is none): they get `catch_up`."""
    received: set[Channel] = field(default_factory=set)
    """Channels that received this day's listing in full already."""
    first: set[Channel] = field(default_factory=set)
    """Channels that never received a listing: this one is their first."""
    details: dict[str, Paper] = field(default_factory=dict)
    """Submission dates and comments of listed papers about to be posted, by id."""
    announced: list[Paper] = field(default_factory=list)
    """Every paper of the listing and of the listings a catch-up rebuilt, matched or not:
    what saved papers are followed in (`bot.alerts`)."""

    def complete(self, channel: Channel, keywords: Sequence[str]) -> bool:
        """Whether every keyword of the channel was fully looked at in this run."""
        return channel not in self.behind or not any(k in self.failed for k in keywords)

    def candidates(self, channel: Channel, keyword: str) -> list[Paper]:
        found = self.papers.get(keyword, [])
        if channel in self.behind:
            found = newest_versions([*found, *self.catch_up.get(keyword, [])])
        return found


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
        limit = asyncio.Semaphore(self._concurrency)
        refused: dict[str, str] = {}  # platform -> why its output refuses every channel

        async def one(channel: Channel, kws: Sequence[str]) -> ChannelOutcome:
            async with limit:
                try:
                    outcome = await self._deliver(channel, kws, fetched, refused, dry_run=dry_run)
                except STORE_ERRORS as err:  # the channel lock could not be taken
                    log.error("channel_failed channel=%s reason=%r", channel, _store_error(err))
                    outcome = ChannelOutcome(channel, error=_store_error(err))
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
                done = await asyncio.gather(*(one(c, k) for c, k in busiest_first))
        finally:
            STOP_ASKED.reset(asked)
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

    async def fetch(
        self, keywords: Sequence[str], *, channels: Subscriptions, dry_run: bool = False
    ) -> Fetched:
        """The day's whole listing (`bot.listing_guard`), matched locally against every
        keyword: requests grow with the day's volume, never with keywords. A listing received
        before is refused (`Fetched.stale`). Channels that missed a listing (the bot was down,
        or a failure kept a channel from receiving a day in full), and every channel when the
        listing can't be read, also get batched window queries over the days they missed."""
        cfg = self._settings.arxiv
        now = self._clock()
        result = Fetched(papers={}, failed={})
        try:
            with metrics.phase("listing"):
                listing = await self._read_listing(save=not dry_run)
        except StaleListing as err:
            log.warning(
                "listing_stale feed=%s: %s; nothing is posted from it, it is read again later",
                err.feed,
                err,
            )
            result.stale = str(err)
            return result
        except ArxivError as err:
            log.error("arxiv_listing_failed error=%r: searching the window instead", str(err))
        else:
            result.day = listing.day
            result.kinds = listing.kinds()
            listed = [item.paper for item in listing.items]
            result.announced.extend(listed)
            result.papers = await asyncio.to_thread(assign, listed, keywords)
        self._advance(1, 1)

        days = await self._store.listing_days(list(channels))
        since = now
        for channel in channels:
            last = days.get(channel)
            if missed_days(last, result.day):
                result.behind.add(channel)
                since = min(since, catch_up_since(last, now, cfg.window_days))
            elif last is None:
                result.first.add(channel)
            elif result.day is not None and last >= result.day:
                result.received.add(channel)
        behind = distinct(k for c, kws in channels.items() if c in result.behind for k in kws)
        oldest = min((d for c in result.behind if (d := days.get(c)) is not None), default=None)
        with metrics.phase("catch_up"):
            if behind and result.day is not None and oldest is not None:
                if await self._catch_up_announced(behind, oldest, result.day, result):
                    return result
                log.info("catch_up channels=%d since=%s", len(result.behind), since.date())
            await self._search_window(behind, since, now, result)
        return result

    async def _catch_up_announced(
        self, keywords: Sequence[str], last: date, today: date, result: Fetched
    ) -> bool:
        """The listings after `last` and before `today`'s, rebuilt from what arXiv announced
        (OAI-PMH), into `result.catch_up` with their types; False when OAI-PMH can't be read
        (the caller searches submission windows instead)."""
        if not self._settings.arxiv.oai_url:
            return False
        first = max(next_listing_day(last), today - CATCH_UP_LIMIT)
        final = previous_listing_day(today)
        if first > final:
            return True
        try:
            found = await self._source.announced(first, final)
        except (ArxivError, OaiError, ValueError) as err:
            log.warning(
                "catch_up_oai_failed first=%s last=%s error=%r: searching submission windows",
                first,
                final,
                str(err),
            )
            return False
        for item in found:
            result.kinds.setdefault(item.paper.id, item.kind)
        result.announced.extend(item.paper for item in found)
        result.catch_up = await asyncio.to_thread(assign, [a.paper for a in found], keywords)
        log.info(
            "catch_up source=oai first=%s last=%s announced=%d channels=%d",
            first,
            final,
            len(found),
            len(result.behind),
        )
        self._advance(1, 1)
        return True

    async def _read_listing(self, *, save: bool) -> Listing:
        """The whole listing through the guard, with the memory of the last one received
        (read from and, unless `save` is off, written to the store)."""
        feed = listing_spec(self._settings.arxiv.categories)
        memory = ListingMemory.loads(await self._store.listing_memory(feed))
        today = self._clock().astimezone(ARXIV_ZONE).date()
        read = await read_day(
            self._source.listing_part, self._settings.arxiv.categories, memory, today=today
        )
        log.info(
            "listing_read feed=%s day=%s papers=%d requests=%d next_split=%d",
            feed,
            read.listing.day,
            len(read.listing.items),
            read.requests,
            len(read.memory.split),
        )
        if save:
            await self._store.set_listing_memory(feed, read.memory.dumps())
        return read.listing

    async def _fill_details(self, channels: Subscriptions, fetched: Fetched) -> None:
        """Submission dates and comments of the listed papers that some channel is about to
        receive (the listing has neither): `DETAILS_PER_REQUEST` papers an API request. When
        arXiv doesn't answer, papers go out with the listing's data."""
        if not fetched.kinds:
            return  # nothing listed: the search API's papers come with their details
        cap = self._settings.digest.max_papers_per_channel
        wanted: dict[str, None] = {}
        limit = asyncio.Semaphore(self._concurrency)

        async def plan(channel: Channel, keywords: Sequence[str]) -> None:
            """At most `cap` listed papers the channel hasn't received: a superset of what
            `build` will post (first-run quotas aside), for one Redis round trip."""
            listed = newest_versions(
                p for k in keywords for p in fetched.papers.get(k, []) if p.id in fetched.kinds
            )
            async with limit:
                try:
                    state = await self._store.channel_state(channel, seen_keys(listed))
                except STORE_ERRORS:
                    return  # this channel's delivery will say so
            options = merged_options(self._settings, channel, state.options)
            if not options.revisions:
                listed = [p for p in listed if fetched.kinds[p.id] not in REVISIONS]
            unseen = state.unseen
            new = [p for p in newest_first(listed) if p.version_key in unseen or p.id in unseen]
            wanted.update((p.id, None) for p in new[:cap])

        await asyncio.gather(*(plan(c, k) for c, k in channels.items()))
        if not wanted:
            return
        try:
            fetched.details = await self._source.details(list(wanted))
        except ArxivError as err:
            log.warning("arxiv_details_failed error=%r: posting the listing's data", str(err))

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
        if not self._settings.signals.buttons or all(map(shows_everything, channels)):
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
            log.warning("alerts_not_sent error=%r", _store_error(err))

    def _advance(self, done: int, total: int) -> None:
        reporting().queried(done, total)

    async def _search_window(
        self, keywords: Sequence[str], since: datetime, until: datetime, result: Fetched
    ) -> None:
        """Papers submitted in [since, until] per keyword, `batch_size` keywords a query,
        into `result.catch_up`; a batch arXiv refuses is retried one keyword at a time."""
        pending = batches(keywords, self._settings.arxiv.batch_size)
        done, total = 0, len(pending)
        while pending:
            batch = pending.pop(0)
            try:
                papers = await self._source.window(batch, since, until)
            except ArxivQueryError as err:
                if len(batch) > 1:
                    log.warning(
                        "arxiv_batch_refused keywords=%s: retrying one by one", describe(batch)
                    )
                    pending[:0] = [[k] for k in batch]
                    total += len(batch)
                else:
                    self._failed(result, batch, err)
            except ArxivError as err:
                self._failed(result, batch, err)
            else:
                if len(batch) == 1:  # arXiv's own answer for the keyword: nothing to re-match
                    result.catch_up[batch[0]] = newest_versions(papers)
                else:
                    result.catch_up.update(await asyncio.to_thread(assign, papers, batch))
            done += 1
            self._advance(done, total)

    @staticmethod
    def _failed(result: Fetched, keywords: Sequence[str], err: Exception) -> None:
        log.error("arxiv_failed keywords=%s error=%r", describe(keywords), str(err))
        for keyword in keywords:
            result.failed[keyword] = str(err)

    async def build(
        self,
        channel: Channel,
        keywords: Sequence[str],
        fetched: Fetched,
        *,
        dry_run: bool,
        hold: Hold | None = None,
    ) -> tuple[Digest, list[Paper], list[str], ChannelOptions]:
        """The channel's digest, the papers to mark seen without posting (first-run
        overflow and the cap's overflow), the keywords whose first run this is, and the
        channel's options. What it reads of the channel is one Redis round trip, which also
        takes the channel's lock (`hold`; `ChannelBusy` when another process has it) and
        notes the day's delivery attempt (`Digest.resumed`), except in a dry run."""
        cfg = self._settings.digest
        behind = channel in fetched.behind
        ok = [k for k in keywords if not (behind and k in fetched.failed)]
        matched: dict[str, tuple[Paper, list[str]]] = {}
        for keyword in ok:
            for paper in fetched.candidates(channel, keyword):
                matched.setdefault(paper.id, (paper, []))[1].append(keyword)
        today = self._clock().date()
        state = await self._store.channel_state(
            channel,
            seen_keys([paper for paper, _ in matched.values()]),
            ok,
            attempt=None if dry_run else today,
            taste=self._settings.signals.rank and not shows_everything(channel),
            lock=None if hold is None else LockClaim(hold.name, hold.owner, self.lock_ttl),
        )
        if not state.locked:
            raise ChannelBusy
        if hold is not None:
            hold.taken = True
            hold.confirm()
        options = merged_options(self._settings, channel, state.options)
        if not options.revisions:  # a replacement is news only where revisions are on
            matched = {
                pid: found
                for pid, found in matched.items()
                if fetched.kinds.get(pid) not in REVISIONS
            }
        candidates = [paper for paper, _ in matched.values()]
        unseen = state.unseen
        revised = {
            p.id
            for p in candidates
            if options.revisions
            and p.version_key in unseen
            and (p.id not in unseen or fetched.kinds.get(p.id) in REVISIONS)
        }
        first_run = [k for k in ok if k not in state.baselined]
        if shows_everything(channel):
            first_run = []

        new = newest_first([p for p in candidates if p.id in unseen or p.id in revised])
        raised: dict[str, tuple[str, ...]] = {}
        if len(new) > 1 and not state.taste.empty:
            # What the channel voted for first; the cap keeps the best.
            ranked = await asyncio.to_thread(rank_explained, new, state.taste, RANKED_TERMS)
            new, raised = [p for p, _ in ranked], {p.id: terms for p, terms in ranked}
        posted: list[Paper] = []
        skipped: list[Paper] = []
        first_run_quota = {normalize(k): cfg.first_run_papers for k in first_run}
        for paper in new:
            # Held back only when every keyword it matches holds it (just added, shown in
            # the add's preview), or is in its first run with the quota used up.
            kws = [k for k in matched[paper.id][1] if not held_back(state.held, k, paper)]
            if not kws:
                skipped.append(paper)
                continue
            if all(normalize(k) in first_run_quota for k in kws):
                quota_key = normalize(kws[0])
                if first_run_quota[quota_key] <= 0:
                    skipped.append(paper)
                    continue
                first_run_quota[quota_key] -= 1
            posted.append(paper)

        def explained(paper: Paper) -> Why | None:
            if not self._settings.signals.explain:
                return None
            return why(paper, matched[paper.id][1][0], raised.get(paper.id, ()))

        over_cap = posted[cfg.max_papers_per_channel :]
        skipped.extend(over_cap)
        posted = posted[: cfg.max_papers_per_channel]

        digest = Digest(
            channel=channel,
            day=today,
            keywords=tuple(keywords),
            items=[
                DigestItem(p, tuple(matched[p.id][1]), p.id in revised, why=explained(p))
                for p in posted
            ],
            more=len(over_cap),
            resumed=state.resumed,
        )
        return digest, skipped, first_run, options

    async def _deliver(
        self,
        channel: Channel,
        keywords: Sequence[str],
        fetched: Fetched,
        refused: dict[str, str],
        *,
        dry_run: bool,
    ) -> ChannelOutcome:
        if dry_run:
            return await self._deliver_unlocked(channel, keywords, fetched, refused, dry_run=True)
        # Two processes never post to one channel at once, even when a run lock was lost.
        name = f"channel:{{{channel.key}}}"
        try:
            async with held(self._store, name, self.lock_ttl, taken_by_block=True) as hold:
                return await self._deliver_unlocked(
                    channel, keywords, fetched, refused, dry_run=False, hold=hold
                )
        except ChannelBusy:
            pass
        # Held by a live process finishing this channel, or by one that died, whose lock
        # expires within lock_ttl: wait for either, rather than leave the channel till next run.
        patience = expiry_wait(self.lock_ttl)
        log.info(
            "channel_busy channel=%s: another process holds its lock; waiting up to %gs",
            channel,
            patience,
        )
        async with held(
            self._store, name, self.lock_ttl, wait=patience, stop=self._stop_asked
        ) as mine:
            if not mine and self._stopping:
                return ChannelOutcome(channel, error="stopped before delivery")
            if mine:
                log.info("channel_free channel=%s: its lock was let go or expired", channel)
                await self._reread_listing_day(channel, fetched)
                with contextlib.suppress(ChannelBusy):  # lost again before the state read
                    return await self._deliver_unlocked(
                        channel, keywords, fetched, refused, dry_run=False, hold=mine
                    )
        log.warning(
            "channel_failed channel=%s: another replica kept posting here for %gs "
            "(its lock is being renewed); the channel's papers come next run",
            channel,
            patience,
        )
        return ChannelOutcome(channel, error="another replica is posting here")

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
            log.warning("gone_not_counted error=%r", _store_error(err))

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

    async def _reread_listing_day(self, channel: Channel, fetched: Fetched) -> None:
        """After waiting for the channel's lock: the holder may have delivered this listing in
        full meanwhile. `build` re-reads which papers the channel has; this re-reads whether it
        has the day, so a quiet-days channel gets no "no new papers" line after its papers."""
        if fetched.day is None or channel in fetched.received:
            return
        day = (await self._store.listing_days([channel])).get(channel)
        if day is not None and day >= fetched.day:
            fetched.received.add(channel)

    async def _deliver_unlocked(
        self,
        channel: Channel,
        keywords: Sequence[str],
        fetched: Fetched,
        refused: dict[str, str],
        *,
        dry_run: bool,
        hold: Hold | None = None,
    ) -> ChannelOutcome:
        """The channel's delivery. Its lock (`hold`) is taken or kept by `build`'s state read
        (`ChannelBusy` when another process holds it) and let go in the round trip of the
        channel's last writes when it ends normally."""
        outcome = ChannelOutcome(channel)
        if self._stopping:
            outcome.error = "stopped before delivery"
            return outcome
        if channel.platform in refused:
            outcome.error = refused[channel.platform]
            log.debug("channel_skipped channel=%s reason=%r", channel, outcome.error)
            return outcome
        publisher = self._publishers.get(channel.platform)
        if publisher is None:
            outcome.error = f"no {channel.platform} output is configured"
            log.warning("channel_skipped channel=%s reason=%r", channel, outcome.error)
            return outcome
        try:
            digest, skipped, first_run, options = await self.build(
                channel, keywords, fetched, dry_run=dry_run, hold=hold
            )
            digest.items = [
                replace(item, paper=with_details(item.paper, fetched.details.get(item.paper.id)))
                for item in digest.items
            ]
            outcome.pending = len(digest.items)
            versions = {item.paper.id: item.paper for item in digest.items}
            complete = fetched.complete(channel, keywords)
            day = fetched.day if complete else None
            if publisher.needs_recent:
                for keyword in keywords:
                    digest.recent[keyword] = await self._store.recent(
                        keyword, self._settings.arxiv.max_results
                    ) or fetched.candidates(channel, keyword)
            elif not digest.items and not (
                # "No new papers" once a day, and only when every keyword was looked at.
                options.quiet_days and complete and channel not in fetched.received
            ):
                if not dry_run:
                    await self._finish(channel, skipped, first_run, day, hold)
                return outcome

            last: list[str] = []  # the last message's: marked seen by the channel's final writes
            week: list[Paper] = []  # for the weekly post, if the channel has one

            async def delivered(ids: Sequence[str]) -> None:
                outcome.delivered += len(ids)
                reporting().posted(len(ids))
                metrics.posted(channel.platform, len(ids))
                if options.weekly:
                    week.extend(versions[i] for i in ids)
                if not dry_run:
                    keys = seen_keys([versions[i] for i in ids])
                    if outcome.delivered < len(digest.items) or self._stopping:
                        # Out already: recorded even when the deadline cuts `publish` short.
                        await asyncio.shield(self._record(channel, keys))
                    else:
                        last.extend(keys)
                if self._stopping:
                    raise DigestStopped
                if hold is not None and not await still_held(self._store, hold, self.lock_ttl):
                    raise LockLost

            try:
                await self._publish(publisher, digest, delivered)
            except BaseException:
                if last:  # failed after its last message was out
                    await self._record(channel, last)
                await self._note_week(channel, week, dry_run=dry_run)
                raise
            await self._note_week(channel, week, dry_run=dry_run)
            if not dry_run:
                await self._finish(channel, skipped, first_run, day, hold, posted=last)
        except DeliveryError as err:
            outcome.error = err.reason
            outcome.gone = err.gone
            if not err.everywhere:
                log.error("channel_failed channel=%s reason=%r", channel, err.reason)
            elif channel.platform not in refused:
                refused[channel.platform] = err.reason
                log.error(
                    "output_failed platform=%s reason=%r: no %s channel gets messages until "
                    "this is fixed; their papers wait for the next run",
                    channel.platform,
                    err.reason,
                    channel.platform,
                )
        except STORE_ERRORS as err:
            outcome.error = _store_error(err)
            log.error("channel_failed channel=%s reason=%r", channel, outcome.error)
        except ChannelBusy:
            raise
        except LockLost:
            outcome.error = (
                "another replica took the channel's lock (this one paused longer than "
                "lock_ttl); stopped posting here"
            )
            log.error("channel_failed channel=%s reason=%r", channel, outcome.error)
        except DigestStopped:
            outcome.error = "stopped; the rest comes next run"
            log.info("channel_stopped channel=%s delivered=%d", channel, outcome.delivered)
        except Exception as err:
            outcome.error = f"{type(err).__name__}: {err}"
            log.exception("channel_failed channel=%s", channel)
        outcome.pending -= outcome.delivered
        return outcome

    async def _note_week(self, channel: Channel, papers: Sequence[Paper], *, dry_run: bool) -> None:
        """The papers a weekly channel received, for its weekly post (best effort)."""
        if papers and not dry_run:
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
        keys: list[str],
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
                await (self._store.add_seen(channel, keys) if write is None else write())
            except STORE_ERRORS as err:
                if loop.time() + wait > deadline:
                    log.error(
                        "seen_not_recorded channel=%s keys=%d error=%r: the message was posted "
                        "but Redis did not take it within %gs; the next run may post it again",
                        channel,
                        len(keys),
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
        self,
        channel: Channel,
        skipped: list[Paper],
        first_run: list[str],
        day: date | None,
        hold: Hold | None,
        *,
        posted: Sequence[str] = (),
    ) -> None:
        """The channel's final writes in one round trip: `posted` (the seen keys of the
        digest's last message, out already: retried like `_record`) and the skipped papers
        marked seen, the first runs and the listing day noted, the lock let go."""
        lock = (hold.name, hold.owner) if hold else None
        seen = [*posted, *seen_keys(skipped)]

        async def write() -> None:
            await self._store.finish(channel, seen, first_run, day, lock)

        if hold:
            hold.released = True  # no renewal from now on; `held` has nothing left to do
        try:
            await (self._record(channel, list(posted), write) if posted else write())
        except BaseException:
            if hold:
                hold.released = False  # `held` lets it go (or it expires)
            raise


def held_back(holds: Mapping[str, frozenset[str]], keyword: str, paper: Paper) -> bool:
    """Whether `/papers add` of the keyword held the paper back in this version (a later
    version is news where `revisions` is on)."""
    keys = holds.get(normalize(keyword), frozenset())
    return paper.id in keys and (paper.version <= 1 or paper.version_key in keys)


def expected_papers(fetched: Fetched, cap: int, keywords: Sequence[str]) -> int:
    """The most papers a channel may post this run: its keywords' listed papers, capped."""
    return min(cap, len({p.id for k in keywords for p in fetched.papers.get(k, [])}))


def shows_everything(channel: Channel) -> bool:
    """Outputs that show everything new at once (no first-run limit, no votes)."""
    return channel.platform in FULL_LIST_PLATFORMS


def _outcome(report: RunReport, *, stopped: bool) -> str:
    """How a run ended, for `/metrics` (`bot.metrics.digest_done`)."""
    if report.stale is not None:
        return "stale"
    if stopped:
        return "stopped"
    return "ok" if report.ok else "failed"


def _store_error(err: Exception) -> str:
    return f"Redis unreachable: {err}"
