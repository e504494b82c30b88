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
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from lxml import etree

from bot import categories as taxonomy
from bot.models import Paper, split_version

KINDS = frozenset({"new", "cross", "replace", "replace-cross"})
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

    def kinds(self) -> dict[str, str]:
        return {item.paper.id: item.kind for item in self.items}


def with_details(listed: Paper, found: Paper | None) -> Paper:
    """A listed paper with the submission date, comment, primary category and journal
    reference the API gave (`found`, its current version), keeping the listed version."""
    if found is None:
        return listed
    return replace(
        listed,
        published=found.published,
        updated=found.updated if found.version == listed.version else listed.updated,
        comment=found.comment,
        primary_category=found.primary_category or listed.primary_category,
        journal_ref=found.journal_ref or listed.journal_ref,
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
    except (TypeError, ValueError):
        raise ValueError(f"the listing's pubDate is not a date: {raw.strip()!r}") from None
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
        ),
        kind,
    )


def parse(body: bytes) -> Listing:
    """The day's listing. ListingError for arXiv's feed error; ValueError when the body is
    not a complete listing (cut short, not RSS, an item without id)."""
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False))
    except etree.XMLSyntaxError as err:
        raise ValueError(f"malformed listing: {err}") from None
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ValueError(f"not an RSS listing (root element {root.tag})")
    if _text(channel, "title").startswith("Feed error"):
        raise ListingError(f"arXiv refused the listing: {_text(channel, 'description')}")
    announced = _announced(channel)
    items = tuple(_item(item, announced) for item in channel.iterfind("item"))
    return Listing(day=announced.date(), items=items)


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


def catch_up_since(last: date | None, now: datetime, window_days: int) -> datetime:
    """Where the window queries of a catch-up start: `window_days` back, or further when
    the channel's last listing is older (arXiv announces a paper a day or more after its
    submission), never beyond `CATCH_UP_LIMIT`."""
    since = now - timedelta(days=window_days)
    if last is not None:
        since = min(since, datetime.combine(last, time(), UTC) - timedelta(days=1))
    return max(since, now - CATCH_UP_LIMIT)
