"""Assigning papers to subscriptions locally, and the arXiv queries for searching them.

The day's listing is matched here against every subscription at once (`assign`); catch-up
searches send subscriptions in batches of `batch_size`, one query per batch
(`(ti:"a" OR abs:"a") OR (ti:"b" OR abs:"b") OR ...`), and assign the answer the same way.
`matches()` follows arXiv's rules: a phrase is the same words in the same order, any case,
each word Porter-stemmed as arXiv's search stems it (`bot.keywords.tokens`); a category
names itself or, for an archive, any of its categories; an author phrase lies within one
author's name.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime

from bot import categories as taxonomy
from bot.keywords import Expression, normalize, parse, tokens
from bot.models import Paper


def _text_clause(phrase: str) -> str:
    return f'ti:"{phrase}" OR abs:"{phrase}"'


def _category_term(name: str) -> str:
    return f"cat:{name}.*" if taxonomy.has_subjects(name) else f"cat:{name}"


def expression_query(expression: Expression) -> str:
    """One subscription as an arXiv query, built from its validated parts."""
    parts = []
    if expression.phrases:
        parts.append(" OR ".join(_text_clause(p) for p in expression.phrases))
    if expression.categories:
        parts.append(" OR ".join(_category_term(c) for c in expression.categories))
    if expression.authors:
        parts.append(" OR ".join(f'au:"{a}"' for a in expression.authors))
    query = parts[0] if len(parts) == 1 else " AND ".join(f"({p})" for p in parts)
    if expression.exclude:
        excluded = " OR ".join(_text_clause(x) for x in expression.exclude)
        query = f"({query}) ANDNOT ({excluded})"
    return query


def category_clause(categories: Sequence[str]) -> str:
    return " OR ".join(_category_term(c) for c in categories)


def date_clause(since: datetime, until: datetime) -> str:
    fmt = "%Y%m%d%H%M"
    return f"submittedDate:[{since.strftime(fmt)} TO {until.strftime(fmt)}]"


def build_query(
    keywords: Sequence[str],
    *,
    categories: Sequence[str] = (),
    window: tuple[datetime, datetime] | None = None,
) -> str:
    if not keywords:
        raise ValueError("a query needs at least one keyword")
    queries = [expression_query(parse(k)) for k in keywords]
    either = queries[0] if len(queries) == 1 else " OR ".join(f"({q})" for q in queries)
    parts = [f"({either})"]
    if categories:
        parts.append(f"({category_clause(categories)})")
    if window is not None:
        parts.append(date_clause(*window))
    return " AND ".join(parts)


def batches(keywords: Sequence[str], size: int) -> list[list[str]]:
    return [list(keywords[i : i + size]) for i in range(0, len(keywords), size)]


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def in_categories(paper: Paper, categories: Sequence[str]) -> bool:
    if not categories:
        return True
    return any(
        cat == wanted or cat.startswith(wanted + ".")
        for cat in paper.categories
        for wanted in categories
    )


class _Tokenized:
    """A paper's words, split once however many subscriptions look at it."""

    def __init__(self, paper: Paper) -> None:
        self.paper = paper
        self.title = tokens(paper.title)
        self.summary = tokens(paper.summary)
        self._authors: list[list[str]] | None = None

    @property
    def authors(self) -> list[list[str]]:
        if self._authors is None:
            self._authors = [tokens(name) for name in self.paper.authors]
        return self._authors

    def has_phrase(self, needle: list[str]) -> bool:
        return _contains(self.title, needle) or _contains(self.summary, needle)


class _Compiled:
    def __init__(self, expression: Expression) -> None:
        self.phrases = [tokens(p) for p in expression.phrases]
        self.exclude = [tokens(x) for x in expression.exclude]
        self.authors = [tokens(a) for a in expression.authors]
        self.categories = expression.categories

    def matches(self, doc: _Tokenized) -> bool:
        if self.phrases and not any(doc.has_phrase(p) for p in self.phrases):
            return False
        if self.categories and not in_categories(doc.paper, self.categories):
            return False
        if self.authors and not any(
            _contains(name, a) for a in self.authors for name in doc.authors
        ):
            return False
        return not any(doc.has_phrase(x) for x in self.exclude)


def matches(paper: Paper, keyword: str) -> bool:
    return _Compiled(parse(keyword)).matches(_Tokenized(paper))


def newest_versions(papers: Iterable[Paper]) -> list[Paper]:
    """Each paper once, in first-seen order, at the highest version seen."""
    newest: dict[str, Paper] = {}
    for paper in papers:
        kept = newest.get(paper.id)
        if kept is None or paper.version > kept.version:
            newest[paper.id] = paper
    return list(newest.values())


class _Index:
    """Which subscriptions a paper can answer at all: a phrase can only be in a text that
    holds its first word pair. Deciding is left to `_Compiled.matches`; the index only keeps
    each paper from being scanned for every subscription."""

    def __init__(self, compiled: dict[str, _Compiled]) -> None:
        self.starts: dict[tuple[str, ...], list[str]] = {}
        self.always: list[str] = []  # no phrase to look for (categories, authors)
        for keyword, expression in compiled.items():
            if not expression.phrases or not all(expression.phrases):
                self.always.append(keyword)
                continue
            for phrase in expression.phrases:
                self.starts.setdefault(tuple(phrase[:2]), []).append(keyword)

    def candidates(self, doc: _Tokenized) -> set[str]:
        grams: set[tuple[str, ...]] = set()
        for words in (doc.title, doc.summary):
            grams.update((w,) for w in words)
            grams.update(itertools.pairwise(words))
        found = set(self.always)
        for gram in grams & self.starts.keys():
            found.update(self.starts[gram])
        return found


def assign(papers: Iterable[Paper], keywords: Sequence[str]) -> dict[str, list[Paper]]:
    """For each keyword, the papers that answer it (each paper once, newest version kept).
    Pure CPU (BENCHMARKS.md, figure M): digests run it in a worker thread."""
    compiled = {k: _Compiled(parse(k)) for k in keywords}
    index = _Index(compiled)
    result: dict[str, list[Paper]] = {k: [] for k in keywords}
    for paper in newest_versions(papers):
        doc = _Tokenized(paper)
        for keyword in index.candidates(doc):
            if compiled[keyword].matches(doc):
                result[keyword].append(paper)
    return result


def distinct(keywords: Iterable[str]) -> list[str]:
    """Keywords in first-seen order, one per normalized form."""
    seen: dict[str, str] = {}
    for k in keywords:
        seen.setdefault(normalize(k), k)
    return list(seen.values())
