"""A prefiltered `assign`: the change this benchmark proposes for `bot/matching.py`.

Same answers as `bot.matching.assign` (each subscription still decided by the core's own
`_Compiled.matches`), but a paper is tested only against the subscriptions that one of
its word pairs can start: one set intersection per paper instead of one phrase scan per
(paper, subscription) pair, so the cost per paper stops growing with the number of
keywords.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from bot import digest as digest_module
from bot import matching as core
from bot.keywords import parse
from bot.models import Paper


def prefiltered_assign(papers: Iterable[Paper], keywords: Sequence[str]) -> dict[str, list[Paper]]:
    newest: dict[str, Paper] = {}
    for paper in papers:
        kept = newest.get(paper.id)
        if kept is None or paper.version > kept.version:
            newest[paper.id] = paper
    compiled = {k: core._Compiled(parse(k)) for k in keywords}
    starts: dict[tuple[str, ...], list[str]] = {}
    always: list[str] = []
    for keyword, expression in compiled.items():
        if not expression.phrases or not all(expression.phrases):
            always.append(keyword)  # no phrase to look for: test every paper
            continue
        for phrase in expression.phrases:
            starts.setdefault(tuple(phrase[:2]), []).append(keyword)
    result: dict[str, list[Paper]] = {k: [] for k in keywords}
    for paper in newest.values():
        doc = core._Tokenized(paper)
        grams: set[tuple[str, ...]] = set()
        for words in (doc.title, doc.summary):
            grams.update((w,) for w in words)
            grams.update(itertools.pairwise(words))
        candidates = set(always)
        for gram in grams & starts.keys():
            candidates.update(starts[gram])
        for keyword in candidates:
            if compiled[keyword].matches(doc):
                result[keyword].append(paper)
    return result


@contextlib.contextmanager
def fast_matching(check: int = 20) -> Iterator[list[int]]:
    """Digests run with `prefiltered_assign` instead of `bot.matching.assign`; the first
    `check` calls also run the core's and raise if the answers differ (so leave it 0 when
    timing). Yields how many calls were checked."""
    checked = [0]
    namespace = vars(digest_module)  # the name `bot.digest` looks `assign` up under
    core = namespace["assign"]

    def checking(papers: Any, keywords: Sequence[str]) -> dict[str, list[Paper]]:
        papers = list(papers)
        fast = prefiltered_assign(papers, keywords)
        if checked[0] < check:
            if fast != core(papers, keywords):
                raise AssertionError("prefiltered assign disagrees with bot.matching.assign")
            checked[0] += 1
        return fast

    namespace["assign"] = checking
    try:
        yield checked
    finally:
        namespace["assign"] = core
