"""Papers for tests that don't go through the fake arXiv."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.models import Paper

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def paper(
    n: int,
    *,
    title: str = "",
    summary: str = "",
    version: int = 1,
    comment: str | None = None,
    authors: tuple[str, ...] = ("Ada Lovelace", "Alan Turing"),
    categories: tuple[str, ...] = ("cs.LG",),
    published: datetime | None = None,
) -> Paper:
    when = published or BASE - timedelta(hours=n)
    return Paper(
        id=f"2611.{n:05d}",
        version=version,
        title=title or f"Paper number {n}",
        authors=authors,
        summary=summary or f"Abstract of paper {n}.",
        comment=comment,
        primary_category=categories[0],
        categories=categories,
        published=when,
        updated=when + timedelta(days=version - 1),
    )
