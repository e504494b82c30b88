"""What a digest run reads from arXiv: the day's listing matched against every keyword,
window queries (or OAI-PMH) for channels that missed a listing, and the submission dates and
comments of the listed papers about to be posted. The result is a `Fetched`, which the
run's channels share (`bot.digest`); each channel's plan is drawn from it (`bot.plan`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from bot import metrics
from bot.arxiv_source import ArxivError, ArxivQueryError, ArxivSource, describe
from bot.listing import (
    ARXIV_ZONE,
    CATCH_UP_LIMIT,
    REVISIONS,
    Listing,
    catch_up_since,
    missed_days,
    next_listing_day,
    previous_listing_day,
)
from bot.listing import spec as listing_spec
from bot.listing_guard import ListingMemory, StaleListing, read_day
from bot.matching import assign, batches, distinct, newest_versions
from bot.models import Channel, Paper, newest_first, seen_keys
from bot.oai import OaiError
from bot.options import merged_options
from bot.progress import reporting
from bot.settings import Settings
from bot.state import STORE_ERRORS, Store

log = logging.getLogger(__name__)

Subscriptions = Mapping[Channel, Sequence[str]]


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


class Fetcher:
    """Reads what one run needs from arXiv, for the channels it is given."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        source: ArxivSource,
        *,
        clock: Callable[[], datetime],
        concurrency: int,
    ) -> None:
        self._settings = settings
        self._store = store
        self._source = source
        self._clock = clock
        self._concurrency = concurrency

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

    async def fill_details(self, channels: Subscriptions, fetched: Fetched) -> None:
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
