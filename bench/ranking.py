"""Figure R: ranking a channel's candidates by its votes (issue #14), quality and cost.

Quality, on real text: the 1,504 papers arXiv announced on 2024-11-28 (all archives, the
shared corpus's RSS capture, parsed with `bot.listing`). A channel follows `cat:cs`: its
candidates are the day's 722 papers in a cs category. Its hidden taste is a narrower
subject, either a phrase (the papers `bot.matching` finds for it) or a category. The
channel has voted up k of the taste's papers (k = 1, 3, 10, 30, drawn with fixed seeds);
the other candidates are ranked, and ROC AUC and precision at 10 are compared with random
order's expected values (0.5, and the share of relevant papers among those ranked). A
second setting adds down-votes: the k irrelevant papers the up-votes alone rank highest (the
ones the channel would have seen first and marked "less like this"), which then leave the
ranked set (so with and without compare on the same papers). A third trains on other
papers altogether: the shared seed's 20 "Reasoning" and 20 "Reward Model" rows (arXiv's
answers of 2025-04-24, no categories) as the up-votes, the same 2024 day as the candidates,
relevant = the day's papers matching `reasoning` and `reward`.

Cost: `bot.ranking.rank` end to end (tokenizing included) for 50 and 1,504 candidates with
10, 100 and 500 up-voted texts: least CPU time of 5 runs and tracemalloc's peak, against
the same with the Rocchio model and tokenizing alone.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bench.common import CORPUS, ROOT, Row, ratio, say
from bot import listing, ranking
from bot.matching import matches
from bot.models import Paper
from bot.ranking import Bag, Taste, Vector, bag, dot, idf, paper_text, tfidf
from tests.seed import papers_from_seed

RSS = CORPUS / "arxiv_rss_2024-11-28_all_archives_1504_items_LARGE.xml"
SEEDS = ROOT.parent / "shared" / "seeds"

PHRASE_TASTES = (
    "large language model",
    "diffusion",
    "robot",
    "reasoning",
    "reinforcement learning",
    "graph neural network",
    "adversarial",
)
CATEGORY_TASTES = ("cs.CV", "cs.CL", "cs.RO", "cs.CR", "eess", "math")
TASTES = (*PHRASE_TASTES, *CATEGORY_TASTES)
SEED_TASTES = {"Reasoning": "reasoning", "Reward Model": "reward"}
"""Seed section -> the phrase whose matches on the RSS day count as relevant."""
KS = (1, 3, 10, 30)
DOWN_K = 10
SEED_KS = (3, 10, 20)
RUNS = 3
"""Random draws of the up-voted papers per taste and k (seeds 0 .. RUNS-1)."""
MIN_HELD_OUT = 10
"""A taste is measured at k only if at least this many of its papers remain to be found."""

LIKED = (10, 100, 500)
"""Up-voted texts in the cost rows."""
TIMED_RUNS = 5

Model = Callable[[Sequence[Bag], Sequence[Bag], Sequence[Bag]], list[float]]


# -- the candidate models (the shipped one is `bot.ranking.logistic`) ------------------


def nearest(
    candidates: Sequence[Bag], liked: Sequence[Bag], disliked: Sequence[Bag]
) -> list[float]:
    """k nearest neighbours: mean cosine to the 3 most similar up-votes, minus half that to
    the 3 most similar down-votes."""
    weights = idf([*candidates, *liked, *disliked])
    up = [tfidf(b, weights) for b in liked]
    down = [tfidf(b, weights) for b in disliked]

    def near(v: Vector, votes: list[Vector]) -> float:
        if not votes:
            return 0.0
        sims = sorted((dot(v, u) for u in votes), reverse=True)[:3]
        return sum(sims) / len(sims)

    out = []
    for b in candidates:
        v = tfidf(b, weights)
        out.append(near(v, up) - 0.5 * near(v, down))
    return out


def naive_bayes(
    candidates: Sequence[Bag], liked: Sequence[Bag], disliked: Sequence[Bag]
) -> list[float]:
    """Multinomial naive Bayes, up-votes against the candidate pool (and down-votes) as
    background: each candidate's mean log-likelihood ratio per term (additive smoothing)."""
    alpha = 0.1
    up, background = Bag(), Bag()
    for b in liked:
        up.update(b)
    for b in [*candidates, *disliked, *disliked]:
        background.update(b)
    vocabulary = len(up.keys() | background.keys())
    up_total = sum(up.values()) + alpha * vocabulary
    bg_total = sum(background.values()) + alpha * vocabulary
    out = []
    for b in candidates:
        total = sum(b.values()) or 1
        llr = sum(
            n
            * (math.log((up[t] + alpha) / up_total) - math.log((background[t] + alpha) / bg_total))
            for t, n in b.items()
        )
        out.append(llr / total)
    return out


SHIPPED = "logistic regression (SGD on TF-IDF), shipped"
MODELS: dict[str, Model] = {
    SHIPPED: ranking.logistic,
    "Rocchio (TF-IDF centroid, cosine)": ranking.rocchio,
    "nearest up-votes (mean of top-3 cosine)": nearest,
    "naive Bayes (up-votes vs the day)": naive_bayes,
}


# -- the protocol ----------------------------------------------------------------------


def auc(scores: Sequence[float], relevant: Sequence[bool]) -> float:
    """ROC AUC (Mann-Whitney): the chance a relevant paper outscores an irrelevant one,
    ties counted half."""
    ranked = sorted(zip(scores, relevant, strict=True), key=lambda pair: pair[0])
    rank_sum, positives, i = 0.0, 0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        hits = sum(1 for _, r in ranked[i:j] if r)
        rank_sum += hits * (i + j + 1) / 2
        positives += hits
        i = j
    negatives = len(ranked) - positives
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def precision_at(n: int, scores: Sequence[float], relevant: Sequence[bool]) -> float:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:n]
    return sum(relevant[i] for i in order) / n


@dataclass(frozen=True, slots=True)
class Trial:
    """One draw: the candidates to rank, which are relevant, and the votes."""

    candidates: list[Bag]
    relevant: list[bool]
    liked: list[Bag]
    disliked: list[Bag]


@dataclass(slots=True)
class Tally:
    auc: list[float]
    p10: list[float]
    random_p10: list[float]

    def add(self, model: Model, trial: Trial) -> None:
        s = model(trial.candidates, trial.liked, trial.disliked)
        self.auc.append(auc(s, trial.relevant))
        self.p10.append(precision_at(10, s, trial.relevant))
        self.random_p10.append(sum(trial.relevant) / len(trial.relevant))


def in_taste(paper: Paper, taste: str) -> bool:
    if taste in CATEGORY_TASTES:
        return any(c == taste or c.startswith(taste + ".") for c in paper.categories)
    return matches(paper, taste)


@dataclass(frozen=True, slots=True)
class Day:
    """The RSS day's papers, its cs papers (the candidates) with their bags (with and
    without the category line), and which of them each taste holds."""

    papers: list[Paper]
    pool: list[Paper]
    bags: dict[str, Bag]
    words: dict[str, Bag]
    tastes: dict[str, set[str]]

    @classmethod
    def read(cls) -> Day:
        papers = [a.paper for a in listing.parse(RSS.read_bytes()).items]
        pool = [p for p in papers if any(c.startswith("cs.") for c in p.categories)]
        bare = [replace(p, categories=(), primary_category="") for p in pool]
        return cls(
            papers=papers,
            pool=pool,
            bags={p.id: bag(paper_text(p)) for p in pool},
            words={p.id: bag(paper_text(p)) for p in bare},
            tastes={t: {p.id for p in pool if in_taste(p, t)} for t in TASTES},
        )

    def trials(self, k: int, *, words_only: bool = False) -> dict[str, list[Trial]]:
        """Taste -> `RUNS` draws of k up-votes, for every taste with enough papers at k."""
        bags = self.words if words_only else self.bags
        out: dict[str, list[Trial]] = {}
        for taste, wanted in self.tastes.items():
            if len(wanted) < k + MIN_HELD_OUT:
                continue
            out[taste] = []
            for run in range(RUNS):
                voted = set(random.Random(f"{taste}/{k}/{run}").sample(sorted(wanted), k))
                rest = [p for p in self.pool if p.id not in voted]
                out[taste].append(
                    Trial(
                        candidates=[bags[p.id] for p in rest],
                        relevant=[p.id in wanted for p in rest],
                        liked=[bags[i] for i in sorted(voted)],
                        disliked=[],
                    )
                )
        return out


def flat(trials: dict[str, list[Trial]]) -> list[Trial]:
    return [trial for draws in trials.values() for trial in draws]


def with_down_votes(trial: Trial, model: Model, k: int) -> tuple[Trial, Trial]:
    """The same trial without and with down-votes on the k irrelevant candidates `model`
    ranks highest from the up-votes alone; both without those k papers."""
    s = model(trial.candidates, trial.liked, [])
    top = sorted((i for i, r in enumerate(trial.relevant) if not r), key=lambda i: -s[i])[:k]
    gone = set(top)
    keep = [i for i in range(len(trial.candidates)) if i not in gone]
    base = Trial(
        candidates=[trial.candidates[i] for i in keep],
        relevant=[trial.relevant[i] for i in keep],
        liked=trial.liked,
        disliked=[],
    )
    return base, replace(base, disliked=[trial.candidates[i] for i in top])


def seed_trials(day: Day, sections: dict[str, list[Paper]], k: int) -> list[Trial]:
    """Up-votes drawn from a seed section (all its rows when k is their number), the whole
    cs day ranked."""
    trials = []
    candidates = [day.bags[p.id] for p in day.pool]
    for section, phrase in SEED_TASTES.items():
        rows = sections[section]
        relevant = [matches(p, phrase) for p in day.pool]
        for run in range(RUNS if k < len(rows) else 1):
            voted = random.Random(f"{section}/{k}/{run}").sample(rows, k)
            liked = [bag(paper_text(p)) for p in voted]
            trials.append(Trial(candidates, relevant, liked, disliked=[]))
    return trials


def mean_of(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.3f}" if values else "—"


def evaluate(model: Model, trials: Sequence[Trial]) -> Tally:
    tally = Tally([], [], [])
    for trial in trials:
        tally.add(model, trial)
    return tally


def joined(values: Sequence[object]) -> str:
    return " / ".join(str(v) for v in values)


def per_k(tallies: Sequence[Tally]) -> str:
    """`AUC at each k; P@10 at each k`."""
    return (
        f"{joined([mean_of(t.auc) for t in tallies])}; {joined([mean_of(t.p10) for t in tallies])}"
    )


def up_vote_rows(day: Day) -> list[Row]:
    """Each model at each k, and the shipped model on words alone (no category line)."""
    variants = [(name, model, False) for name, model in MODELS.items()]
    variants.append((f"{SHIPPED}, words only (no categories)", ranking.logistic, True))
    results: dict[str, list[Tally]] = {name: [] for name, _, _ in variants}
    tastes = []
    for k in KS:
        for name, model, words_only in variants:
            trials = day.trials(k, words_only=words_only)
            results[name].append(evaluate(model, flat(trials)))
            say(f"  ranking: k={k} {name}: AUC {mean_of(results[name][-1].auc)}")
        tastes.append(len(trials))
    random_p10 = joined([mean_of(t.random_p10) for t in results[SHIPPED]])
    return [
        Row(
            "R",
            f"{name}: cs day ({len(day.pool)} candidates), k = {joined(KS)} up-votes "
            f"({joined(tastes)} tastes × {RUNS} draws): AUC; P@10",
            per_k(tallies),
            f"random order: 0.500; {random_p10}",
        )
        for name, tallies in results.items()
    ]


def down_vote_rows(day: Day) -> list[Row]:
    trials = flat(day.trials(DOWN_K))
    rows = []
    for name, model in MODELS.items():
        pairs = [with_down_votes(trial, model, DOWN_K) for trial in trials]
        without = evaluate(model, [a for a, _ in pairs])
        with_down = evaluate(model, [b for _, b in pairs])
        say(f"  ranking: down-votes, {name}: AUC {mean_of(with_down.auc)}")
        rows.append(
            Row(
                "R",
                f"{name}: {DOWN_K} up-votes and {DOWN_K} down-votes (the irrelevant papers "
                "the up-votes rank highest), cs day: AUC; P@10",
                f"{mean_of(with_down.auc)}; {mean_of(with_down.p10)}",
                f"up-votes only: {mean_of(without.auc)}; {mean_of(without.p10)} (random: "
                f"0.500; {mean_of(without.random_p10)})",
            )
        )
    return rows


def seed_rows(day: Day) -> list[Row]:
    seeds = sorted(SEEDS.glob("*.txt"))
    if not seeds:
        return [Row("R", "up-votes from the seed", f"not measured: no seed in {SEEDS}")]
    sections = papers_from_seed(seeds[0].read_text(encoding="utf-8"))
    rows = []
    for name, model in MODELS.items():
        tallies = [evaluate(model, seed_trials(day, sections, k)) for k in SEED_KS]
        say(f"  ranking: seed, {name}: AUC {mean_of(tallies[-1].auc)}")
        rows.append(
            Row(
                "R",
                f"{name}: k = {joined(SEED_KS)} up-votes from the seed's 20 'Reasoning' or "
                "'Reward Model' rows (2025), ranking the 2024 cs day for `reasoning` or "
                "`reward`: AUC; P@10",
                per_k(tallies),
                f"random order: 0.500; {mean_of(tallies[0].random_p10)}",
            )
        )
    return rows


def rocchio_rank(papers: Sequence[Paper], taste: Taste) -> list[Paper]:
    """`bot.ranking.rank` with the Rocchio model instead: the cost baseline."""
    relevance = ranking.rocchio(
        [bag(paper_text(p)) for p in papers],
        [bag(t) for t in taste.liked],
        [bag(t) for t in taste.disliked],
    )
    return [papers[i] for i in sorted(range(len(papers)), key=lambda i: -relevance[i])]


def tokenize_only(papers: Sequence[Paper], taste: Taste) -> list[Bag]:
    return [*(bag(paper_text(p)) for p in papers), *(bag(t) for t in taste.liked)]


Ranker = Callable[[Sequence[Paper], Taste], object]


def costs(
    rankers: Sequence[Ranker], papers: Sequence[Paper], taste: Taste
) -> list[tuple[float, float]]:
    """Per ranker: the least CPU time (s) of `TIMED_RUNS` rounds (CPU, not wall: the machine
    is shared; the call is single-threaded), the rankers interleaved in each round, and the
    peak of traced memory (MB) in one more call."""
    best = [math.inf] * len(rankers)
    for _ in range(TIMED_RUNS):
        for i, rank in enumerate(rankers):
            started = time.process_time()
            rank(papers, taste)
            best[i] = min(best[i], time.process_time() - started)
    peaks = []
    for rank in rankers:
        tracemalloc.start()
        rank(papers, taste)
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    return list(zip(best, peaks, strict=True))


def shown(measured: Sequence[tuple[float, float]]) -> str:
    walls = joined([f"{s * 1000:.0f}" for s, _ in measured])
    return f"{walls} ms; {joined([f'{m:.1f}' for _, m in measured])} MB"


RANKERS: tuple[Ranker, ...] = (ranking.rank, rocchio_rank, tokenize_only)


def cost_rows(papers: list[Paper]) -> list[Row]:
    texts = [paper_text(p) for p in papers]
    tastes = [Taste(liked=tuple(texts[-n:])) for n in LIKED]
    rows = []
    for n in (50, len(papers)):
        measured = [costs(RANKERS, papers[:n], taste) for taste in tastes]
        shipped, baseline, tokenizing = ([m[i] for m in measured] for i in range(3))
        say(f"  ranking: {n} candidates, {joined(LIKED)} liked: {shown(shipped)}")
        rows.append(
            Row(
                "R",
                f"`rank`, {n:,} candidates, {joined(LIKED)} liked texts: CPU time (best "
                f"of {TIMED_RUNS}); peak traced memory",
                shown(shipped),
                f"Rocchio: {shown(baseline)}; tokenizing alone: {shown(tokenizing)}",
                f"{joined([ratio(s, b) for (s, _), (b, _) in zip(shipped, baseline, strict=True)])}"
                " (CPU, vs Rocchio)",
            )
        )
    return rows


def run() -> list[Row]:
    if not RSS.is_file():
        say(f"  ranking: corpus file absent ({RSS}); skipped")
        return [Row("R", "ranking by votes", f"not measured: {RSS} is absent")]
    day = Day.read()
    say(f"  ranking: {len(day.papers)} papers, {len(day.pool)} in cs")
    return [*up_vote_rows(day), *down_vote_rows(day), *seed_rows(day), *cost_rows(day.papers)]


if __name__ == "__main__":
    from bench.common import table

    print(table(run()))
