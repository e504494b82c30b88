"""The whole day's listing, and only a fresh one.

arXiv's feed server cuts every answer at `RESULT_LIMIT` rows, dropping the lowest-id new
papers, and a feed can serve the previous day's items under today's date. The guard reads
the configured archives in as many requests as the day needs and refuses a listing it has
seen before:

- **Split.** An answer as long as the cap is asked again in two parts (archives, or an
  archive's categories), balanced by what the capped answer showed, until every part is
  under the cap; the parts are merged (`listing.merge`). The split a day needed is
  remembered, and parts that together stayed well under the cap are joined again, so an
  ordinary day costs what its volume needs.
- **Freshness.** arXiv announces a version of a paper once, so two real days share almost
  no versioned ids (a cross-list added to a paper announced the day before is the exception,
  a handful a day). A part that shares `STALE_SHARE` or more of its items with the last
  listing received, under a newer date, is the old listing again; so is a part older than it,
  or a 304 to the `ETag` received with it. Then nothing of the day is taken (`StaleListing`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot import categories as taxonomy
from bot.listing import RESULT_LIMIT, Listing, merge

log = logging.getLogger(__name__)

STALE_SHARE = 0.5
"""Share of a part's items found in the last listing received that makes it stale. Real
consecutive days share none but late cross-lists; a stale feed shares all."""
JOIN_BELOW = int(RESULT_LIMIT * 0.75)
"""Parts whose rows add up to at most this are asked together the next day: a quarter of
headroom for a busier day before the cap splits them again."""
MAX_PARTS = 64
"""The most requests one listing may take (every category of the largest archives)."""

Names = tuple[str, ...]
FetchPart = Callable[[str, str | None], Awaitable[tuple[Listing | None, str | None]]]
"""Reads one part: `(spec, etag)` to `(listing, etag)`; `None` when arXiv answered 304."""


class StaleListing(Exception):
    """The feed served a listing received before (or an older one)."""

    def __init__(self, feed: str, day: date | None, last: date) -> None:
        shown = day.isoformat() if day else "unchanged (304)"
        super().__init__(f"feed {feed} is stale: {shown}, last received {last.isoformat()}")
        self.feed = feed


@dataclass(frozen=True, slots=True)
class ListingMemory:
    """What the last listing received leaves for the next read."""

    day: date
    versions: frozenset[str]
    split: tuple[Names, ...]
    etags: dict[str, str] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps(
            {
                "day": self.day.isoformat(),
                "versions": sorted(self.versions),
                "split": [list(names) for names in self.split],
                "etags": self.etags,
            }
        )

    @classmethod
    def loads(cls, raw: str | None) -> ListingMemory | None:
        """The memory, or None when there is none or it can't be read (as if new)."""
        if not raw:
            return None
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(
                day=date.fromisoformat(data["day"]),
                versions=frozenset(map(str, data["versions"])),
                split=tuple(tuple(map(str, names)) for names in data["split"]),
                etags={str(k): str(v) for k, v in data.get("etags", {}).items()},
            )
        except (ValueError, KeyError, TypeError) as err:
            log.warning("listing_memory_unreadable error=%r: starting afresh", str(err))
            return None


@dataclass(frozen=True, slots=True)
class DayRead:
    listing: Listing
    memory: ListingMemory
    requests: int


def requested_names(categories: Sequence[str]) -> Names:
    return tuple(categories) or tuple(sorted(taxonomy.ARCHIVES))


def spec_of(names: Names) -> str:
    return "+".join(names)


async def read_day(
    fetch: FetchPart,
    categories: Sequence[str],
    memory: ListingMemory | None,
    *,
    today: date,
) -> DayRead:
    """The whole listing of `categories` (every archive when empty). `today` is arXiv's
    date (US Eastern): a conditional request is made only when a newer day is due, since a
    304 to today's own ETag says nothing about the items. Raises `StaleListing`."""
    requested = requested_names(categories)
    pending = list(_start(requested, memory))
    parts: list[tuple[Names, Listing]] = []
    etags: dict[str, str] = {}
    requests = 0
    while pending:
        names = pending.pop(0)
        spec = spec_of(names)
        conditional = memory is not None and today > memory.day and bool(memory.versions)
        etag = memory.etags.get(spec) if memory is not None and conditional else None
        listing, new_etag = await fetch(spec, etag)
        requests += 1
        if memory is not None and listing is None:
            raise StaleListing(spec, None, memory.day)
        if listing is None:
            raise ValueError(f"arXiv answered 304 for {spec} without a conditional request")
        _check_fresh(spec, listing, memory)
        halves = _halves(names, listing) if listing.capped else None
        if halves and requests + len(pending) + 2 <= MAX_PARTS:
            log.info(
                "listing_split feed=%s rows=%d: at arXiv's cap, asking in two",
                spec,
                len(listing.items),
            )
            pending[:0] = halves
            continue
        if listing.capped:
            log.warning(
                "listing_capped feed=%s rows=%d: arXiv's cap cut this part and it can't be "
                "split further; its lowest-id new papers are missing",
                spec,
                len(listing.items),
            )
        parts.append((names, listing))
        if new_etag:
            etags[spec] = new_etag
    days = {listing.day for _, listing in parts}
    if len(days) > 1:  # one part still serves an older day than the others
        older, day = min(parts, key=lambda part: part[1].day)
        raise StaleListing(spec_of(older), day.day, max(days))
    merged = merge([listing for _, listing in parts])
    remembered = ListingMemory(
        day=merged.day,
        versions=merged.versions(),
        split=_joined(requested, [(names, _rows(listing)) for names, listing in parts]),
        etags=etags,
    )
    return DayRead(merged, remembered, requests)


def _start(requested: Names, memory: ListingMemory | None) -> tuple[Names, ...]:
    """The last day's split when it covers exactly what is requested now."""
    if memory is not None and memory.split and _covered(memory.split) == _covered((requested,)):
        return memory.split
    return (requested,)


def _check_fresh(spec: str, listing: Listing, memory: ListingMemory | None) -> None:
    if memory is None:
        return
    if listing.day < memory.day:
        raise StaleListing(spec, listing.day, memory.day)
    if listing.day == memory.day or not listing.items:
        return
    shared = len(listing.versions() & memory.versions)
    if shared >= STALE_SHARE * len(listing.items):
        raise StaleListing(spec, listing.day, memory.day)


def _rows(listing: Listing) -> int:
    return len(listing.items) + listing.skipped


def _halves(names: Names, capped: Listing) -> list[Names] | None:
    """Two requests that together ask what `names` asked, balanced by the capped answer's
    rows per name; None when `names` is one category (or an archive without any)."""
    if len(names) == 1:
        name = names[0]
        if name not in taxonomy.ARCHIVES or not taxonomy.has_subjects(name):
            return None
        names = taxonomy.categories_of(name)
    weights = {
        name: sum(1 for item in capped.items if _touches(item.paper.categories, name))
        for name in names
    }
    groups: list[list[str]] = [[], []]
    loads = [0, 0]
    for name in sorted(names, key=lambda n: (-weights[n], n)):
        lighter = loads.index(min(loads))
        groups[lighter].append(name)
        loads[lighter] += weights[name]
    return [_collapsed(group) for group in groups if group]


def _touches(categories: Sequence[str], name: str) -> bool:
    if "." in name or not taxonomy.has_subjects(name):
        return name in categories
    return any(c.startswith(name + ".") for c in categories)


def _collapsed(names: Sequence[str]) -> Names:
    """`names` sorted, an archive's categories written as the archive when all are there."""
    chosen = set(names)
    for archive in taxonomy.ARCHIVES:
        every = set(taxonomy.categories_of(archive)) if taxonomy.has_subjects(archive) else set()
        if every and every <= chosen:
            chosen = (chosen - every) | {archive}
    return tuple(sorted(chosen))


def _covered(split: Sequence[Names]) -> frozenset[str]:
    """Every category a split asks for."""
    covered: set[str] = set()
    for names in split:
        for name in names:
            subjects = taxonomy.has_subjects(name) and "." not in name
            covered.update(taxonomy.categories_of(name) if subjects else (name,))
    return frozenset(covered)


def _joined(requested: Names, parts: Sequence[tuple[Names, int]]) -> tuple[Names, ...]:
    """The split to start from next time: parts packed largest first into requests of at
    most `JOIN_BELOW` rows; one request when everything fits."""
    bins: list[tuple[list[str], int]] = []
    for names, rows in sorted(parts, key=lambda part: -part[1]):
        fit = next((b for b in bins if b[1] + rows <= JOIN_BELOW), None)
        if fit is None:
            bins.append((list(names), rows))
        else:
            bins[bins.index(fit)] = (fit[0] + list(names), fit[1] + rows)
    if len(bins) == 1:
        return (requested,)
    return tuple(sorted(_collapsed(names) for names, _ in bins))
