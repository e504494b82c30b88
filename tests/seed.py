"""The shared seed: a real Daily Papers README, whose tables are arXiv's own answers for
two keywords ("Reward Model" and "Reasoning", 20 papers each, as of 2025-04-24)."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.models import Paper
from tests.conftest import SEEDS
from tests.fakes.arxiv_server import FakeListing, FakePaper

_ROW = re.compile(
    r"^\| \*\*\[(?P<title>.*)\]\(http://arxiv\.org/abs/(?P<id>[^)]+)v(?P<v>\d+)\)\*\* "
    r"\| (?P<date>\d{4}-\d\d-\d\d) \| <details><summary>Show</summary><p>(?P<abs>.*)</p>"
    r"</details> \| (?P<comment>.*) \|$"
)
_COLLAPSED = re.compile(r"^<details><summary>.{5}\.\.\.</summary><p>(.*)</p></details>$")


def seed_path() -> Path:
    seeds = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []
    if not seeds:
        pytest.skip(f"the shared seeds are absent: {SEEDS}")
    return seeds[0]


def papers_from_seed(text: str) -> dict[str, list[Paper]]:
    sections: dict[str, list[Paper]] = {}
    current: list[Paper] = []
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:], [])
        match = _ROW.match(line)
        if match is None:
            continue
        when = datetime.fromisoformat(match["date"]).replace(tzinfo=UTC)
        comment = match["comment"]
        collapsed = _COLLAPSED.match(comment)
        current.append(
            Paper(
                id=match["id"],
                version=int(match["v"]),
                title=match["title"],
                authors=(),
                summary=html.unescape(match["abs"]),
                comment=html.unescape(collapsed[1] if collapsed else comment) or None,
                primary_category="",
                categories=(),
                published=when,
                updated=when,
            )
        )
    return sections


def seed_sections() -> dict[str, list[Paper]]:
    """Keyword -> the papers arXiv answered for it (no authors or categories: the README
    doesn't show them)."""
    return papers_from_seed(seed_path().read_text(encoding="utf-8"))


def seed_fake_papers() -> list[FakePaper]:
    """The seed's papers as the fake arXiv holds them (one author and category stand in
    for what the README doesn't show; matching reads only titles and abstracts)."""
    papers: dict[str, FakePaper] = {}
    for rows in seed_sections().values():
        for p in rows:
            papers[p.id] = FakePaper(
                id=p.id,
                version=p.version,
                title=p.title,
                summary=p.summary,
                authors=["A. Researcher"],
                categories=["cs.CL"],
                published=p.published - timedelta(days=p.version - 1),
                updated=p.updated,
                comment=p.comment,
            )
    return list(papers.values())


def seed_ids() -> dict[str, set[str]]:
    return {k: {p.id for p in v} for k, v in seed_sections().items()}


def seed_listing(day: date) -> FakeListing:
    """The seed's papers announced as new on `day`."""
    return FakeListing(day=day, items=[(p, "new") for p in seed_fake_papers()])
