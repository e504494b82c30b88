"""Local matching throughput: (paper, keyword) pairs per second of `bot.matching.assign`.

Papers: the 1,504 items of a real arXiv RSS announcement (all archives, 2024-11-28), read
from the shared corpus where it lies. Keywords: the most frequent two-word phrases of
those titles, so they match the way real subscriptions do. Baseline: the naive loop,
`matches(paper, keyword)` for every pair (re-reading the paper for each keyword), whose
answers `assign` must give as well.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from lxml import etree

from bench.common import CORPUS, Row, ratio, say
from bot.keywords import tokens
from bot.matching import assign, matches
from bot.models import Paper, split_version

RSS = CORPUS / "arxiv_rss_2024-11-28_all_archives_1504_items_LARGE.xml"
_STOPWORDS = (
    "a an the of for and or in on to with from by via at as is are be we our its it this that "
    "into using based under over towards toward beyond between through without new non"
)
_STOP = frozenset(_STOPWORDS.split())
_DC = "{http://purl.org/dc/elements/1.1/}"


def read_rss(path: Path = RSS) -> list[Paper]:
    root = etree.parse(str(path), parser=etree.XMLParser(resolve_entities=False)).getroot()
    papers = []
    for item in root.iter("item"):
        guid = (item.findtext("guid") or "").rsplit(":", 1)[-1]
        paper_id, version = split_version(guid)
        description = item.findtext("description") or ""
        summary = description.split("Abstract:", 1)[-1]
        when: datetime = parsedate_to_datetime(item.findtext("pubDate") or "")
        categories = tuple(c.text or "" for c in item.findall("category")) or ("unknown",)
        creators = item.findtext(f"{_DC}creator") or ""
        papers.append(
            Paper(
                id=paper_id,
                version=version,
                title=" ".join((item.findtext("title") or "").split()),
                authors=tuple(a.strip() for a in creators.split(",") if a.strip()),
                summary=" ".join(summary.split()),
                comment=None,
                primary_category=categories[0],
                categories=categories,
                published=when,
                updated=when,
            )
        )
    return papers


def title_phrases(papers: Sequence[Paper], n: int) -> list[str]:
    """The `n` two-word phrases found in the most titles (no stop words)."""
    counts: Counter[str] = Counter()
    for paper in papers:
        words = tokens(paper.title)
        pairs = {
            f"{a} {b}"
            for a, b in itertools.pairwise(words)
            if a not in _STOP and b not in _STOP and not a.isdigit() and not b.isdigit()
        }
        counts.update(pairs)
    return [phrase for phrase, _ in counts.most_common(n)]


Assign = Callable[[Sequence[Paper], Sequence[str]], dict[str, list[Paper]]]


def naive(papers: Sequence[Paper], keywords: Sequence[str]) -> dict[str, list[Paper]]:
    return {k: [p for p in papers if matches(p, k)] for k in keywords}


def rate(fn: Assign, papers: Sequence[Paper], keywords: Sequence[str]) -> float:
    """Pairs per second (best of the runs that fill ~0.3 s, at least one)."""
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 1 or (spent < 0.3 and runs < 20):
        started = time.perf_counter()
        fn(papers, keywords)
        took = time.perf_counter() - started
        best, spent, runs = min(best, took), spent + took, runs + 1
    return len(papers) * len(keywords) / best


def run() -> list[Row]:
    if not RSS.is_file():
        say(f"  matching: corpus file absent ({RSS}); skipped")
        return [Row("M", "local matching throughput", f"not measured: {RSS} is absent")]
    papers = read_rss()
    keywords = title_phrases(papers, 500)
    say(f"  matching: {len(papers)} papers, {len(keywords)} title phrases")
    # The naive loop runs once, on an even sample of the corpus (every 25th paper) with all
    # 500 keywords, about 3 s; rates are per pair, so they compare with `assign`'s full runs,
    # and its answers are what `assign` must answer on that sample.
    sample = papers[::25]
    started = time.perf_counter()
    expected = naive(sample, keywords)
    naive_rate = len(sample) * len(keywords) / (time.perf_counter() - started)
    rows = []
    for k in (100, 500):
        kws = keywords[:k]
        core_rate = rate(assign, papers, kws)
        same = assign(sample, kws) == {kw: expected[kw] for kw in kws}
        hits = sum(len(expected[kw]) for kw in kws)
        say(f"  matching: K={k}: assign {core_rate:,.0f} pairs/s, naive {naive_rate:,.0f}")
        rows.append(
            Row(
                "M",
                f"`assign`, all {len(papers)} corpus papers × {k} keywords: pairs/s; CPU s "
                "for the day",
                f"{core_rate:,.0f}; {len(papers) * k / core_rate:.2f} s",
                f"{naive_rate:,.0f} (naive `matches` per pair; {len(sample)} papers); "
                f"{len(papers) * k / naive_rate:.2f} s at its rate",
                ratio(core_rate, naive_rate),
                f"same answers as the naive loop ({len(sample)} papers, {hits} matches)",
                "yes" if same else "**no**",
            )
        )
    return rows


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
