"""A fake arXiv export API (``/api/query``) and daily RSS listing (``/rss/<spec>``) served on
127.0.0.1 for tests.

The real ``arxiv`` client can talk to it unchanged::

    with FakeArxiv([make_paper(1), make_paper(2)]) as fake:
        client = arxiv.Client(delay_seconds=0, num_retries=0)
        client.query_url_format = fake.url + "?{}"
        results = list(client.results(arxiv.Search("cat:cs.CL")))

Responses use the current (2026) Atom layout of export.arxiv.org: namespaces declared once
on ``<feed>``, ``<title>`` before ``<updated>``, DOI elements after the authors, and error
feeds served with HTTP 400.

The server runs in its own threads (``ThreadingHTTPServer``), so it does not depend on any
asyncio event loop; code that calls the synchronous client through ``asyncio.to_thread``
works against it.

Query language (a small recursive-descent parser, see ``parse_query``)::

    query   := or_expr
    or_expr := and_expr ("OR" and_expr)*
    and_expr:= ["ANDNOT"] primary (("AND" | "ANDNOT")? primary)*   # juxtaposition means AND
    primary := FIELD ":" (WORD | PHRASE | "(" or_expr ")" | RANGE)
             | WORD | PHRASE | "(" or_expr ")"                      # field defaults to all:

Fields: ``ti`` ``abs`` ``au`` ``co`` ``jr`` ``cat`` ``all`` plus the date ranges
``submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]`` (against ``published``) and
``lastUpdatedDate:[...]`` (against ``updated``); either bound may be ``*``. A field written
before a parenthesised group applies to the bare terms inside it.

Text matching follows arXiv's search (Lucene's English analysis): text and query are
lower-cased, possessives (``model's``) dropped, and each word stemmed with the original
Porter algorithm, so ``abs:"reward model"`` finds "reward modeling". The stemmer is NLTK's
``PorterStemmer(mode=ORIGINAL_ALGORITHM)``, deliberately a different implementation from the
bot's (PyStemmer), so tests comparing the bot's matching with the fake's are not circular.

The daily listing (what ``rss.arxiv.org/rss/cs+math`` serves) is RSS 2.0 in the layout of the
real captures: set ``FakeArxiv.listing`` to a ``FakeListing`` (the announcement day and its
``(paper, announce_type)`` items) and GET ``fake.rss_url + spec``. ``listing_to_rss`` renders
the same bytes without a server; ``listing_from_rss`` reads a capture back into a listing.
See ``FakeArxiv`` for the details (category filter, empty and error channels).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import itertools
import re
import socket
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import monotonic, sleep
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from lxml import etree  # type: ignore[import-untyped, unused-ignore]
from nltk.stem.porter import PorterStemmer  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "ATOM_CONTENT_TYPE",
    "RSS_ARCHIVES",
    "RSS_CONTENT_TYPE",
    "AndQuery",
    "CategoryQuery",
    "DateRangeQuery",
    "FakeArxiv",
    "FakeListing",
    "FakePaper",
    "NotQuery",
    "OrQuery",
    "Query",
    "QuerySyntaxError",
    "RecordedRequest",
    "TextQuery",
    "announced_rows",
    "closed_port_url",
    "listing_from_rss",
    "listing_to_rss",
    "make_paper",
    "papers_from_feed",
    "parse_query",
    "render_error_feed",
    "text_tokens",
]

ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"
RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"

_ATOM_NS = "http://www.w3.org/2005/Atom"
_ARXIV_NS = "http://arxiv.org/schemas/atom"
_OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
_NS = {"atom": _ATOM_NS, "arxiv": _ARXIV_NS, "opensearch": _OPENSEARCH_NS}

# New style "2401.00001" (4 or 5 digits after the dot) and old style "astro-ph/0601001" or
# "math.GT/0309136", each optionally followed by a version.
_ID_RE = re.compile(
    r"^(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>[1-9]\d*))?$"
)


# --------------------------------------------------------------------------------------------
# Papers
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class FakePaper:
    """One version of one arXiv paper, as the fake serves it.

    ``id`` carries no version (``2401.00001`` or ``astro-ph/0601001``); ``version`` is the
    version number. ``categories[0]`` is the primary category. ``published`` is the v1
    date (what ``submittedDate`` queries and sorting use); ``updated`` is this version's date.
    Both must be timezone-aware and are normalised to UTC. ``affiliations`` maps an author
    name to its ``<arxiv:affiliation>`` values. ``rights`` is the licence URL the RSS listing
    shows in ``<dc:rights>`` (the API does not serve it).
    """

    id: str
    version: int = 1
    title: str
    summary: str
    authors: list[str]
    categories: list[str]
    published: datetime
    updated: datetime
    comment: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    affiliations: dict[str, list[str]] = field(default_factory=dict)
    rights: str = "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"

    def __post_init__(self) -> None:
        match = _ID_RE.match(self.id)
        if match is None or match.group("version") is not None:
            raise ValueError(f"FakePaper.id must be a version-less arXiv id, got {self.id!r}")
        if self.version < 1:
            raise ValueError(f"version must be >= 1, got {self.version}")
        if not self.categories:
            raise ValueError(f"paper {self.id} needs at least one category")
        for name in ("published", "updated"):
            moment: datetime = getattr(self, name)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"{name} of paper {self.id} must be timezone-aware")
            setattr(self, name, moment.astimezone(UTC))

    @property
    def primary_category(self) -> str:
        return self.categories[0]

    @property
    def versioned_id(self) -> str:
        """``2401.00001v2``."""
        return f"{self.id}v{self.version}"

    @property
    def entry_id(self) -> str:
        """The Atom ``<id>`` (and ``arxiv.Result.entry_id``): ``http://arxiv.org/abs/...``."""
        return f"http://arxiv.org/abs/{self.versioned_id}"

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.versioned_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.versioned_id}"

    def new_version(self, *, updated: datetime | None = None, **changes: Any) -> FakePaper:
        """A copy with ``version + 1`` and a newer ``updated`` (default: one day later)."""
        when = updated if updated is not None else self.updated + timedelta(days=1)
        return replace(self, version=self.version + 1, updated=when, **changes)


_SYNTHETIC_EPOCH = datetime(2026, 11, 2, tzinfo=UTC)


def make_paper(
    n: int,
    *,
    title: str | None = None,
    summary: str | None = None,
    authors: Sequence[str] | None = None,
    categories: Sequence[str] = ("cs.CL",),
    published: datetime | None = None,
    updated: datetime | None = None,
    version: int = 1,
    comment: str | None = None,
    doi: str | None = None,
    journal_ref: str | None = None,
) -> FakePaper:
    """A deterministic synthetic paper with id ``2611.{n:05d}``.

    Defaults: title ``Synthetic paper {n}``, a one-sentence summary, one author
    ``Author {n}``, category ``cs.CL``, ``published`` = 2026-11-02T00:00Z plus ``n`` minutes
    (so a higher ``n`` is newer), ``updated`` = ``published`` plus ``version - 1`` days.
    """
    if not 0 <= n <= 99_999:
        raise ValueError(f"n must be in 0..99999, got {n}")
    when = published if published is not None else _SYNTHETIC_EPOCH + timedelta(minutes=n)
    return FakePaper(
        id=f"2611.{n:05d}",
        version=version,
        title=title if title is not None else f"Synthetic paper {n}",
        summary=summary if summary is not None else f"Placeholder abstract number {n}.",
        authors=list(authors) if authors is not None else [f"Author {n}"],
        categories=list(categories),
        published=when,
        updated=updated if updated is not None else when + timedelta(days=version - 1),
        comment=comment,
        doi=doi,
        journal_ref=journal_ref,
    )


# --------------------------------------------------------------------------------------------
# Reading real feeds
# --------------------------------------------------------------------------------------------


def papers_from_feed(xml_bytes: bytes) -> list[FakePaper]:
    """Parse an arXiv API Atom feed (2026 or legacy layout) into ``FakePaper`` objects.

    Error entries (``<title>Error</title>``, ids under ``/api/errors``) are skipped. Text is
    kept verbatim (legacy feeds wrap titles and summaries; the client collapses titles
    itself). Raises ``ValueError`` for documents that are not well-formed Atom feeds.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(xml_bytes, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from exc
    if root.tag != f"{{{_ATOM_NS}}}feed":
        raise ValueError(f"not an Atom feed: root element is {root.tag!r}")
    papers = []
    for entry in root.iterfind("atom:entry", _NS):
        if not _is_error_entry(entry):
            papers.append(_paper_from_entry(entry))
    return papers


def _child_text(element: Any, path: str) -> str | None:
    found = element.find(path, _NS)
    return None if found is None else str(found.text or "")


def _is_error_entry(entry: Any) -> bool:
    entry_id = _child_text(entry, "atom:id") or ""
    title = (_child_text(entry, "atom:title") or "").strip()
    return "/api/errors" in entry_id or (
        title == "Error" and entry.find("atom:published", _NS) is None
    )


def _paper_from_entry(entry: Any) -> FakePaper:
    raw_id = (_child_text(entry, "atom:id") or "").strip()
    short_id = raw_id.split("arxiv.org/abs/", 1)[-1]
    match = _ID_RE.match(short_id)
    if match is None:
        raise ValueError(f"entry id {raw_id!r} is not an arXiv abs URL")
    version = match.group("version")
    if version is None:
        # Very old feeds have version-less <id>s; the alternate link still names a version.
        for link in entry.iterfind("atom:link", _NS):
            link_match = re.search(r"v(\d+)$", link.get("href") or "")
            if link.get("rel") == "alternate" and link_match:
                version = link_match.group(1)
    affiliations: dict[str, list[str]] = {}
    authors = []
    for author in entry.iterfind("atom:author", _NS):
        name = _child_text(author, "atom:name") or ""
        authors.append(name)
        affiliated = [a.text or "" for a in author.iterfind("arxiv:affiliation", _NS)]
        if affiliated:
            affiliations[name] = affiliated
    categories = [c.get("term") for c in entry.iterfind("atom:category", _NS) if c.get("term")]
    primary = entry.find("arxiv:primary_category", _NS)
    if primary is not None and primary.get("term"):
        term = primary.get("term")
        categories = [term] + [c for c in categories if c != term]
    return FakePaper(
        id=match.group("id"),
        version=int(version or 1),
        title=_child_text(entry, "atom:title") or "",
        summary=_child_text(entry, "atom:summary") or "",
        authors=authors,
        categories=categories,
        published=_required_datetime(entry, "atom:published", raw_id),
        updated=_required_datetime(entry, "atom:updated", raw_id),
        comment=_child_text(entry, "arxiv:comment"),
        doi=_child_text(entry, "arxiv:doi"),
        journal_ref=_child_text(entry, "arxiv:journal_ref"),
        affiliations=affiliations,
    )


def _required_datetime(entry: Any, path: str, entry_id: str) -> datetime:
    text = _child_text(entry, path)
    if not text:
        raise ValueError(f"entry {entry_id!r} has no <{path.split(':')[1]}>")
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Query language
# --------------------------------------------------------------------------------------------


class QuerySyntaxError(ValueError):
    """The ``search_query`` could not be parsed; the fake answers with a 400 error feed."""


_WORD_RE = re.compile(r"[^\W_]+")  # runs of letters and digits; everything else separates
# An English possessive at the end of a word ("model's", "model’s"): removed before tokenizing,
# so it does not leave a lone "s" token behind.
_POSSESSIVE_RE = re.compile(r"(?<=[^\W_])['’]s(?![^\W_])")

# arXiv's search (Lucene's English analysis) stems the indexed text and the query with the
# original Porter algorithm. The fake uses NLTK's implementation of it, deliberately not the
# bot's (PyStemmer), so tests that compare the bot's local matching with the fake's are not
# circular. (Lucene leaves words of one or two letters alone; NLTK's original mode and
# PyStemmer stem them too, e.g. "is" -> "i": the fake follows the two Python stemmers.)
_PORTER = PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM)


@functools.lru_cache(maxsize=65536)
def _stem(token: str) -> str:
    """The Porter stem of one lower-case token (``modeling`` -> ``model``)."""
    return str(_PORTER.stem(token, to_lowercase=False))


@functools.lru_cache(maxsize=4096)
def text_tokens(text: str) -> tuple[str, ...]:
    """Lower-case alphanumeric words of ``text`` with possessives dropped (``model's`` ->
    ``model``), each Porter-stemmed (``reward modeling`` -> ``("reward", "model")``)."""
    folded = _POSSESSIVE_RE.sub("", text.lower())
    return tuple(_stem(word) for word in _WORD_RE.findall(folded))


def _contains_run(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def _field_texts(paper: FakePaper, name: str) -> list[str]:
    """The separate texts a text field searches; a phrase never spans two of them."""
    comment = [paper.comment] if paper.comment else []
    if name == "ti":
        return [paper.title]
    if name == "abs":
        return [paper.summary]
    if name == "au":
        return list(paper.authors)
    if name == "co":
        return comment
    if name == "jr":
        return [paper.journal_ref] if paper.journal_ref else []
    # all: title, abstract, authors, comment and categories
    return [paper.title, paper.summary, *paper.authors, *comment, *paper.categories]


class Query(ABC):
    """A parsed query; ``matches`` decides whether one paper is a hit."""

    @abstractmethod
    def matches(self, paper: FakePaper) -> bool: ...


@dataclass(frozen=True)
class TextQuery(Query):
    """A bare term or a quoted phrase: ``words`` must appear contiguously in one text."""

    field: str
    words: tuple[str, ...]

    def matches(self, paper: FakePaper) -> bool:
        if not self.words:
            return False
        texts = _field_texts(paper, self.field)
        return any(_contains_run(text_tokens(text), self.words) for text in texts)


@dataclass(frozen=True)
class CategoryQuery(Query):
    """``cat:cs.CL`` matches that category exactly; ``cat:cs`` / ``cat:cs.*`` any of ``cs``."""

    category: str

    def matches(self, paper: FakePaper) -> bool:
        if self.category.endswith(".*"):
            archive = self.category[:-2]
        elif "." not in self.category:
            archive = self.category
        else:
            return self.category in paper.categories
        return any(c == archive or c.startswith(archive + ".") for c in paper.categories)


@dataclass(frozen=True)
class DateRangeQuery(Query):
    """An inclusive range at minute resolution; ``None`` leaves that end open."""

    field: Literal["published", "updated"]
    start: datetime | None
    end: datetime | None

    def matches(self, paper: FakePaper) -> bool:
        moment: datetime = getattr(paper, self.field).replace(second=0, microsecond=0)
        if self.start is not None and moment < self.start:
            return False
        return self.end is None or moment <= self.end


@dataclass(frozen=True)
class AndQuery(Query):
    left: Query
    right: Query

    def matches(self, paper: FakePaper) -> bool:
        return self.left.matches(paper) and self.right.matches(paper)


@dataclass(frozen=True)
class OrQuery(Query):
    left: Query
    right: Query

    def matches(self, paper: FakePaper) -> bool:
        return self.left.matches(paper) or self.right.matches(paper)


@dataclass(frozen=True)
class NotQuery(Query):
    operand: Query

    def matches(self, paper: FakePaper) -> bool:
        return not self.operand.matches(paper)


class _Kind(Enum):
    WORD = "word"
    PHRASE = "phrase"
    RANGE = "range"
    FIELD = "field"
    OPERATOR = "operator"
    OPEN = "("
    CLOSE = ")"
    END = "end of query"


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    position: int


_TEXT_FIELDS = {"ti", "abs", "au", "co", "jr", "cat", "all"}
_DATE_FIELDS: dict[str, Literal["published", "updated"]] = {
    "submitteddate": "published",
    "lastupdateddate": "updated",
}
_OPERATORS = {"AND", "OR", "ANDNOT"}
_WORD_STOP = set(' \t\r\n()"[]')
_FIELD_PREFIX_RE = re.compile(r"^([A-Za-z]+):(.*)$", re.DOTALL)


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(_Kind.OPEN if char == "(" else _Kind.CLOSE, char, i))
            i += 1
        elif char in '"[':
            closer = '"' if char == '"' else "]"
            end = query.find(closer, i + 1)
            if end < 0:
                raise QuerySyntaxError(f"unbalanced {char} at position {i}")
            kind = _Kind.PHRASE if char == '"' else _Kind.RANGE
            tokens.append(_Token(kind, query[i + 1 : end], i))
            i = end + 1
        elif char == "]":
            raise QuerySyntaxError(f"unbalanced ] at position {i}")
        else:
            start = i
            while i < len(query) and query[i] not in _WORD_STOP:
                i += 1
            tokens.extend(_classify_word(query[start:i], start))
    tokens.append(_Token(_Kind.END, "", len(query)))
    return tokens


def _classify_word(word: str, position: int) -> list[_Token]:
    if word in _OPERATORS:
        return [_Token(_Kind.OPERATOR, word, position)]
    prefix = _FIELD_PREFIX_RE.match(word)
    if prefix is None:
        return [_Token(_Kind.WORD, word, position)]
    name, rest = prefix.group(1).lower(), prefix.group(2)
    if name not in _TEXT_FIELDS and name not in _DATE_FIELDS:
        raise QuerySyntaxError(f"unknown field {prefix.group(1)!r} at position {position}")
    tokens = [_Token(_Kind.FIELD, name, position)]
    if rest:
        tokens.append(_Token(_Kind.WORD, rest, position + len(name) + 1))
    return tokens


class _Parser:
    def __init__(self, query: str) -> None:
        self._tokens = _lex(query)
        self._index = 0

    def parse(self) -> Query:
        node = self._or_expr("all")
        extra = self._peek()
        if extra.kind is not _Kind.END:
            raise QuerySyntaxError(f"unexpected {extra.text!r} at position {extra.position}")
        return node

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind is not _Kind.END:
            self._index += 1
        return token

    def _is_operator(self, *names: str) -> bool:
        token = self._peek()
        return token.kind is _Kind.OPERATOR and token.text in names

    def _or_expr(self, default_field: str) -> Query:
        node = self._and_expr(default_field)
        while self._is_operator("OR"):
            self._next()
            node = OrQuery(node, self._and_expr(default_field))
        return node

    def _and_expr(self, default_field: str) -> Query:
        if self._is_operator("ANDNOT"):  # a leading ANDNOT negates, as on arXiv
            self._next()
            node: Query = NotQuery(self._primary(default_field))
        else:
            node = self._primary(default_field)
        while True:
            if self._is_operator("AND"):
                self._next()
                node = AndQuery(node, self._primary(default_field))
            elif self._is_operator("ANDNOT"):
                self._next()
                node = AndQuery(node, NotQuery(self._primary(default_field)))
            elif self._peek().kind in (_Kind.WORD, _Kind.PHRASE, _Kind.FIELD, _Kind.OPEN):
                node = AndQuery(node, self._primary(default_field))  # juxtaposition is AND
            else:
                return node

    def _primary(self, default_field: str) -> Query:
        token = self._next()
        if token.kind is _Kind.FIELD:
            return self._fielded(token)
        if token.kind is _Kind.OPEN:
            node = self._or_expr(default_field)
            closing = self._next()
            if closing.kind is not _Kind.CLOSE:
                raise QuerySyntaxError(f"unbalanced ( at position {token.position}")
            return node
        if token.kind in (_Kind.WORD, _Kind.PHRASE):
            return _term(default_field, token)
        if token.kind is _Kind.END:
            raise QuerySyntaxError("query ends where a term was expected")
        if token.kind is _Kind.RANGE:
            raise QuerySyntaxError(
                f"a [... TO ...] range needs a date field (pos {token.position})"
            )
        raise QuerySyntaxError(f"unexpected {token.text!r} at position {token.position}")

    def _fielded(self, field_token: _Token) -> Query:
        name = field_token.text
        value = self._peek()
        if name in _DATE_FIELDS:
            if value.kind is not _Kind.RANGE:
                raise QuerySyntaxError(f"{name} needs [YYYYMMDDHHMM TO YYYYMMDDHHMM]")
            self._next()
            return _date_range(_DATE_FIELDS[name], value)
        if value.kind in (_Kind.WORD, _Kind.PHRASE, _Kind.OPEN):
            return self._primary(name)
        raise QuerySyntaxError(f"{name}: at position {field_token.position} has no value")


def _term(field_name: str, token: _Token) -> Query:
    if field_name == "cat":
        category = token.text.strip()
        if not category:
            raise QuerySyntaxError(f"empty category at position {token.position}")
        return CategoryQuery(category)
    words = text_tokens(token.text)
    if token.kind is _Kind.PHRASE and not words:
        raise QuerySyntaxError(f"empty phrase at position {token.position}")
    return TextQuery(field_name, words)


def _date_range(field_name: Literal["published", "updated"], token: _Token) -> DateRangeQuery:
    parts = token.text.split()
    if len(parts) != 3 or parts[1] != "TO":
        raise QuerySyntaxError(f"bad date range [{token.text}] at position {token.position}")
    return DateRangeQuery(field_name, _range_bound(parts[0]), _range_bound(parts[2]))


def _range_bound(text: str) -> datetime | None:
    if text == "*":
        return None
    if not re.fullmatch(r"\d{12}", text):
        raise QuerySyntaxError(f"date {text!r} is not YYYYMMDDHHMM")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError as exc:
        raise QuerySyntaxError(f"date {text!r} is not a valid date") from exc


def parse_query(query: str) -> Query:
    """Parse an arXiv ``search_query``; raises ``QuerySyntaxError`` when it is malformed."""
    return _Parser(query).parse()


# --------------------------------------------------------------------------------------------
# Answering /api/query
# --------------------------------------------------------------------------------------------

_SORT_KEYS = {"relevance": None, "lastUpdatedDate": "updated", "submittedDate": "published"}
_SORT_ORDERS = ("ascending", "descending")


class _ApiError(Exception):
    """A request the real API rejects with an error feed (``message`` is its summary)."""


@dataclass(frozen=True)
class _Page:
    papers: list[FakePaper]
    total: int
    start: int
    max_results: int
    search_query: str
    id_list: str


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _ApiError(f"{name} must be an integer") from None
    if value < 0:
        raise _ApiError(f"{name} must be non-negative")
    return value


def _current_versions(papers: Iterable[FakePaper]) -> list[FakePaper]:
    """One paper per id, the highest version (the later list entry wins a tie)."""
    best: dict[str, tuple[int, FakePaper]] = {}
    for position, paper in enumerate(papers):
        held = best.get(paper.id)
        if held is None or paper.version >= held[1].version:
            best[paper.id] = (position, paper)
    return [paper for _, paper in sorted(best.values(), key=lambda item: item[0])]


def _lookup_ids(papers: Sequence[FakePaper], raw_ids: Sequence[str]) -> list[FakePaper]:
    """Papers for an ``id_list``, in its order; ``v``-suffixed ids pick that exact version."""
    current = {paper.id: paper for paper in _current_versions(papers)}
    exact = {paper.versioned_id: paper for paper in papers}
    found: list[FakePaper] = []
    for raw_id in raw_ids:
        match = _ID_RE.match(raw_id)
        if match is None:
            raise _ApiError(f"incorrect id format for {raw_id}")
        paper = exact.get(raw_id) if match.group("version") else current.get(raw_id)
        if paper is not None and paper not in found:
            found.append(paper)
    return found


def _select(papers: Sequence[FakePaper], params: Mapping[str, str]) -> _Page:
    """Evaluate one API request against ``papers``; raises ``_ApiError`` for bad input."""
    search_query = params.get("search_query", "")
    id_list = params.get("id_list", "")
    raw_ids = [part.strip() for part in id_list.split(",") if part.strip()]
    start = _int_param(params, "start", 0)
    max_results = _int_param(params, "max_results", 10)
    sort_by = params.get("sortBy") or "relevance"
    sort_order = params.get("sortOrder") or "descending"
    if sort_by not in _SORT_KEYS:
        raise _ApiError(f"sortBy must be in: {', '.join(_SORT_KEYS)}")
    if sort_order not in _SORT_ORDERS:
        raise _ApiError(f"sortOrder must be in: {', '.join(_SORT_ORDERS)}")

    candidates = _lookup_ids(papers, raw_ids) if raw_ids else _current_versions(papers)
    if search_query.strip():
        try:
            query = parse_query(search_query)
        except QuerySyntaxError as exc:
            raise _ApiError(f"malformed search_query: {exc}") from exc
        hits = [paper for paper in candidates if query.matches(paper)]
    else:
        hits = candidates if raw_ids else []

    key = _SORT_KEYS[sort_by]
    descending = sort_order == "descending"
    if key is None:  # "relevance" is list order (or id_list order); ascending reverses it
        ordered = hits if descending else hits[::-1]
    else:
        ordered = sorted(hits, key=lambda paper: getattr(paper, key), reverse=descending)
    return _Page(
        papers=ordered[start : start + max_results],
        total=len(ordered),
        start=start,
        max_results=max_results,
        search_query=search_query,
        id_list=id_list,
    )


# --------------------------------------------------------------------------------------------
# Rendering Atom in the 2026 layout
# --------------------------------------------------------------------------------------------

_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_FEED_OPEN = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    f'<feed xmlns:opensearch="{_OPENSEARCH_NS}" xmlns:arxiv="{_ARXIV_NS}" xmlns="{_ATOM_NS}">\n'
)
_FEED_CLOSE = "</feed>\n"


def _text(value: str) -> str:
    """Escape character data (``&``, ``<``, ``>``) and drop characters XML 1.0 forbids."""
    cleaned = _INVALID_XML_CHARS.sub("", value)
    return cleaned.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;")


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _render_entry(paper: FakePaper) -> str:
    lines = [
        "  <entry>",
        f"    <id>{_text(paper.entry_id)}</id>",
        f"    <title>{_text(paper.title)}</title>",
        f"    <updated>{_timestamp(paper.updated)}</updated>",
        f'    <link href="{_attr(paper.abs_url)}" rel="alternate" type="text/html"/>',
        f'    <link href="{_attr(paper.pdf_url)}" rel="related" type="application/pdf"'
        ' title="pdf"/>',
        f"    <summary>{_text(paper.summary)}</summary>",
    ]
    lines += [
        f'    <category term="{_attr(term)}" scheme="{_ARXIV_NS}"/>' for term in paper.categories
    ]
    lines.append(f"    <published>{_timestamp(paper.published)}</published>")
    if paper.comment is not None:
        lines.append(f"    <arxiv:comment>{_text(paper.comment)}</arxiv:comment>")
    lines.append(f'    <arxiv:primary_category term="{_attr(paper.primary_category)}"/>')
    if paper.journal_ref is not None:
        lines.append(f"    <arxiv:journal_ref>{_text(paper.journal_ref)}</arxiv:journal_ref>")
    for author in paper.authors:
        lines.append("    <author>")
        lines.append(f"      <name>{_text(author)}</name>")
        for affiliation in paper.affiliations.get(author, []):
            lines.append(f"      <arxiv:affiliation>{_text(affiliation)}</arxiv:affiliation>")
        lines.append("    </author>")
    if paper.doi is not None:
        lines.append(f"    <arxiv:doi>{_text(paper.doi)}</arxiv:doi>")
        doi_url = f"https://doi.org/{paper.doi}"
        lines.append(f'    <link rel="related" href="{_attr(doi_url)}" title="doi"/>')
    lines.append("  </entry>")
    return "\n".join(lines) + "\n"


def _feed_hash(text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class _Feed:
    """A feed as text pieces, so it can also be cut inside an entry."""

    head: str
    entries: list[str]

    def body(self) -> bytes:
        return (self.head + "".join(self.entries) + _FEED_CLOSE).encode("utf-8")

    def truncated(self, complete_entries: int | None) -> bytes:
        """The feed cut halfway through the summary of entry ``complete_entries``
        (default: the last one), or halfway through the header when there are no entries."""
        if not self.entries:
            return self.head[: len(self.head) // 2].encode("utf-8")
        last = len(self.entries) - 1
        index = last if complete_entries is None else max(0, min(complete_entries, last))
        entry = self.entries[index]
        summary_start = entry.index("<summary>") + len("<summary>")
        summary_length = entry.index("</summary>") - summary_start
        cut = summary_start + summary_length // 2
        return (self.head + "".join(self.entries[:index]) + entry[:cut]).encode("utf-8")


def _render_feed(page: _Page, *, with_entries: bool = True) -> _Feed:
    query = (
        f"search_query={page.search_query}&id_list={page.id_list}"
        f"&start={page.start}&max_results={page.max_results}"
    )
    link = (
        f"https://arxiv.org/api/query?search_query={page.search_query}"
        f"&start={page.start}&max_results={page.max_results}&id_list={page.id_list}"
    )
    head = (
        _FEED_OPEN
        + f"  <id>https://arxiv.org/api/{_text(_feed_hash(query))}</id>\n"
        + f"  <title>arXiv Query: {_text(query)}</title>\n"
        + f"  <updated>{_timestamp(datetime.now(UTC))}</updated>\n"
        + f'  <link href="{_attr(link)}" type="application/atom+xml"/>\n'
        + f"  <opensearch:itemsPerPage>{page.max_results}</opensearch:itemsPerPage>\n"
        + f"  <opensearch:totalResults>{page.total}</opensearch:totalResults>\n"
        + f"  <opensearch:startIndex>{page.start}</opensearch:startIndex>\n"
    )
    entries = [_render_entry(paper) for paper in page.papers] if with_entries else []
    return _Feed(head, entries)


def render_error_feed(message: str) -> bytes:
    """arXiv's error feed: one entry titled ``Error`` whose summary is ``message``."""
    slug = re.sub(r"\s+", "_", message.strip())
    error_url = f"https://arxiv.org/api/errors#{slug}"
    now = _timestamp(datetime.now(UTC))
    return (
        _FEED_OPEN
        + "  <id>https://arxiv.org/</id>\n"
        + "  <title>arXiv Search Results</title>\n"
        + f"  <updated>{now}</updated>\n"
        + "  <opensearch:itemsPerPage>1</opensearch:itemsPerPage>\n"
        + "  <opensearch:totalResults>1</opensearch:totalResults>\n"
        + "  <opensearch:startIndex>0</opensearch:startIndex>\n"
        + "  <entry>\n"
        + f"    <id>{_text(error_url)}</id>\n"
        + "    <title>Error</title>\n"
        + f"    <updated>{now}</updated>\n"
        + f'    <link href="{_attr(error_url)}" rel="alternate" type="text/html"/>\n'
        + f"    <summary>{_text(message)}</summary>\n"
        + "    <author>\n"
        + "      <name>arXiv api core</name>\n"
        + "    </author>\n"
        + "  </entry>\n"
        + _FEED_CLOSE
    ).encode("utf-8")


# --------------------------------------------------------------------------------------------
# The daily RSS listing (rss.arxiv.org/rss/<spec>)
# --------------------------------------------------------------------------------------------

# The archive names rss.arxiv.org accepts, in the order its "Bad archive" message lists them.
RSS_ARCHIVES = (
    "astro-ph",
    "cond-mat",
    "cs",
    "econ",
    "eess",
    "gr-qc",
    "hep-ex",
    "hep-lat",
    "hep-ph",
    "hep-th",
    "math",
    "math-ph",
    "nlin",
    "nucl-ex",
    "nucl-th",
    "physics",
    "q-bio",
    "q-fin",
    "quant-ph",
    "stat",
    "test",
)
_ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
_SPEC_PART_RE = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z-]+)?$")
_EASTERN = ZoneInfo("America/New_York")
_RSS_BASE = "http://rss.arxiv.org/rss/"
_RSS_PATH = "/rss/"  # where FakeArxiv serves it
_RSS_GUID_PREFIX = "oai:arXiv.org:"
_RSS_DC_NS = "http://purl.org/dc/elements/1.1/"
_RSS_OPEN = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    f'<rss xmlns:arxiv="{_ARXIV_NS}" xmlns:dc="{_RSS_DC_NS}" xmlns:atom="{_ATOM_NS}"'
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/" version="2.0">\n'
    "  <channel>\n"
)
_RSS_SKIP_DAYS = (
    "    <skipDays>\n      <day>Saturday</day>\n      <day>Sunday</day>\n    </skipDays>\n"
)
_RSS_CLOSE = "  </channel>\n</rss>\n"


@dataclass
class FakeListing:
    """One day's announcements as rss.arxiv.org lists them.

    ``day`` is the announcement day (the channel's and every item's ``<pubDate>`` is that day
    at 00:00 US Eastern). ``items`` pairs each paper (the announced version) with its announce
    type: ``new``, ``cross``, ``replace`` or ``replace-cross``, as listed for every archive
    (``replace-cross`` is read as a replacement). What a request is served is relative to its
    spec, capped and ordered as arXiv's server does it (``announced_rows``). Tests may change
    ``items`` between requests.
    """

    day: date
    items: list[tuple[FakePaper, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_announce_types(self)


def _check_announce_types(listing: FakeListing) -> None:
    for paper, announce_type in listing.items:
        if announce_type not in _ANNOUNCE_TYPES:
            raise ValueError(
                f"announce type of {paper.versioned_id} must be one of "
                f"{', '.join(_ANNOUNCE_TYPES)}, got {announce_type!r}"
            )


def _rss_date(moment: datetime) -> str:
    """RFC 822, in English whatever the locale: ``Mon, 28 Apr 2025 00:00:00 -0400``."""
    return format_datetime(moment)


def _eastern_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=_EASTERN)


def _bad_spec_part(spec: str) -> str | None:
    """The first part of ``spec`` that names no arXiv archive or category, if any."""
    for part in spec.split("+"):
        if _SPEC_PART_RE.match(part) is None or part.split(".", 1)[0] not in RSS_ARCHIVES:
            return part
    return None


def _in_spec(paper: FakePaper, parts: Sequence[str]) -> bool:
    """``cs`` matches ``cs`` and any ``cs.*`` category; ``cs.CL`` only itself."""
    for part in parts:
        if "." in part:
            if part in paper.categories:
                return True
        elif any(c == part or c.startswith(part + ".") for c in paper.categories):
            return True
    return False


RSS_RESULT_LIMIT = 2000
"""Rows in one answer of arXiv's feed server: ``result_limit`` in ``get_announce_papers``
(github.com/arXiv/arxiv-feed, ``feed/database.py``, 2025-01)."""
RSS_VERSION_THRESHOLD = 6
"""``version_threshold`` there: a replacement is listed only below this version."""
_ACTIONS = {"new": "new", "cross": "cross", "replace": "replace", "replace-cross": "replace"}
_LISTING_ORDER = {"replace-cross": 1, "replace": 2, "cross": 3, "new": 4}


def _sortable_id(paper_id: str) -> tuple[int, str]:
    """MySQL's ``paper_id DESC`` on ids as strings; new-style ids sort after old-style."""
    return (0 if "/" in paper_id else 1, paper_id)


def announced_rows(listing: FakeListing, parts: Sequence[str]) -> list[tuple[FakePaper, str]]:
    """What arXiv's feed server lists for ``parts``, in the order it shows them.

    Follows ``get_announce_papers`` (arxiv-feed ``feed/database.py``): a listing item's type
    is taken as the update's action (``new``, ``cross``, or ``replace`` for both replacement
    types); items in no requested category are dropped, and replacements from version 6 on;
    the type is then relative to the requested set (``new`` only when the primary category
    is in it, else ``cross``; ``replace`` likewise, else ``replace-cross``); rows are ordered
    replace-cross, replace, cross, new, each by paper id descending, and cut at
    ``RSS_RESULT_LIMIT``. The serializer (feedgen, entries prepended) shows them reversed:
    new first, ids ascending. So a capped answer misses the lowest-id new papers."""
    rows: list[tuple[FakePaper, str]] = []
    for paper, given in listing.items:
        action = _ACTIONS[given]
        if not _in_spec(paper, parts):
            continue
        if action == "replace" and paper.version >= RSS_VERSION_THRESHOLD:
            continue
        primary = _in_spec(replace(paper, categories=[paper.primary_category]), parts)
        if action == "replace":
            rows.append((paper, "replace" if primary else "replace-cross"))
        else:
            rows.append((paper, "new" if action == "new" and primary else "cross"))
    # ORDER BY listing_order, paper_id DESC (two stable sorts), LIMIT, then shown reversed.
    rows.sort(key=lambda row: _sortable_id(row[0].id), reverse=True)
    rows.sort(key=lambda row: _LISTING_ORDER[row[1]])
    return rows[:RSS_RESULT_LIMIT][::-1]


def _render_rss_item(paper: FakePaper, announce_type: str, pub_date: str) -> str:
    lines = [
        "    <item>",
        f"      <title>{_text(paper.title)}</title>",
        f"      <link>https://arxiv.org/abs/{_text(paper.id)}</link>",
        # the real feed has a space before the newline
        f"      <description>arXiv:{_text(paper.versioned_id)} Announce Type: "
        f"{_text(announce_type)} \nAbstract: {_text(paper.summary)}</description>",
        f'      <guid isPermaLink="false">{_RSS_GUID_PREFIX}{_text(paper.versioned_id)}</guid>',
    ]
    lines += [f"      <category>{_text(term)}</category>" for term in paper.categories]
    lines += [
        f"      <pubDate>{pub_date}</pubDate>",
        f"      <arxiv:announce_type>{_text(announce_type)}</arxiv:announce_type>",
        f"      <dc:rights>{_text(paper.rights)}</dc:rights>",
    ]
    if paper.doi is not None:
        lines.append(f"      <arxiv:DOI>{_text(paper.doi)}</arxiv:DOI>")
    if paper.journal_ref is not None:
        lines.append(
            f"      <arxiv:journal_reference>{_text(paper.journal_ref)}</arxiv:journal_reference>"
        )
    lines += [f"      <dc:creator>{_text(', '.join(paper.authors))}</dc:creator>", "    </item>"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _RssFeed:
    """An RSS document as text pieces, so it can also be cut inside an item."""

    head: str
    items: list[str]
    tail: str

    def body(self) -> bytes:
        return (self.head + "".join(self.items) + self.tail).encode("utf-8")

    def truncated(self, complete_items: int | None) -> bytes:
        """Cut halfway through the description of item ``complete_items`` (default: the last
        one), or halfway through the channel header when there are no items."""
        if not self.items:
            return self.head[: len(self.head) // 2].encode("utf-8")
        last = len(self.items) - 1
        index = last if complete_items is None else max(0, min(complete_items, last))
        item = self.items[index]
        start = item.index("<description>") + len("<description>")
        cut = start + (item.index("</description>") - start) // 2
        return (self.head + "".join(self.items[:index]) + item[:cut]).encode("utf-8")


def _render_rss(
    spec: str,
    listing: FakeListing | None,
    *,
    today: date,
    now: datetime,
    with_items: bool = True,
) -> _RssFeed:
    """The channel for ``spec``: ``listing``'s matching items, the empty channel of ``today``
    when there is no listing, or the "Feed error" channel when a part of ``spec`` is bad.
    ``lastBuildDate`` is the listing day's Eastern midnight (as in the real capture) or
    ``now`` without a listing."""
    day = listing.day if listing is not None else today
    midnight = _eastern_midnight(day)
    pub_date = _rss_date(midnight)
    built = _rss_date((midnight if listing is not None else now).astimezone(UTC))
    url = _RSS_BASE + spec
    bad_part = _bad_spec_part(spec)
    if bad_part is not None:
        # Copied from the real capture: no <skipDays>, "rss-help.arxiv.org" (sic) and no
        # newline at the end of the document.
        head = (
            _RSS_OPEN
            + f"    <title>Feed error for query: {_text(url)}</title>\n"
            + f"    <link>{_text(url)}</link>\n"
            + f"    <description>Bad archive '{_text(bad_part)}'. Valid archive names are: "
            + f"{', '.join(RSS_ARCHIVES)}.</description>\n"
            + f'    <atom:link href="{_attr(url)}" rel="self" type="application/rss+xml"/>\n'
            + "    <docs>http://www.rssboard.org/rss-specification</docs>\n"
            + "    <language>en-us</language>\n"
            + f"    <lastBuildDate>{built}</lastBuildDate>\n"
            + "    <managingEditor>rss-help.arxiv.org</managingEditor>\n"
            + f"    <pubDate>{pub_date}</pubDate>\n"
        )
        return _RssFeed(head, [], _RSS_CLOSE.rstrip("\n"))
    names = ", ".join(spec.split("+"))
    head = (
        _RSS_OPEN
        + f"    <title>{_text(names)} updates on arXiv.org</title>\n"
        + f"    <link>{_text(url)}</link>\n"
        + f"    <description>{_text(names)} updates on the arXiv.org e-print archive."
        + "</description>\n"
        + f'    <atom:link href="{_attr(url)}" rel="self" type="application/rss+xml"/>\n'
        + "    <docs>http://www.rssboard.org/rss-specification</docs>\n"
        + "    <language>en-us</language>\n"
        + f"    <lastBuildDate>{built}</lastBuildDate>\n"
        + "    <managingEditor>rss-help@arxiv.org</managingEditor>\n"
        + f"    <pubDate>{pub_date}</pubDate>\n"
        + _RSS_SKIP_DAYS
    )
    items: list[str] = []
    if listing is not None and with_items:
        _check_announce_types(listing)
        items = [
            _render_rss_item(paper, announce_type, pub_date)
            for paper, announce_type in announced_rows(listing, spec.split("+"))
        ]
    return _RssFeed(head, items, _RSS_CLOSE)


def listing_to_rss(listing: FakeListing, spec: str) -> bytes:
    """The bytes ``FakeArxiv`` serves at ``/rss/{spec}`` while ``listing`` is set (benches can
    write a listing out with it). Deterministic: ``lastBuildDate`` is derived from the day."""
    now = datetime.now(UTC)
    return _render_rss(spec, listing, today=now.date(), now=now).body()


def listing_from_rss(xml_bytes: bytes) -> FakeListing:
    """Parse an rss.arxiv.org document (a real capture, say) into a ``FakeListing``.

    The channel's ``pubDate`` gives the day. RSS carries no submission dates, so ``published``
    and ``updated`` are set to that day's Eastern midnight; authors are ``dc:creator`` split
    at ", ". ``listing_to_rss(listing_from_rss(capture), spec)`` gives the capture back
    (``lastBuildDate`` aside when the capture's was not the day's midnight). Raises
    ``ValueError`` for documents that are not RSS."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(xml_bytes, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from exc
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ValueError(f"not an RSS document: root element is {root.tag!r}")
    pub_date = channel.findtext("pubDate")
    if not pub_date:
        raise ValueError("the channel has no <pubDate>")
    day = parsedate_to_datetime(pub_date).date()
    midnight = _eastern_midnight(day)
    listing = FakeListing(day=day)
    for item in channel.iterfind("item"):
        guid = item.findtext("guid") or ""
        match = _ID_RE.match(guid.removeprefix(_RSS_GUID_PREFIX))
        if match is None or match.group("version") is None:
            raise ValueError(f"item guid {guid!r} is not a versioned arXiv id")
        description = item.findtext("description") or ""
        summary = description.split("\nAbstract: ", 1)[1] if "\nAbstract: " in description else ""
        creators = item.findtext(f"{{{_RSS_DC_NS}}}creator") or ""
        paper = FakePaper(
            id=match.group("id"),
            version=int(match.group("version")),
            title=item.findtext("title") or "",
            summary=summary,
            authors=creators.split(", ") if creators else [],
            categories=[c.text or "" for c in item.iterfind("category")],
            published=midnight,
            updated=midnight,
            doi=item.findtext(f"{{{_ARXIV_NS}}}DOI"),
            journal_ref=item.findtext(f"{{{_ARXIV_NS}}}journal_reference"),
            rights=item.findtext(f"{{{_RSS_DC_NS}}}rights") or "",
        )
        announce_type = item.findtext(f"{{{_ARXIV_NS}}}announce_type") or ""
        listing.items.append((paper, announce_type))
    _check_announce_types(listing)
    return listing


# --------------------------------------------------------------------------------------------
# Faults, replies and request records
# --------------------------------------------------------------------------------------------

_FaultKind = Literal[
    "pass", "fail", "hang", "truncate", "malformed", "error_feed", "empty_page", "raw", "trickle"
]
_GARBAGE = b"<<< this is not an Atom feed \x00\xff\xfe >>>\n"


@dataclass(frozen=True)
class _Fault:
    kind: _FaultKind
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    message: str = ""
    content_type: str = ATOM_CONTENT_TYPE
    complete_entries: int | None = None
    interval: float = 0.0


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = ATOM_CONTENT_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False
    trickle: float = 0.0
    """Seconds between the body's bytes, sent one at a time (0: all at once)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received.

    ``params`` holds the first value of each query-string (or form) parameter, decoded.
    ``time`` is ``time.monotonic()`` at arrival (use it for spacing); ``wall_time`` is UTC.
    """

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    time: float
    wall_time: datetime

    @property
    def start(self) -> int:
        """The ``start`` parameter as an int (0 when absent)."""
        return int(self.params.get("start") or 0)


# --------------------------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads
    timeout = 0.5  # how long handle_request() waits for a connection

    def __init__(self, fake: FakeArxiv) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def abort_connections(self) -> None:
        """Unblock handler threads still reading from or writing to a client."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch(urlsplit(self.path).query)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(length).decode("utf-8", "replace"))

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; tests read ``FakeArxiv.requests`` instead."""

    def _dispatch(self, raw_params: str) -> None:
        fake = self.server.fake
        parsed = parse_qs(raw_params, keep_blank_values=True)
        record = RecordedRequest(
            method=self.command,
            path=urlsplit(self.path).path,
            params={name: values[0] for name, values in parsed.items()},
            headers={name.lower(): value for name, value in self.headers.items()},
            time=monotonic(),
            wall_time=datetime.now(UTC),
        )
        fault = fake._request_started(record)
        try:
            reply = fake._reply(record, fault)
            if reply.hang:
                fake._wait_until_stopped(None)
                self.close_connection = True
                return
            fake._wait_until_stopped(fake.latency)
            self._send(reply)
        except Exception as exc:  # a bug in the fake: make it visible, answer 500
            fake._record_error(exc)
            self._send(_Reply(500, repr(exc).encode(), "text/plain; charset=utf-8"))
        finally:
            fake._request_finished()

    def _send(self, reply: _Reply) -> None:
        headers = {"Content-Type": reply.content_type, **reply.headers}
        try:
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if reply.trickle <= 0:
                self.wfile.write(reply.body)
            for byte in range(len(reply.body)) if reply.trickle > 0 else ():
                self.wfile.write(reply.body[byte : byte + 1])
                self.wfile.flush()
                if self.server.fake._stopping.wait(reply.trickle):
                    break
        except OSError:
            self.close_connection = True  # the client went away (timed out, or stop())


class FakeArxiv:
    """A fake ``export.arxiv.org/api/query`` and ``rss.arxiv.org/rss/`` on 127.0.0.1 and a
    free port.

    API (``url``): ``papers`` is a plain list that tests may change between requests. When
    several entries share an id, searches and version-less ``id_list`` lookups see the highest
    version; ``id_list=2401.00001v1`` picks that exact version if it is in the list.
    ``sortBy=relevance`` means list order (``id_list`` order when one is given); ``ascending``
    reverses it. ``start``/``max_results`` (default 10) page the sorted hits; totalResults
    counts them all. An empty ``search_query`` with no ``id_list`` matches nothing. Text
    matching stems like arXiv (Porter, see ``text_tokens``).

    RSS (``rss_url + spec``, GET ``/rss/cs``, ``/rss/cs.CL+math``): ``listing`` (a
    ``FakeListing``, or ``None``) is the day's announcement that tests set or replace between
    requests; it is independent of ``papers``. The answer (``RSS_CONTENT_TYPE``, status 200)
    is ``listing_to_rss(listing, spec)``: the items whose categories match a part of the spec
    (``cs`` matches ``cs`` and ``cs.*``; ``cs.CL`` only itself), typed, ordered and capped as
    arXiv's feed server does (``announced_rows``), with an ``ETag``; a request whose
    ``If-None-Match`` names the current one gets ``304 Not Modified``. With no
    listing it announces every held paper today (see ``everything_today``). A part naming no
    archive in ``RSS_ARCHIVES`` gives the "Feed error for query" channel, status 200, like arXiv.

    Every request, API or RSS, is recorded in ``requests`` and takes the next queued fault
    (``truncate_next`` cuts an RSS item's description; ``empty_page_next`` drops the items).
    Other paths answer 404.

    ``latency`` delays every reply except hangs by that many seconds (``stop()`` cuts it
    short). Bugs in the fake itself are answered with HTTP 500 and collected in ``errors``.
    """

    def __init__(self, papers: Iterable[FakePaper] = (), *, latency: float = 0.0) -> None:
        self.papers: list[FakePaper] = list(papers)
        self.listing: FakeListing | None = None
        self.etags = True
        """Send an ``ETag`` with each listing and answer ``If-None-Match`` with 304."""
        self.latency = latency
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._active = 0
        self._max_active = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None or self._stopping.is_set():
            raise RuntimeError("a FakeArxiv can be started only once")
        self._server = _Server(self)
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._serve, args=(self._server,), name=f"FakeArxiv:{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung and delayed requests are released and their sockets closed."""
        server, thread = self._server, self._thread
        self._stopping.set()
        if server is None or thread is None:
            return
        # Wake the accept loop at once (instead of waiting for its timeout) with a connection
        # that sends nothing; its handler sees end-of-file and returns.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
            pass
        thread.join(timeout=5)
        server.abort_connections()
        server.server_close()
        self._server = None
        self._thread = None

    def _serve(self, server: _Server) -> None:
        while not self._stopping.is_set():
            server.handle_request()  # returns after one connection or server.timeout

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeArxiv is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/api/query``; use ``url + "?{}"`` as ``query_url_format``."""
        return f"http://127.0.0.1:{self.port}/api/query"

    @property
    def rss_url(self) -> str:
        """``http://127.0.0.1:PORT/rss/``: request ``rss_url + spec`` (``cs``, ``cs.CL+math``)."""
        return f"http://127.0.0.1:{self.port}{_RSS_PATH}"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The bot's `[arxiv]` table for this fake: no pacing, one quick retry. No OAI-PMH
        (catch-ups search submission windows) unless a test gives `oai_url`
        (``tests/fakes/oai_server.py``)."""
        return {
            "api_url": self.url,
            "rss_url": self.rss_url,
            "oai_url": "",
            "request_interval": 0,
            "retry_backoff": 0,
            "max_retries": 1,
            **overrides,
        }

    # -- recording ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def max_concurrent(self) -> int:
        """The highest number of requests that were being handled at the same time."""
        with self._lock:
            return self._max_active

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no request is being handled: a client has its answer a moment before
        the handler thread is done with it."""
        deadline = monotonic() + timeout
        while True:
            with self._lock:
                if self._active == 0:
                    return
            if monotonic() > deadline:
                raise TimeoutError(f"the fake arXiv is still answering after {timeout} s")
            sleep(0.005)

    def request_gaps(self) -> list[float]:
        """Seconds between the arrivals of consecutive requests."""
        times = [record.time for record in self.requests]
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    def clear_requests(self) -> None:
        """Forget recorded requests and reset ``max_concurrent`` (to the current load)."""
        with self._lock:
            self._requests.clear()
            self._max_active = self._active

    # -- fault injection (FIFO; each entry is used by exactly one request) --------------------

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (e.g. 500, 503, or 429 with
        ``{"Retry-After": "1"}``), a plain-text body unless ``body`` is given."""
        text = body if body is not None else f"{status} error injected by FakeArxiv\n".encode()
        self._queue(_Fault("fail", status=status, headers=dict(headers or {}), body=text), times)

    def pass_next(self, times: int = 1) -> None:
        """Answer the next ``times`` requests normally: aims the faults queued after this at
        later requests (the second page of a search, say)."""
        self._queue(_Fault("pass"), times)

    def hang_next(self, times: int = 1) -> None:
        """Accept the next requests but never answer; ``stop()`` closes their connections."""
        self._queue(_Fault("hang"), times)

    def truncate_next(self, *, times: int = 1, complete_entries: int | None = None) -> None:
        """Send the real page with status 200, cut halfway through an entry's summary:
        the last entry by default, else entry ``complete_entries`` (that many stay whole)."""
        self._queue(_Fault("truncate", complete_entries=complete_entries), times)

    def malformed_next(self, *, times: int = 1, body: bytes | None = None) -> None:
        """Answer with non-XML garbage and status 200 (in the content type of the path)."""
        self._queue(_Fault("malformed", body=body if body is not None else _GARBAGE), times)

    def error_feed_next(
        self, status: int = 400, *, times: int = 1, message: str = "incorrect id format for abc"
    ) -> None:
        """Answer with arXiv's error feed; ``status=200`` mimics the legacy API."""
        self._queue(_Fault("error_feed", status=status, message=message), times)

    def empty_page_next(self, *, times: int = 1) -> None:
        """Answer with a valid feed whose totalResults is the true count but has no entries."""
        self._queue(_Fault("empty_page"), times)

    def raw_next(
        self,
        body: bytes,
        status: int = 200,
        *,
        times: int = 1,
        content_type: str = ATOM_CONTENT_TYPE,
    ) -> None:
        """Answer with ``body`` as it is (for example a corpus capture; pass
        ``content_type=RSS_CONTENT_TYPE`` for an RSS one)."""
        self._queue(_Fault("raw", status=status, body=body, content_type=content_type), times)

    def trickle_next(self, interval: float, *, times: int = 1) -> None:
        """Send the next RSS answer one byte every ``interval`` seconds: each read of the
        client's gets something, so only a deadline on the whole answer ends it."""
        self._queue(_Fault("trickle", interval=interval), times)

    def _queue(self, fault: _Fault, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._lock:
            self._faults.extend([fault] * times)

    # -- called from handler threads -----------------------------------------------------------

    def _request_started(self, record: RecordedRequest) -> _Fault | None:
        with self._lock:
            self._requests.append(record)
            self._active += 1
            self._max_active = max(self._max_active, self._active)
            return self._faults.popleft() if self._faults else None

    def _request_finished(self) -> None:
        with self._lock:
            self._active -= 1

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)

    def _wait_until_stopped(self, timeout: float | None) -> None:
        if timeout is None or timeout > 0:
            self._stopping.wait(timeout)

    def _reply(self, record: RecordedRequest, fault: _Fault | None) -> _Reply:
        if fault is not None and fault.kind == "pass":
            fault = None
        if fault is not None and fault.kind in ("fail", "hang", "malformed", "error_feed", "raw"):
            return _fault_reply(fault, record.path)
        if record.path.startswith(_RSS_PATH):
            return self._rss_reply(record, fault)
        if record.path != "/api/query":
            return _Reply(404, b"Not Found\n", "text/plain; charset=utf-8")
        try:
            page = _select(list(self.papers), record.params)
        except _ApiError as exc:
            return _Reply(400, render_error_feed(str(exc)))
        if fault is None:
            return _Reply(200, _render_feed(page).body())
        if fault.kind == "truncate":
            return _Reply(200, _render_feed(page).truncated(fault.complete_entries))
        return _Reply(200, _render_feed(page, with_entries=False).body())  # empty_page

    def everything_today(self) -> FakeListing:
        """What ``/rss/`` serves while ``listing`` is None: every paper the fake holds (its
        current version), announced today (UTC), v1 as ``new`` and later versions as
        ``replace``. Tests about the search API get a listing that agrees with it; tests
        about days and announce types set ``listing`` themselves."""
        items = [
            (paper, "new" if paper.version == 1 else "replace")
            for paper in _current_versions(list(self.papers))
        ]
        return FakeListing(day=datetime.now(UTC).date(), items=items)

    def _rss_reply(self, record: RecordedRequest, fault: _Fault | None) -> _Reply:
        spec = unquote(record.path[len(_RSS_PATH) :])
        now = datetime.now(UTC)
        listing = self.listing if self.listing is not None else self.everything_today()
        with_items = fault is None or fault.kind != "empty_page"
        feed = _render_rss(spec, listing, today=now.date(), now=now, with_items=with_items)
        if fault is not None and fault.kind == "truncate":
            return _Reply(200, feed.truncated(fault.complete_entries), RSS_CONTENT_TYPE)
        if fault is not None and fault.kind == "trickle":
            return _Reply(200, feed.body(), RSS_CONTENT_TYPE, trickle=fault.interval)
        body = feed.body()
        etag = _etag(body)
        if self.etags and record.headers.get("if-none-match") == etag:
            return _Reply(304, b"", RSS_CONTENT_TYPE, {"ETag": etag})
        return _Reply(200, body, RSS_CONTENT_TYPE, {"ETag": etag} if self.etags else {})


def _etag(body: bytes) -> str:
    """As arXiv's feed server computes it (arxiv-feed ``feed/utils.py``, ``etag``): the
    SHA-256 of the whole answer, so a new day's ``pubDate`` alone changes it; a 304 on a
    later day means a cache in front serves the old day's bytes."""
    return '"' + hashlib.sha256(body).hexdigest() + '"'


def _fault_reply(fault: _Fault, path: str) -> _Reply:
    if fault.kind == "hang":
        return _Reply(0, hang=True)
    if fault.kind == "error_feed":
        return _Reply(fault.status, render_error_feed(fault.message))
    if fault.kind == "raw":
        return _Reply(fault.status, fault.body or b"", fault.content_type)
    if fault.kind == "malformed":
        content_type = RSS_CONTENT_TYPE if path.startswith(_RSS_PATH) else ATOM_CONTENT_TYPE
        return _Reply(200, fault.body or b"", content_type)
    return _Reply(fault.status, fault.body or b"", "text/plain; charset=utf-8", fault.headers)


def closed_port_url() -> str:
    """An ``/api/query`` URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return f"http://127.0.0.1:{port}/api/query"
