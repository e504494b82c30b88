"""Days the bot missed, rebuilt from what arXiv announced: its OAI-PMH interface.

`https://oaipmh.arxiv.org/oai?verb=ListRecords&metadataPrefix=arXivRaw&set=cs&from=...`
lists every record of a set modified since a day, in pages joined by resumption tokens
(OAI-PMH 2.0, openarchives.org/OAI/openarchivesprotocol.html, sections 3.5 and 4.5). An
arXivRaw record carries each version of the paper with its submission time, so a catch-up
can tell what arXiv announced on the days it covers (see `announced`). A record's datestamp
is its last modification, bulk metadata updates included: it says a record changed, the
version dates say what was announced.

Parsed with lxml directly rather than oaipmh-scythe (the maintained Sickle): one dependency
fewer (lxml already comes with `arxiv`), the requests go through the caller's `fetch` so they
share the pacing, retries and limits of every other arXiv request, and the parse is about
fifty lines.

Where OAI-PMH sets come from (`sets_for`): arXiv's server (github.com/arXiv/oaipmh,
`oaipmh/processors/create_set_list.py`, `make_set_str`, tested in `tests/test_list_sets.py`)
names a group by its id (`physics`, `cs`, `math`), an archive `group:archive`
(`physics:hep-th`, `math:math`), a category `group:archive:subject` (`cs:cs:CL`,
`physics:astro-ph:GA`).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from lxml import etree

from bot import categories as taxonomy
from bot.listing import Announcement, previous_listing_day, xml_root
from bot.models import Paper, split_version

log = logging.getLogger(__name__)

_OAI = "{http://www.openarchives.org/OAI/2.0/}"
_RAW = "{http://arxiv.org/OAI/arXivRaw/}"
_OAI_ID_PREFIX = "oai:arXiv.org:"
_VERSION = re.compile(r"^v?(\d+)$")
_NEW_STYLE_ID = re.compile(r"^(\d{2})(\d{2})\.\d{4,5}$")
_AUTHOR_SPLIT = re.compile(r",|\s+and\s+")
_LEADING_AND = re.compile(r"^and\s+")

MAX_PAGES = 100
"""Pages read for one set before a harvest gives up (and the caller falls back). arXiv
serves 2,000 records a page (`oaipmh/data/oai_config.py`, `RECORDS_LIMIT`), and a 60-day
catch-up (`listing.CATCH_UP_LIMIT`) of the largest set is a few dozen pages; a hundred
means a server looping on its tokens, about five minutes at arXiv's 3 s pacing."""

ARXIV_ZONE = ZoneInfo("America/New_York")
SUBMISSION_CUTOFF = time(14, 0)
"""arXiv's daily deadline, US Eastern: what is submitted before it is announced at 20:00
that evening (arxiv.org/help/availability)."""

SUBMISSION_MARGIN = timedelta(days=1)
"""Widening of the submission window on both sides: a paper caught twice is deduplicated by
the caller (each channel remembers what it received), a paper missed is lost."""

DATESTAMP_MARGIN = timedelta(days=1)
"""A record announced at 20:00 US Eastern is modified around midnight UTC, so its datestamp
(a UTC day) may be the day before the listing day that names the announcement."""

HELD_LIMIT = timedelta(days=120)
"""How long before a gap a held paper's v1 may have been submitted. Moderation holds last
days or weeks, a few months at worst; beyond that a changed datestamp is a bulk metadata
update, not an announcement."""

REPLACE_BELOW_VERSION = 6
"""arXiv's feed lists replacements only below version 6 (github.com/arXiv/arxiv-feed,
`feed/database.py`, `get_announce_papers`); the catch-up posts what the daily path would."""

GROUPS = ("cs", "econ", "eess", "math", "physics", "q-bio", "q-fin", "stat")
"""arXiv's top-level OAI-PMH sets, its active taxonomy groups (arXiv/oaipmh
`create_set_list.py`: groups that are active and not test)."""


_GROUP_ARCHIVES = frozenset(GROUPS) - {"physics"}
"""Archives that are a whole group: the group's set holds them (`cs`, `math`); the archive
`physics` is one of many in the group `physics`, so it is `physics:physics`."""


class OaiError(Exception):
    """The OAI-PMH server answered with an error other than `noRecordsMatch`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class OaiPageLimit(OaiError):
    """A set needed more than `max_pages` pages: the harvest is incomplete."""


class Version(NamedTuple):
    number: int
    submitted: datetime
    """When this version was submitted (UTC)."""


@dataclass(frozen=True, slots=True)
class OaiRecord:
    id: str
    """Version-less arXiv id (`2401.00001`, `astro-ph/0601001`)."""
    datestamp: date
    """The record's last modification (UTC day), bulk metadata updates included."""
    versions: tuple[Version, ...]
    """Every version, oldest first."""
    title: str
    authors: tuple[str, ...]
    abstract: str
    categories: tuple[str, ...]
    """The first is the primary category."""
    comments: str | None = None
    journal_ref: str | None = None
    doi: str | None = None

    def paper(self, version: int) -> Paper:
        """The paper as it was at `version` (the metadata is the current version's)."""
        found = next((v for v in self.versions if v.number == version), None)
        if found is None:
            raise ValueError(f"{self.id} has no version {version}")
        return Paper(
            id=self.id,
            version=version,
            title=self.title,
            authors=self.authors,
            summary=self.abstract,
            comment=self.comments,
            primary_category=self.categories[0],
            categories=self.categories,
            published=self.versions[0].submitted,
            updated=found.submitted,
            journal_ref=self.journal_ref,
            doi=self.doi,
        )


@dataclass(frozen=True, slots=True)
class OaiPage:
    records: tuple[OaiRecord, ...]
    token: str | None
    """The resumption token of the next page; None on the last one."""


# --- requests --------------------------------------------------------------------------


def list_url(base: str, *, set_spec: str, from_day: date, until_day: date | None = None) -> str:
    params = {
        "verb": "ListRecords",
        "metadataPrefix": "arXivRaw",
        "set": set_spec,
        "from": from_day.isoformat(),
    }
    if until_day is not None:
        params["until"] = until_day.isoformat()
    return _join(base, params)


def resume_url(base: str, token: str) -> str:
    """The next page: a resumed request carries only the verb and the token (OAI-PMH 3.5)."""
    return _join(base, {"verb": "ListRecords", "resumptionToken": token})


def _join(base: str, params: dict[str, str]) -> str:
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


def sets_for(categories: Sequence[str]) -> list[str]:
    """The OAI-PMH sets that hold the configured archives and categories (every top-level
    set when there are none), without a set another one already covers."""
    if not categories:
        return list(GROUPS)
    specs = {_set_spec(name) for name in categories}
    return sorted(s for s in specs if not any(s.startswith(f"{o}:") for o in specs))


def _set_spec(name: str) -> str:
    archive, _, subject = name.partition(".")
    if not taxonomy.is_known(name):
        raise ValueError(f"not an arXiv archive or category: {name!r}")
    group = archive if archive in GROUPS else "physics"
    if subject:
        return f"{group}:{archive}:{subject}"
    return archive if archive in _GROUP_ARCHIVES else f"{group}:{archive}"


async def list_records(
    fetch: Callable[[str], Awaitable[bytes]],
    base: str,
    sets: Sequence[str],
    from_day: date,
    *,
    until_day: date | None = None,
    max_pages: int = MAX_PAGES,
) -> list[OaiRecord]:
    """Every record of `sets` modified from `from_day` (to `until_day`), one per paper.
    `fetch` does the HTTP (pacing, retries) and raises when it fails; so does this. Pages
    are parsed in a worker thread (a full page is 2,000 records)."""
    if max_pages < 1:
        raise ValueError(f"max_pages must be at least 1, got {max_pages}")
    found: dict[str, OaiRecord] = {}
    for set_spec in sets:
        url = list_url(base, set_spec=set_spec, from_day=from_day, until_day=until_day)
        for record in await _harvest(fetch, base, url, max_pages=max_pages, name=set_spec):
            _keep_newest(found, record)
        log.info("oai_set set=%s from=%s records=%d", set_spec, from_day, len(found))
    return list(found.values())


async def _harvest(
    fetch: Callable[[str], Awaitable[bytes]], base: str, url: str, *, max_pages: int, name: str
) -> list[OaiRecord]:
    """The records of one list, following its resumption tokens."""
    records: list[OaiRecord] = []
    for _ in range(max_pages):
        page = await asyncio.to_thread(parse_page, await fetch(url))
        records.extend(page.records)
        if page.token is None:
            return records
        url = resume_url(base, page.token)
    raise OaiPageLimit("pageLimit", f"set {name} has more than {max_pages} pages")


def _keep_newest(found: dict[str, OaiRecord], record: OaiRecord) -> None:
    known = found.get(record.id)
    if known is None or (record.datestamp, len(record.versions)) > (
        known.datestamp,
        len(known.versions),
    ):
        found[record.id] = record


# --- parsing ---------------------------------------------------------------------------


def parse_page(body: bytes) -> OaiPage:
    """One ListRecords answer. `noRecordsMatch` is an empty last page; another OAI error
    raises `OaiError`; a body that is not a whole OAI-PMH document raises ValueError. A
    record that can't be read is skipped with a warning, deleted records silently."""
    root = xml_root(body, "OAI-PMH answer")
    if root.tag != f"{_OAI}OAI-PMH":
        raise ValueError(f"not an OAI-PMH answer: root element is {root.tag!r}")
    error = root.find(f"{_OAI}error")
    if error is not None:
        code = error.get("code", "")
        if code == "noRecordsMatch":
            return OaiPage((), None)
        raise OaiError(code, _collapse(error.text))
    listed = root.find(f"{_OAI}ListRecords")
    if listed is None:
        raise ValueError("the OAI-PMH answer holds neither ListRecords nor an error")
    token = _collapse(listed.findtext(f"{_OAI}resumptionToken"))
    return OaiPage(tuple(_records(listed.iterfind(f"{_OAI}record"))), token or None)


def _records(elements: Iterable[etree._Element]) -> Iterable[OaiRecord]:
    for element in elements:
        header = element.find(f"{_OAI}header")
        if header is not None and header.get("status") == "deleted":
            continue
        try:
            yield _record(header, element.find(f"{_OAI}metadata/{_RAW}arXivRaw"))
        except ValueError as err:
            name = "?" if header is None else _collapse(header.findtext(f"{_OAI}identifier"))
            log.warning("oai_record_skipped identifier=%s reason=%r", name or "?", str(err))


def _record(header: etree._Element | None, raw: etree._Element | None) -> OaiRecord:
    if header is None or raw is None:
        raise ValueError("no header or no arXivRaw metadata")
    identifier = _collapse(header.findtext(f"{_OAI}identifier")).removeprefix(_OAI_ID_PREFIX)
    paper_id = _collapse(raw.findtext(f"{_RAW}id")) or identifier
    if not paper_id:
        raise ValueError("no arXiv id")
    versions = sorted(_version(v) for v in raw.iterfind(f"{_RAW}version"))
    categories = tuple(_collapse(raw.findtext(f"{_RAW}categories")).split())
    if not versions or not categories:
        raise ValueError("no version or no category")
    return OaiRecord(
        id=split_version(paper_id)[0],
        datestamp=date.fromisoformat(_collapse(header.findtext(f"{_OAI}datestamp"))[:10]),
        versions=tuple(versions),
        title=_collapse(raw.findtext(f"{_RAW}title")),
        authors=split_authors(_collapse(raw.findtext(f"{_RAW}authors"))),
        abstract=_collapse(raw.findtext(f"{_RAW}abstract")),
        categories=categories,
        comments=_collapse(raw.findtext(f"{_RAW}comments")) or None,
        journal_ref=_collapse(raw.findtext(f"{_RAW}journal-ref")) or None,
        doi=_collapse(raw.findtext(f"{_RAW}doi")) or None,
    )


def _version(element: etree._Element) -> Version:
    number = _VERSION.match(element.get("version", "").strip())
    raw = _collapse(element.findtext(f"{_RAW}date"))
    try:
        submitted = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        submitted = None
    if number is None or submitted is None:
        raise ValueError(f"unreadable version {element.get('version')!r} dated {raw!r}")
    if submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=UTC)
    return Version(int(number.group(1)), submitted.astimezone(UTC))


def split_authors(text: str) -> tuple[str, ...]:
    """arXivRaw's one author string (`A. One, B. Two, and C. Three`) as names, affiliations
    in parentheses (`A. One (MIT)`, `((1) MIT, (2) ETH)`) left out."""
    parts = _AUTHOR_SPLIT.split(_drop_parentheses(text))
    names = (" ".join(_LEADING_AND.sub("", p.strip()).split()) for p in parts)
    return tuple(n for n in names if n)


def _drop_parentheses(text: str) -> str:
    kept, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            kept.append(char)
    return "".join(kept)


def _collapse(text: str | None) -> str:
    return " ".join((text or "").split())


# --- what was announced ----------------------------------------------------------------


def harvest_from(first_day: date) -> date:
    """The `from` day of a catch-up whose first missed listing day is `first_day`."""
    return first_day - DATESTAMP_MARGIN


def submission_cutoff(day: date) -> datetime:
    """The last submission time (UTC) of listing `day`: 14:00 US Eastern on the weekday
    before it (Monday's listing, announced on Sunday evening, ends on Friday at 14:00)."""
    return datetime.combine(previous_listing_day(day), SUBMISSION_CUTOFF, ARXIV_ZONE).astimezone(
        UTC
    )


def announced(
    records: Iterable[OaiRecord],
    *,
    first_day: date,
    last_day: date,
    archives: Sequence[str],
) -> list[Announcement]:
    """What arXiv announced in the listings of the missed days `first_day`..`last_day`
    (listing days as the RSS feed names them, Monday to Friday), as the daily feed would
    have typed it for `archives` (archives or categories; none means every archive).

    arXiv announces Sunday to Thursday at 20:00 US Eastern what was submitted before 14:00
    US Eastern that weekday; the feed names the announcement by the next day (Monday's
    listing holds Thursday 14:00 to Friday 14:00, Tuesday's Friday 14:00 to Monday 14:00;
    arxiv.org/help/availability). So the gap's submission window runs from the cutoff of
    the listing before `first_day` to the cutoff of `last_day`, widened by
    `SUBMISSION_MARGIN` on both sides. In it:

    - new: v1 was submitted in the window (OAI-PMH lists only announced papers); the paper
      is the newest version submitted in the window.
    - replacement: a later version (below `REPLACE_BELOW_VERSION`) was submitted in the
      window, however old v1 is; the paper is that version.
    - held: one version only, submitted before the window but at most `HELD_LIMIT` before,
      the record modified in the gap (datestamp from `first_day` less `DATESTAMP_MARGIN`
      to `last_day`), and numbered in the gap's month or later: arXiv announced it late,
      after moderation. arXiv numbers a paper when it announces it, so an older paper
      whose datestamp a bulk metadata update moved is numbered before the gap (or is older
      than `HELD_LIMIT`) and is not taken.

    The type is relative to `archives` as arXiv's feed server computes it
    (github.com/arXiv/arxiv-feed, `feed/database.py`, `get_announce_papers`): `new` when
    the primary category is in them, else `cross`; a replacement `replace`, else
    `replace-cross`. A paper none of whose categories is in them is not listed."""
    start = submission_cutoff(previous_listing_day(first_day)) - SUBMISSION_MARGIN
    end = submission_cutoff(last_day) + SUBMISSION_MARGIN
    touched = (first_day - DATESTAMP_MARGIN, last_day)
    found = []
    for record in records:
        kind = _kind(record, start, end, touched)
        if kind is not None and _listed(record.categories, archives):
            version, revision = kind
            primary = _listed(record.categories[:1], archives)
            found.append(Announcement(record.paper(version), _KINDS[revision, primary]))
    return sorted(found, key=lambda a: a.paper.id)


_KINDS = {
    (False, True): "new",
    (False, False): "cross",
    (True, True): "replace",
    (True, False): "replace-cross",
}
"""The feed's type by (a replacement, the primary category requested)."""


def _kind(
    record: OaiRecord, start: datetime, end: datetime, touched: tuple[date, date]
) -> tuple[int, bool] | None:
    """(the announced version, whether it is a replacement), or None if not announced."""
    first = record.versions[0]
    inside = [v.number for v in record.versions if start <= v.submitted < end]
    if start <= first.submitted < end:
        return max(inside), False
    later = [n for n in inside if 1 < n < REPLACE_BELOW_VERSION]
    if later:
        return max(later), True
    held = (
        len(record.versions) == 1
        and first.submitted < start
        and start - first.submitted <= HELD_LIMIT
        and touched[0] <= record.datestamp <= touched[1]
        and _numbered_since(record.id, touched[0])
    )
    return (1, False) if held else None


def _numbered_since(paper_id: str, day: date) -> bool:
    """Whether arXiv gave `paper_id` its number in `day`'s month or later (`YYMM.NNNNN`)."""
    match = _NEW_STYLE_ID.match(paper_id)
    if match is None:
        return False
    return (2000 + int(match.group(1)), int(match.group(2))) >= (day.year, day.month)


def _listed(categories: Sequence[str], archives: Sequence[str]) -> bool:
    """Whether one of `categories` is in the requested archives or categories."""
    if not archives:
        return True
    return any(c == a or c.split(".")[0] == a for c in categories for a in archives)
