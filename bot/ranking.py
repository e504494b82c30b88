"""Papers ordered by what a channel voted for (issue #14).

A channel's taste is the text of the papers it voted up ("👍 Relevant") and down ("👎 Less
like this"). `rank` orders the day's candidates by predicted relevance to that taste.

The model is a logistic regression on TF-IDF vectors of Porter-stemmed words (the
project's `bot.keywords.tokens`) and categories, fitted per call by a few epochs of SGD:
up-votes against down-votes and a fixed sample of the unvoted candidates. IDF comes from
the candidates and the votes, so nothing is trained or downloaded ahead. Chosen by figure R
of BENCHMARKS.md (the cs papers of a real arXiv day, tastes hidden in them): it ties
Rocchio and nearest neighbours from 1 and 3 up-votes (ROC AUC 0.77, 0.84) and beats them
from 10 (AUC 0.91 and 0.95 at 10 and 30 up-votes against Rocchio's 0.87 and 0.89;
precision at 10 0.76 and 0.90 against 0.70 and 0.74, random order 0.09), and with up-votes
from other papers (the seed's rows of 2025 ranking a 2024 day: AUC 0.92 against 0.83).
Naive Bayes trailed everywhere below 30 up-votes. Rocchio remains for a taste of down-votes
only.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bot.keywords import tokens
from bot.models import Paper

MAX_TEXT = 2000
"""Characters of a paper kept as the model's input (stored in Redis once per vote)."""

_CATEGORY_LINE = re.compile(r"^\[([A-Za-z0-9.\- ]*)\]$")
_STOPWORDS = frozenset(
    tokens(
        "a an the of for and or in on to with from by via at as is are was were be been "
        "we our its it this that these those which into using use based under over than "
        "then also can may such both each not no non new show shows propose proposed "
        "present paper approach method results"
    )
)

Bag = Counter[str]
"""A text's terms (Porter stems and `cat:` features) and how often each occurs."""
Vector = dict[str, float]


@dataclass(frozen=True, slots=True)
class Taste:
    liked: tuple[str, ...] = ()
    """`paper_text` of each paper the channel voted up."""
    disliked: tuple[str, ...] = ()
    """`paper_text` of each paper the channel marked "less like this"."""

    @property
    def empty(self) -> bool:
        return not (self.liked or self.disliked)


def paper_text(paper: Paper) -> str:
    """What the model reads of a paper, and what is stored per vote: the title, a line of
    categories in brackets (when known), the abstract; at most `MAX_TEXT` characters."""
    categories = [c for c in paper.categories or (paper.primary_category,) if c]
    head = " ".join(paper.title.split())
    if categories:
        head += f"\n[{' '.join(categories)}]"
    return f"{head}\n{' '.join(paper.summary.split())}"[:MAX_TEXT]


def bag(text: str) -> Bag:
    """The terms of a `paper_text`: its words' stems (no stop words, digits or single
    letters) and, for its category line, `cat:cs.LG` and `cat:cs` per category."""
    lines = text.split("\n")
    categories: list[str] = []
    if len(lines) > 1 and (match := _CATEGORY_LINE.match(lines[1])):
        categories = match[1].split()
        del lines[1]
    terms: Bag = Counter(
        t for t in tokens(" ".join(lines)) if len(t) > 1 and not t.isdigit() and t not in _STOPWORDS
    )
    for category in categories:
        terms[f"cat:{category}"] += 1
        archive = category.split(".", 1)[0]
        if archive != category:
            terms[f"cat:{archive}"] += 1
    return terms


def idf(bags: Sequence[Bag]) -> dict[str, float]:
    """Smoothed inverse document frequency over `bags` (the day's candidates and the votes)."""
    df: Counter[str] = Counter()
    for b in bags:
        df.update(b.keys())
    n = len(bags) + 1
    return {term: math.log(n / (count + 1)) + 1.0 for term, count in df.items()}


def tfidf(b: Bag, weights: dict[str, float]) -> Vector:
    """Sublinear term frequency times IDF (`weights` knows every term of `b`), unit length."""
    vector = {t: (1.0 + math.log(n)) * weights[t] for t, n in b.items()}
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {t: w / norm for t, w in vector.items()} if norm else {}


def dot(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items())


def mean(vectors: Sequence[Vector]) -> Vector:
    total: dict[str, float] = {}
    for v in vectors:
        for t, w in v.items():
            total[t] = total.get(t, 0.0) + w
    n = len(vectors)
    return {t: w / n for t, w in total.items()}


DISLIKE_WEIGHT = 0.5
"""Rocchio: how far the centroid of down-votes pulls the taste away (up-votes weigh 1)."""


def rocchio(
    candidates: Sequence[Bag], liked: Sequence[Bag], disliked: Sequence[Bag]
) -> list[float]:
    """Cosine to the TF-IDF centroid of the up-votes minus `DISLIKE_WEIGHT` times the
    down-votes' centroid: the model when there are no up-votes to learn from."""
    weights = idf([*candidates, *liked, *disliked])
    taste = _centroids(weights, liked, disliked)
    return [dot(tfidf(b, weights), taste) for b in candidates]


def _centroids(weights: dict[str, float], liked: Sequence[Bag], disliked: Sequence[Bag]) -> Vector:
    taste = mean([tfidf(b, weights) for b in liked]) if liked else {}
    if disliked:
        for t, w in mean([tfidf(b, weights) for b in disliked]).items():
            taste[t] = taste.get(t, 0.0) - DISLIKE_WEIGHT * w
    return taste


UNVOTED = 200
"""Candidates sampled as the background (label 0) the up-votes are told apart from."""
EPOCHS = 4
DOWN_VOTE = 5.0
"""A down-vote's weight as a negative example, against 1 for a sampled unvoted candidate."""


def logistic(
    candidates: Sequence[Bag], liked: Sequence[Bag], disliked: Sequence[Bag]
) -> list[float]:
    """Logistic regression on TF-IDF by `EPOCHS` of SGD, each class weighing the same in
    total: up-votes 1; down-votes and `UNVOTED` candidates (a fixed draw) 0. Scores are the
    linear part, w·x."""
    xs, model = fit(candidates, liked, disliked)
    return [dot(x, model) for x in xs]


def fit(
    candidates: Sequence[Bag], liked: Sequence[Bag], disliked: Sequence[Bag]
) -> tuple[list[Vector], Vector]:
    """Each candidate's TF-IDF vector and the weights that score it (w·x): `logistic`'s,
    or `rocchio`'s taste without up-votes."""
    weights = idf([*candidates, *liked, *disliked])
    xs = [tfidf(b, weights) for b in candidates]
    if not liked:
        return xs, _centroids(weights, liked, disliked)
    rng = random.Random(0)
    unvoted = rng.sample(xs, min(len(xs), UNVOTED))
    down = [tfidf(b, weights) for b in disliked]
    negative_mass = len(unvoted) + DOWN_VOTE * len(down)
    examples = [(tfidf(b, weights), 1.0, 1.0 / len(liked)) for b in liked]
    examples += [(x, 0.0, DOWN_VOTE / negative_mass) for x in down]
    examples += [(x, 0.0, 1.0 / negative_mass) for x in unvoted]
    return xs, _sgd(examples, rng)


def raised_by(x: Vector, model: Vector, n: int) -> tuple[str, ...]:
    """The (at most) `n` terms that added most to a paper's score, largest first; only
    terms that raised it."""
    parts = sorted(((w * model.get(t, 0.0), t) for t, w in x.items()), reverse=True)
    return tuple(t for contribution, t in parts[:n] if contribution > 0)


def _sgd(examples: list[tuple[Vector, float, float]], rng: random.Random) -> Vector:
    """Weights of a logistic regression on (x, label, weight) examples; the learning rate
    falls as 1/epoch, the mean example weight is 1."""
    w: Vector = {}
    bias = 0.0
    scale = len(examples) / 2
    for epoch in range(EPOCHS):
        rng.shuffle(examples)
        rate = scale / (1 + epoch)
        for x, label, weight in examples:
            z = max(-30.0, min(30.0, bias + dot(x, w)))
            step = rate * weight * (label - 1.0 / (1.0 + math.exp(-z)))
            for t, v in x.items():
                w[t] = w.get(t, 0.0) + step * v
            bias += step
    return w


@functools.lru_cache(maxsize=8192)
def _text_bag(text: str) -> Bag:
    """`bag`, once per text in a process: a digest ranks the same papers (and a channel's
    same votes) for many channels. Shared: nothing may change a cached bag."""
    return bag(text)


def scores(papers: Sequence[Paper], taste: Taste) -> list[float]:
    """Predicted relevance of each paper to `taste`, in the order given (higher is better)."""
    return logistic(
        [_text_bag(paper_text(p)) for p in papers],
        [_text_bag(t) for t in taste.liked],
        [_text_bag(t) for t in taste.disliked],
    )


def rank_explained(
    papers: Sequence[Paper], taste: Taste, terms: int
) -> list[tuple[Paper, tuple[str, ...]]]:
    """`rank`, each paper with the `terms` terms (stems, `cat:` features) that raised it
    most (`raised_by`). An empty taste returns the papers as given, raised by nothing."""
    if taste.empty:
        return [(p, ()) for p in papers]
    xs, model = fit(
        [_text_bag(paper_text(p)) for p in papers],
        [_text_bag(t) for t in taste.liked],
        [_text_bag(t) for t in taste.disliked],
    )
    relevance = [dot(x, model) for x in xs]
    order = sorted(range(len(papers)), key=lambda i: -relevance[i])
    return [(papers[i], raised_by(xs[i], model, terms)) for i in order]


def rank(papers: Sequence[Paper], taste: Taste) -> list[Paper]:
    """`papers` by predicted relevance, best first; ties keep the given order (newest first
    from the digest). An empty taste returns the papers as given.

    CPU-bound pure Python, half or more of it tokenizing, and growing with the candidates and
    the votes (BENCHMARKS.md, figure R): call it through `asyncio.to_thread`, not on the
    event loop."""
    if taste.empty:
        return list(papers)
    relevance = scores(papers, taste)
    order = sorted(range(len(papers)), key=lambda i: -relevance[i])
    return [papers[i] for i in order]
