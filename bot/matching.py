"""Building arXiv queries for many keywords at once, and assigning the answers locally.

Strategy: keywords are fetched in batches of `batch_size`, one query per batch
(`ti:"a" OR abs:"a" OR ti:"b" OR ...`), limited to a window of recent submission
dates. Each paper of the answer is then assigned to the keywords it matches with
`matches()`, which follows arXiv's phrase search: same words, same order, any case,
plurals folded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from bot.keywords import normalize, tokens
from bot.models import Paper


def keyword_clause(keyword: str) -> str:
    """`ti:"reward model" OR abs:"reward model"`; the keyword is already validated."""
    phrase = " ".join(keyword.split())
    return f'ti:"{phrase}" OR abs:"{phrase}"'


def category_clause(categories: Sequence[str]) -> str:
    return " OR ".join(f"cat:{c}" for c in categories)


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
    parts = [f"({' OR '.join(keyword_clause(k) for k in keywords)})"]
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


def matches(paper: Paper, keyword: str) -> bool:
    needle = tokens(keyword)
    return bool(needle) and (
        _contains(tokens(paper.title), needle) or _contains(tokens(paper.summary), needle)
    )


def in_categories(paper: Paper, categories: Sequence[str]) -> bool:
    if not categories:
        return True
    return any(
        cat == wanted or cat.startswith(wanted + ".")
        for cat in paper.categories
        for wanted in categories
    )


def assign(papers: Iterable[Paper], keywords: Sequence[str]) -> dict[str, list[Paper]]:
    """For each keyword, the papers that answer it (each paper once, newest version kept)."""
    newest: dict[str, Paper] = {}
    for paper in papers:
        kept = newest.get(paper.id)
        if kept is None or paper.version > kept.version:
            newest[paper.id] = paper
    needles = {k: tokens(k) for k in keywords}
    result: dict[str, list[Paper]] = {k: [] for k in keywords}
    for paper in newest.values():
        title, summary = tokens(paper.title), tokens(paper.summary)
        for keyword, needle in needles.items():
            if needle and (_contains(title, needle) or _contains(summary, needle)):
                result[keyword].append(paper)
    return result


def distinct(keywords: Iterable[str]) -> list[str]:
    """Keywords in first-seen order, one per normalized form."""
    seen: dict[str, str] = {}
    for k in keywords:
        seen.setdefault(normalize(k), k)
    return list(seen.values())
