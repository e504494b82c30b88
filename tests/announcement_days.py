"""Announcement days as large as arXiv's busy ones, for the feed's 2,000-row cap (issue 21).

A day of `rows` listed rows across every archive, `cs_rows` of them touching cs, with arXiv's
mix of types (about 60 % new, 8 % cross-lists of older papers, the rest replacements, some
from version 6 on, which the feed leaves out). `matching` papers carry the keyword in their
title: most are new papers with the lowest ids of their archive, the ones a capped answer
loses, the rest cross-lists and replacements. Deterministic for a given `seed`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bot.categories import categories_of
from tests.fakes.arxiv_server import FakeListing, FakePaper

OTHER_CATEGORIES = (
    *categories_of("math"),
    *categories_of("stat"),
    *categories_of("physics"),
    *categories_of("astro-ph"),
    *categories_of("cond-mat"),
    *categories_of("eess"),
    *categories_of("q-bio"),
    "hep-th",
    "hep-ph",
    "quant-ph",
    "gr-qc",
)
CS_CATEGORIES = categories_of("cs")


@dataclass(frozen=True)
class BusyDay:
    listing: FakeListing
    matching: tuple[tuple[FakePaper, str], ...]
    """The rows whose title carries the keyword, typed for every archive."""

    def matching_in(self, archive: str) -> set[str]:
        """Ids of the matching rows that a request for `archive` lists."""
        return {
            paper.id
            for paper, _ in self.matching
            if any(c.split(".")[0] == archive for c in paper.categories)
        }

    def matching_new(self, archive: str | None = None) -> set[str]:
        """Ids of the matching rows that are news without revisions (new or cross)."""
        wanted = self.matching_in(archive) if archive else None
        return {
            paper.id
            for paper, kind in self.matching
            if kind in ("new", "cross") and (wanted is None or paper.id in wanted)
        }


def busy_day(
    day: date,
    *,
    rows: int = 3469,
    cs_rows: int = 2169,
    matching: int = 49,
    keyword: str = "reward model",
    month: int = 12,
    seed: int = 21,
) -> BusyDay:
    """`month` picks the new papers' ids (`26{month:02d}.NNNNN`): give each day its own."""
    rng = random.Random(seed)
    submitted = datetime.combine(day, time(12), UTC) - timedelta(days=1)
    items: list[tuple[FakePaper, str]] = []
    chosen: list[tuple[FakePaper, str]] = []

    def paper(pid: str, cs: bool, version: int, n: int, match: bool) -> FakePaper:
        home = CS_CATEGORIES if cs else OTHER_CATEGORIES
        elsewhere = OTHER_CATEGORIES if cs else CS_CATEGORIES
        categories = [rng.choice(home)]
        if rng.random() < 0.3:
            categories.append(rng.choice(home))
        if rng.random() < (0.15 if cs else 0.05):
            categories.append(rng.choice(elsewhere))
        title = f"On {keyword}s, part {n}" if match else f"A study of topic {n} in detail"
        published = submitted - timedelta(days=0 if version == 1 else 200 + n % 300)
        return FakePaper(
            id=pid,
            version=version,
            title=title,
            summary=f"Abstract number {n}, about methods and results.",
            authors=[f"Author {n}", f"Coauthor {n % 97}"],
            categories=list(dict.fromkeys(categories)),
            published=published,
            updated=submitted if version > 1 else published,
        )

    plan = _plan(rows, cs_rows)
    rng.shuffle(plan)  # ids are given in submission order, archives interleaved
    new_cs = [i for i, (kind, cs) in enumerate(plan) if kind == "new" and cs]
    new_other = [i for i, (kind, cs) in enumerate(plan) if kind == "new" and not cs]
    others = [i for i, (kind, _) in enumerate(plan) if kind != "new"]
    lowest = matching * 6 // 10  # lowest-id new papers of cs: a capped answer's first loss
    elsewhere = matching * 2 // 10
    to_match = {*new_cs[:lowest], *new_other[:elsewhere]}
    to_match |= set(others[:: max(1, len(others) // (matching - len(to_match)))])
    to_match = set(sorted(to_match)[:matching])
    serial = {"new": 0, "cross": 0, "replace": 0}
    for i, (kind, cs) in enumerate(plan):
        serial[kind] += 1
        n = serial[kind]
        prefix, version = {"new": ("26", 1), "cross": ("25", 1), "replace": ("24", 2 + n % 4)}[kind]
        row = (paper(f"{prefix}{month:02d}.{n:05d}", cs, version, i, i in to_match), kind)
        items.append(row)
        if i in to_match:
            chosen.append(row)
    for n in range(1, 40):  # replacements from version 6 on: the feed leaves them out
        late = paper(f"23{month:02d}.{n:05d}", n % 2 == 0, 6 + n % 3, 90_000 + n, False)
        items.append((late, "replace"))
    rng.shuffle(items)
    return BusyDay(FakeListing(day=day, items=items), tuple(chosen))


def _plan(rows: int, cs_rows: int) -> list[tuple[str, bool]]:
    """(type, in cs) per row."""
    plan: list[tuple[str, bool]] = []
    for total, cs in ((cs_rows, True), (rows - cs_rows, False)):
        new = total * 60 // 100
        cross = total * 8 // 100
        plan += [("new", cs)] * new + [("cross", cs)] * cross
        plan += [("replace", cs)] * (total - new - cross)
    return plan
