"""Deterministic synthetic keywords and papers for the benchmarks.

Keywords are two-word phrases (`sparse transformer`, `causal inference`, ...) built from a
vocabulary that the filler text never uses, so a paper answers a keyword only where the
generator put the phrase. Keyword popularity falls off as 1/(rank + 10): a few keywords
match many papers, most match a handful, as on arXiv.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.models import Paper
from tests.fakes.arxiv_server import FakePaper, make_paper

_MODIFIERS = (
    "sparse bayesian quantum graph contrastive diffusion federated causal adversarial neural "
    "stochastic variational multimodal robust spectral topological recurrent hierarchical "
    "probabilistic differentiable equivariant kernel lowrank selfsupervised reinforcement "
    "generative implicit latent optimal hamiltonian"
)
MODIFIERS = _MODIFIERS.split()
_HEADS = (
    "transformer inference attention sampling optimization control embedding retrieval "
    "segmentation planning estimation compression detection representation alignment "
    "decoding clustering regression simulation tomography"
)
HEADS = _HEADS.split()
_FILLER = (
    "we propose method result show data paper study approach novel performance experiment "
    "benchmark framework analysis improve efficient large scale problem new model task "
    "learning network training evaluate demonstrate existing prior work based using across "
    "several different setting real world provide theoretical empirical evidence strong "
    "baseline state art significantly outperform achieve accuracy cost time memory "
    "extensive code available public dataset propose introduce present address challenge "
    "limitation key insight simple effective general approach furthermore moreover the of "
    "and to in for on with by from that this these our their is are be can which"
)
FILLER = _FILLER.split()

EPOCH = datetime.fromisoformat("2026-11-02T00:00:00+00:00")
"""The synthetic 'now' of day 0 (a Monday)."""


def keyword_pool(n: int = 600, seed: int = 7) -> list[str]:
    """`n` distinct two-word keywords, most popular first."""
    pool = [f"{m} {h}" for m in MODIFIERS for h in HEADS]
    random.Random(seed).shuffle(pool)
    if n > len(pool):
        raise ValueError(f"at most {len(pool)} keywords")
    return pool[:n]


class PaperMaker:
    """Papers whose titles and abstracts mention pool keywords with Zipf-like popularity."""

    def __init__(self, pool: Sequence[str], *, seed: int = 11, abstract_words: int = 150):
        self.pool = list(pool)
        self.rng = random.Random(seed)
        self.weights = [1.0 / (rank + 10) for rank in range(len(self.pool))]
        self.abstract_words = abstract_words
        self.next_n = 1

    def _filler(self, words: int) -> list[str]:
        return self.rng.choices(FILLER, k=words)

    def _keywords(self, k: int) -> list[str]:
        return self.rng.choices(self.pool, weights=self.weights, k=k)

    def one(self, published: datetime) -> FakePaper:
        n = self.next_n
        self.next_n += 1
        title = self._filler(self.rng.randint(5, 9))
        if self.rng.random() < 0.8:
            title.insert(self.rng.randrange(len(title)), self._keywords(1)[0])
        words = self.abstract_words
        summary = self._filler(self.rng.randint(words * 2 // 3, words * 4 // 3))
        for keyword in self._keywords(self.rng.randint(1, 3)):
            summary.insert(self.rng.randrange(len(summary)), keyword)
        return make_paper(
            n,
            title=" ".join(title).capitalize(),
            summary=" ".join(summary).capitalize() + ".",
            authors=[f"Author {n}", f"Coauthor {n % 97}"],
            published=published,
        )

    def day(self, count: int, day_start: datetime) -> list[FakePaper]:
        """`count` papers submitted within the 24 hours before `day_start`."""
        step = timedelta(days=1) / (count + 1)
        return [self.one(day_start - step * (i + 1)) for i in range(count)]

    def days(self, per_day: int, days: int, now: datetime) -> list[FakePaper]:
        papers: list[FakePaper] = []
        for back in range(days):
            papers.extend(self.day(per_day, now - timedelta(days=back)))
        return papers


def as_paper(fake: FakePaper) -> Paper:
    """The `Paper` the bot builds from the fake's entry for this paper."""
    return Paper(
        id=fake.id,
        version=fake.version,
        title=fake.title,
        authors=tuple(fake.authors),
        summary=fake.summary,
        comment=fake.comment,
        primary_category=fake.primary_category,
        categories=tuple(fake.categories),
        published=fake.published,
        updated=fake.updated,
    )


def week_and_days(
    pool: Sequence[str], per_day: int, window_days: int, later_days: int
) -> list[list[FakePaper]]:
    """Element 0: `window_days` days of papers before EPOCH; element d: day d's papers."""
    maker = PaperMaker(pool)
    days = [maker.days(per_day, window_days, EPOCH)]
    days += [maker.day(per_day, EPOCH + timedelta(days=d)) for d in range(1, later_days + 1)]
    return days
