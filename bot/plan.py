"""One channel's plan for a run: which of the run's papers it gets, which it marks seen
without posting, and which of its keywords run for the first time.

Drawn from what the run fetched (`bot.fetching.Fetched`) and one Redis round trip of the
channel's state, which also takes the channel's lock. Delivery (`bot.delivery`) posts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime

from bot.explain import RANKED_TERMS, why
from bot.fetching import Fetched
from bot.keywords import normalize
from bot.listing import REVISIONS
from bot.models import Channel, Digest, DigestItem, Paper, Why, newest_first, seen_keys
from bot.options import ChannelOptions, merged_options
from bot.ranking import rank_explained
from bot.settings import Settings
from bot.state import ChannelState, LockClaim, Store
from bot.state.locks import Hold

Matched = dict[str, tuple[Paper, list[str]]]
_EXPLAINING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
"""One thread explains every channel's papers in turn: several at once would starve the
event loop of the GIL (BENCHMARKS.md, figure 1's longest stall)."""
"""Per paper id: the paper and the channel's keywords it matches, in the channel's order."""


class ChannelBusy(Exception):
    """Another process holds the channel's lock (found by the state read that would take it)."""


@dataclass(slots=True)
class Plan:
    """What `Planner.build` decided for one channel."""

    digest: Digest
    """The papers to post (`more` counts those the cap left out)."""
    skipped: list[Paper]
    """Papers to mark seen without posting: held back by `/papers add`, over a first run's
    quota, or over the cap."""
    first_run: list[str]
    """The keywords whose first run this is (noted as done when the channel finishes)."""
    options: ChannelOptions


class Planner:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime],
        lock_ttl: float,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._lock_ttl = lock_ttl

    async def build(
        self,
        channel: Channel,
        keywords: Sequence[str],
        fetched: Fetched,
        *,
        shows_everything: bool,
        dry_run: bool,
        hold: Hold | None = None,
    ) -> Plan:
        """The channel's plan. What it reads of the channel is one Redis round trip, which
        also takes the channel's lock (`hold`; `ChannelBusy` when another process has it)
        and notes the day's delivery attempt (`Digest.resumed`), except in a dry run.
        `shows_everything` (the output's): no first-run quota, no ranking by votes."""
        behind = channel in fetched.behind
        ok = [k for k in keywords if not (behind and k in fetched.failed)]
        matched = _matched(fetched, channel, ok)
        today = self._clock().date()
        state = await self._read(channel, matched, ok, today, shows_everything, dry_run, hold)
        options = merged_options(self._settings, channel, state.options)
        if not options.revisions:  # a replacement is news only where revisions are on
            matched = {
                pid: found
                for pid, found in matched.items()
                if fetched.kinds.get(pid) not in REVISIONS
            }
        revised = _revised(matched, state.unseen, fetched.kinds) if options.revisions else set()
        first_run = [] if shows_everything else [k for k in ok if k not in state.baselined]
        new = newest_first(
            [p for p, _ in matched.values() if p.id in state.unseen or p.id in revised]
        )
        raised: dict[str, tuple[str, ...]] = {}
        if len(new) > 1 and not state.taste.empty:
            # What the channel voted for first; the cap keeps the best.
            ranked = await asyncio.to_thread(rank_explained, new, state.taste, RANKED_TERMS)
            new, raised = [p for p, _ in ranked], {p.id: terms for p, terms in ranked}
        posted, skipped = self._chosen(new, matched, state.held, first_run)
        cap = self._settings.digest.max_papers_per_channel
        skipped.extend(posted[cap:])
        shown = posted[:cap]
        reasons = {}
        if self._settings.signals.explain:  # stemming whole abstracts: off the event loop
            loop = asyncio.get_running_loop()
            reasons = await loop.run_in_executor(_EXPLAINING, _reasons, shown, matched, raised)
        items = [
            DigestItem(p, tuple(matched[p.id][1]), p.id in revised, why=reasons.get(p.id))
            for p in shown
        ]
        digest = Digest(
            channel=channel,
            day=today,
            keywords=tuple(keywords),
            items=items,
            more=len(posted[cap:]),
            resumed=state.resumed,
        )
        return Plan(digest, skipped, first_run, options)

    async def _read(
        self,
        channel: Channel,
        matched: Matched,
        keywords: list[str],
        today: date,
        shows_everything: bool,
        dry_run: bool,
        hold: Hold | None,
    ) -> ChannelState:
        """The channel's state in one round trip, its lock taken (or kept) on the way."""
        state = await self._store.channel_state(
            channel,
            seen_keys([paper for paper, _ in matched.values()]),
            keywords,
            attempt=None if dry_run else today,
            taste=self._settings.signals.rank and not shows_everything,
            lock=None if hold is None else LockClaim(hold.name, hold.owner, self._lock_ttl),
        )
        if not state.locked:
            raise ChannelBusy
        if hold is not None:
            hold.taken = True
            hold.confirm()
        return state

    def _chosen(
        self,
        new: list[Paper],
        matched: Matched,
        held: Mapping[str, frozenset[str]],
        first_run: list[str],
    ) -> tuple[list[Paper], list[Paper]]:
        """The papers to post, in order, and those to skip (before the cap). A paper is held
        back only when every keyword it matches holds it (just added, shown in the add's
        preview), or is in its first run with the quota used up."""
        posted: list[Paper] = []
        skipped: list[Paper] = []
        quota = {normalize(k): self._settings.digest.first_run_papers for k in first_run}
        for paper in new:
            kws = [k for k in matched[paper.id][1] if not held_back(held, k, paper)]
            (posted if kws and _within_quota(quota, kws) else skipped).append(paper)
        return posted, skipped


def _matched(fetched: Fetched, channel: Channel, keywords: list[str]) -> Matched:
    matched: Matched = {}
    for keyword in keywords:
        for paper in fetched.candidates(channel, keyword):
            matched.setdefault(paper.id, (paper, []))[1].append(keyword)
    return matched


def _revised(matched: Matched, unseen: set[str], kinds: Mapping[str, str]) -> set[str]:
    """Papers whose new version the channel hasn't received: a version arXiv announced as
    a replacement, or one the channel lacks while it has the paper."""
    return {
        p.id
        for p, _ in matched.values()
        if p.version_key in unseen and (p.id not in unseen or kinds.get(p.id) in REVISIONS)
    }


def _within_quota(quota: dict[str, int], keywords: list[str]) -> bool:
    """Whether a paper of these keywords goes out: always, unless every one of them is in
    its first run; then only while the first one's quota lasts (and it takes one)."""
    if not all(normalize(k) in quota for k in keywords):
        return True
    first = normalize(keywords[0])
    if quota[first] <= 0:
        return False
    quota[first] -= 1
    return True


def held_back(holds: Mapping[str, frozenset[str]], keyword: str, paper: Paper) -> bool:
    """Whether `/papers add` of the keyword held the paper back in this version (a later
    version is news where `revisions` is on)."""
    keys = holds.get(normalize(keyword), frozenset())
    return paper.id in keys and (paper.version <= 1 or paper.version_key in keys)


def _reasons(
    papers: Sequence[Paper], matched: Matched, raised: Mapping[str, Sequence[str]]
) -> dict[str, Why]:
    """Why each paper is posted: its first matching keyword, the terms that raised it."""
    return {p.id: why(p, matched[p.id][1][0], raised.get(p.id, ())) for p in papers}
