"""Matching stems words as arXiv's search does, checked against real text: the shared
seed (arXiv's own answers for two keywords) and the vocabulary of every corpus capture,
compared with an independent Porter implementation (NLTK's, which the fake arXiv uses)."""

from __future__ import annotations

import re

import pytest
from nltk.stem.porter import PorterStemmer

from bot.keywords import normalize, tokens
from bot.listing import parse as parse_listing
from bot.matching import assign, matches
from tests.conftest import CORPUS
from tests.factories import paper
from tests.fakes.arxiv_server import listing_from_rss, parse_query
from tests.seed import seed_sections

ONLY_MODELING = {"2504.14439", "2504.13630", "2504.13941"}
"""Rows under "Reward Model" whose title and abstract say only "reward modeling"."""


def test_every_seed_row_answers_its_keyword() -> None:
    sections = seed_sections()
    assert sorted((k, len(v)) for k, v in sections.items()) == [
        ("Reasoning", 20),
        ("Reward Model", 20),
    ]
    for keyword, papers in sections.items():
        assert [p.id for p in papers if not matches(p, keyword)] == []


def test_the_rows_that_say_only_reward_modeling_are_the_ones_plural_folding_missed() -> None:
    rows = {p.id: p for p in seed_sections()["Reward Model"]}
    for pid in ONLY_MODELING:
        text = f"{rows[pid].title} {rows[pid].summary}".lower()
        assert "reward modeling" in text
        assert "reward model " not in text and "reward models" not in text
        assert matches(rows[pid], "reward model")


def test_batched_assignment_finds_all_forty_seed_rows() -> None:
    sections = seed_sections()
    everything = [p for papers in sections.values() for p in papers]
    found = assign(everything, list(sections))
    for keyword, papers in sections.items():
        assert {p.id for p in papers} <= {p.id for p in found[keyword]}


def _corpus_words() -> list[str]:
    files = sorted(CORPUS.glob("*.xml")) if CORPUS.is_dir() else []
    if not files:
        pytest.skip(f"the shared corpus is absent: {CORPUS}")
    words: set[str] = set()
    for path in files:
        words.update(re.findall(r"[^\W_]+", path.read_text(encoding="utf-8").casefold()))
    return sorted(words)


def test_stems_agree_with_nltk_porter_on_every_corpus_word() -> None:
    nltk_porter = PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM)
    words = _corpus_words()
    assert len(words) > 10_000
    assert [w for w in words if tokens(w) != [nltk_porter.stem(w)]] == []


@pytest.mark.parametrize(
    ("text", "keyword", "expected"),
    [
        ("Reward modeling at scale", "reward model", True),
        ("We study reward-modelling", "reward model", True),  # British spelling too
        ("The model's reward", "model reward", True),  # possessive folded
        ("Rewarding models", "reward model", True),  # Porter: rewarding -> reward
        ("Modeled rewards", "reward model", False),  # order kept
        ("Reasoners and reasoning", "reasoning", True),
        ("Generalization bounds", "generalize", True),
    ],
)
def test_phrase_matching_stems_both_sides(text: str, keyword: str, expected: bool) -> None:
    assert matches(paper(1, title=text), keyword) is expected


def test_spellings_that_arxiv_searches_alike_are_one_subscription() -> None:
    assert normalize("Reward Modeling") == normalize("reward models")
    assert normalize("reward model") != normalize("reward")


PHRASES = [
    "reward model",
    "language models",
    "large language model",
    "reinforcement learning",
    "diffusion models",
    "graph neural network",
    "neural networks",
    "transformer",
    "image segmentation",
    "federated learning",
    "black hole",
    "dark matter",
    "quantum computing",
    "superconductivity",
    "generalization",
    "attention mechanism",
    "optimization",
    "chain-of-thought",
    "fine-tuning",
    "benchmarking",
    "retrieval augmented generation",
    "computational complexity",
    "machine learning",
    "simulations",
    "robotic manipulation",
]


def test_assignment_agrees_with_the_fake_arxivs_porter_on_a_real_day() -> None:
    """1,504 real papers of one day, matched by the bot (PyStemmer) and by the fake arXiv's
    query evaluation (NLTK's Porter, its own tokenizer): the same papers per keyword."""
    path = CORPUS / "arxiv_rss_2024-11-28_all_archives_1504_items_LARGE.xml"
    if not path.is_file():
        pytest.skip(f"the shared corpus is absent: {path}")
    listed = listing_from_rss(path.read_bytes())
    fakes = {p.id: p for p, _ in listed.items}
    papers = [item.paper for item in parse_listing(path.read_bytes()).items]
    found = assign(papers, PHRASES)
    for phrase in PHRASES:
        query = parse_query(f'ti:"{phrase}" OR abs:"{phrase}"')
        expected = {pid for pid, p in fakes.items() if query.matches(p)}
        assert {p.id for p in found[phrase]} == expected, phrase
    assert sum(len(v) for v in found.values()) > 1000
