"""arXiv's daily listing: every paper announced on one day, read from its RSS feed.

`https://rss.arxiv.org/rss/cs+math` holds what arXiv announced in the latest mailing for
those archives (or categories): each item with its announce type (`new`, `cross`,
`replace`, `replace-cross`), its versioned id, title, abstract, authors and categories.
The channel's `pubDate` names the announcement day; weekends and holidays give a channel
without items, and a bad archive name gives one titled "Feed error for query".

The listing has no submission date and no comment: papers parsed here carry the
announcement day as their dates until `ArxivSource.details` fills both in.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from lxml import etree

from bot import categories as taxonomy
from bot.models import Paper, split_version

log = logging.getLogger(__name__)

ARXIV_ZONE = ZoneInfo("America/New_York")
"""arXiv's days (a listing's date, announcement times) are US Eastern."""

RESULT_LIMIT = 2000
"""Rows arXiv's feed server puts in one answer at most (github.com/arXiv/arxiv-feed,
`feed/database.py`, `get_announce_papers`: `result_limit`). It takes replace-cross, replace,
cross, then new rows, each by id descending, so a capped answer misses the lowest-id new
papers: an answer this long is never taken as the whole day."""

KINDS = frozenset({"new", "cross", "replace", "replace-cross"})
PRIORITY = ("new", "cross", "replace", "replace-cross")
"""A paper listed in several parts of a split request takes the first of its types here:
as arXiv would type it for the whole requested set (a paper `new` in cs and `cross` in stat
is `new` in cs+stat)."""
REVISIONS = frozenset({"replace", "replace-cross"})
"""Announce types of a new version of a paper announced before."""

_ARXIV = "{http://arxiv.org/schemas/atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_HEAD = re.compile(r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<kind>[\w-]+)\s*", re.I)
_ABSTRACT = re.compile(r"^Abstract:\s*", re.I)
_GUID = re.compile(r"(?:oai:arXiv\.org:)?(?P<id>\S+)$")


class ListingError(Exception):
    """arXiv answered with its feed error (a bad archive or category name)."""


@dataclass(frozen=True, slots=True)
class Announcement:
    paper: Paper
    kind: str
    """`new`, `cross` (listed in another archive first), `replace` or `replace-cross`."""

    @property
    def revision(self) -> bool:
        return self.kind in REVISIONS


@dataclass(frozen=True, slots=True)
class Listing:
    day: date
    """The announcement day, as arXiv names it (US Eastern)."""
    items: tuple[Announcement, ...]
    skipped: int = 0
    """Items left out because they could not be read (no id, an unknown type)."""

    def kinds(self) -> dict[str, str]:
        return {item.paper.id: item.kind for item in self.items}

    @property
    def capped(self) -> bool:
        """Whether arXiv may have cut this answer (see `RESULT_LIMIT`)."""
        return len(self.items) + self.skipped >= RESULT_LIMIT

    def versions(self) -> frozenset[str]:
        """Each item's versioned id (`2401.00001v2`): what tells one day's listing from
        another's, since arXiv announces a version once."""
        return frozenset(f"{item.paper.id}v{item.paper.version}" for item in self.items)


def merge(parts: Sequence[Listing]) -> Listing:
    """The listing of a request split into `parts` (one announcement day): one row per
    paper, typed by `PRIORITY`, in the parts' order."""
    if not parts:
        raise ValueError("no listing to merge")
    rank = {kind: n for n, kind in enumerate(PRIORITY)}
    chosen: dict[str, Announcement] = {}
    for part in parts:
        for item in part.items:
            held = chosen.get(item.paper.id)
            if held is None or rank[item.kind] < rank[held.kind]:
                chosen[item.paper.id] = item
    return Listing(
        day=max(part.day for part in parts),
        items=tuple(chosen.values()),
        skipped=sum(part.skipped for part in parts),
    )


def with_details(listed: Paper, found: Paper | None) -> Paper:
    """A listed paper with the submission date, comment, primary category, journal
    reference and DOI the API gave (`found`, its current version), keeping the listed version."""
    if found is None:
        return listed
    return replace(
        listed,
        published=found.published,
        updated=found.updated if found.version == listed.version else listed.updated,
        comment=found.comment,
        primary_category=found.primary_category or listed.primary_category,
        journal_ref=found.journal_ref or listed.journal_ref,
        doi=found.doi or listed.doi,
    )


def spec(categories: Sequence[str]) -> str:
    """What follows `rss_url`: the configured archives or categories, else every archive."""
    return "+".join(categories or sorted(taxonomy.ARCHIVES))


def _text(element: etree._Element, path: str) -> str:
    return " ".join((element.findtext(path) or "").split())


def _announced(channel: etree._Element) -> datetime:
    raw = channel.findtext("pubDate") or channel.findtext("lastBuildDate")
    if not raw:
        raise ValueError("the listing names no day (no pubDate)")
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError) as err:
        raise ValueError(f"the listing's pubDate is not a date: {raw.strip()!r}") from err
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _item(item: etree._Element, announced: datetime) -> Announcement:
    description = item.findtext("description") or ""
    head = _HEAD.match(description)
    guid = _GUID.search((item.findtext("guid") or "").strip())
    versioned = head["id"] if head else guid["id"] if guid else ""
    if not versioned:
        raise ValueError("an item has no arXiv id")
    kind = (item.findtext(f"{_ARXIV}announce_type") or (head["kind"] if head else "")).strip()
    if kind not in KINDS:
        raise ValueError(f"item {versioned} has an unknown announce type {kind!r}")
    summary = description[head.end() :] if head else description
    paper_id, version = split_version(versioned)
    categories = tuple(c.text.strip() for c in item.iterfind("category") if c.text)
    creators = _text(item, f"{_DC}creator")
    return Announcement(
        Paper(
            id=paper_id,
            version=version,
            title=_text(item, "title"),
            authors=tuple(a.strip() for a in creators.split(", ") if a.strip()),
            summary=" ".join(_ABSTRACT.sub("", summary.strip()).split()),
            comment=None,
            primary_category=categories[0] if categories else "",
            categories=categories,
            published=announced.astimezone(UTC),
            updated=announced.astimezone(UTC),
            journal_ref=_text(item, f"{_ARXIV}journal_reference") or None,
            doi=_text(item, f"{_ARXIV}DOI") or None,
        ),
        kind,
    )


def xml_root(body: bytes, what: str) -> etree._Element:
    """The root of an answer of arXiv's (a listing, an API feed, an OAI-PMH page), entities
    left unresolved; ValueError naming `what` when it is not well-formed XML."""
    try:
        return etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as err:
        raise ValueError(f"malformed {what}: {err}") from err


def parse(body: bytes) -> Listing:
    """The day's listing. ListingError for arXiv's feed error; ValueError when the body is
    not a complete listing (cut short, not RSS, no day). An item that can't be read (no id,
    an unknown announce type) is left out with a warning, and counted in `skipped`."""
    root = xml_root(body, "listing")
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ValueError(f"not an RSS listing (root element {root.tag})")
    if _text(channel, "title").startswith("Feed error"):
        raise ListingError(f"arXiv refused the listing: {_text(channel, 'description')}")
    announced = _announced(channel)
    items: list[Announcement] = []
    problems: list[str] = []
    for element in channel.iterfind("item"):
        try:
            items.append(_item(element, announced))
        except ValueError as err:
            problems.append(str(err))
    if problems:
        log.warning(
            "listing_items_skipped day=%s skipped=%d kept=%d first=%r",
            announced.date(),
            len(problems),
            len(items),
            problems[0],
        )
    return Listing(day=announced.date(), items=tuple(items), skipped=len(problems))


CATCH_UP_LIMIT = timedelta(days=60)
"""The furthest back a catch-up looks: a channel away longer starts again from there."""


def missed_days(last: date | None, today: date | None) -> bool:
    """Whether a channel that last received the listing of `last` missed announcements
    before `today`'s listing: a weekday (arXiv announces Monday to Friday's listings) lies
    between the two. No listing today counts as missed; a channel that never received
    one starts with today's."""
    if today is None:
        return True
    if last is None or last >= today:
        return False
    return any((last + timedelta(days=n)).weekday() < 5 for n in range(1, (today - last).days))


def previous_listing_day(day: date) -> date:
    """The weekday before `day`: the listing a channel seen for the first time on `day`'s
    is taken to have had, so that failing its first listing counts as missing one."""
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def next_listing_day(day: date) -> date:
    """The weekday after `day`: the first listing a channel that last received `day` missed."""
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def catch_up_since(last: date | None, now: datetime, window_days: int) -> datetime:
    """Where the window queries of a catch-up start: `window_days` back, or further when
    the channel's last listing is older (arXiv announces a paper a day or more after its
    submission), never beyond `CATCH_UP_LIMIT`."""
    since = now - timedelta(days=window_days)
    if last is not None:
        since = min(since, datetime.combine(last, time(), UTC) - timedelta(days=1))
    return max(since, now - CATCH_UP_LIMIT)
