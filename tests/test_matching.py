from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.matching import assign, batches, build_query, distinct, in_categories, matches
from tests.factories import paper
from tests.seed import seed_sections


def test_query_searches_each_keyword_as_a_phrase_in_title_or_abstract() -> None:
    assert build_query(["reward model"]) == '(ti:"reward model" OR abs:"reward model")'


def test_query_batches_keywords_with_or_and_adds_categories_and_window() -> None:
    window = (datetime(2026, 11, 16, 8, 0, tzinfo=UTC), datetime(2026, 11, 23, 8, 30, tzinfo=UTC))
    query = build_query(["a b", "c"], categories=["cs.CL", "cs.LG"], window=window)
    assert query == (
        '((ti:"a b" OR abs:"a b") OR (ti:"c" OR abs:"c")) AND (cat:cs.CL OR cat:cs.LG) '
        "AND submittedDate:[202611160800 TO 202611230830]"
    )


def test_query_needs_a_keyword() -> None:
    with pytest.raises(ValueError):
        build_query([])


def test_batches_split_in_order() -> None:
    assert batches(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]


@pytest.mark.parametrize(
    ("paper_id", "keyword", "expected"),
    [
        ("2504.15843", "reward model", True),  # "without an explicit reward model"
        ("2504.14439", "reward model", True),  # only "Low-Rank Reward Modeling"
        ("2504.16073", "process reward", True),
        ("2504.16073", "reward process", False),  # the words, not in that order
        ("2504.16073", "reward shaping", False),
        ("2504.15466", "chain-of-thought", True),
        ("2504.15275", "fine tuning", True),  # "fine-tuning"
        ("2504.13630", "gpt-4", True),
        ("2504.15903", "gpt-4", False),  # only "GPT-4o": another word
        ("2504.14838", "reward model", True),
        ("2504.14838", "reward models -reliability", False),
    ],
)
def test_matches_phrase_in_title_or_abstract_of_real_papers(
    paper_id: str, keyword: str, expected: bool
) -> None:
    rows = {p.id: p for papers in seed_sections().values() for p in papers}
    assert matches(rows[paper_id], keyword) is expected


def test_assign_lists_a_paper_under_every_keyword_and_keeps_the_newest_version() -> None:
    v1 = paper(1, title="Reward model for diffusion", version=1)
    v2 = paper(1, title="Reward model for diffusion", version=2)
    other = paper(2, title="Diffusion only")
    result = assign([v1, other, v2], ["reward model", "diffusion", "unmatched"])
    assert result["reward model"] == [v2]
    assert result["diffusion"] == [v2, other]
    assert result["unmatched"] == []


def test_categories_filter_exact_and_archive_prefix() -> None:
    p = paper(1, categories=("cs.CL", "stat.ML"))
    assert in_categories(p, [])
    assert in_categories(p, ["stat.ML"])
    assert in_categories(p, ["cs"])
    assert not in_categories(p, ["cs.LG", "math"])


def test_distinct_keeps_first_spelling() -> None:
    assert distinct(["Reward Models", "reward model", "x"]) == ["Reward Models", "x"]


_WORDS = ["reward", "models", "model", "diffusion", "graph", "neural", "policy", "x"]
_text = st.lists(st.sampled_from(_WORDS), max_size=8).map(" ".join)
_phrase = st.lists(st.sampled_from(_WORDS[:-1]), min_size=1, max_size=3).map(" ".join)
_keyword = st.one_of(
    _phrase,
    st.tuples(_phrase, _phrase).map(" | ".join),
    st.tuples(_phrase, st.sampled_from(_WORDS[:-1])).map(lambda t: f"{t[0]} -{t[1]}"),
    st.sampled_from(["cat:cs.CL", "cat:cs", "au:Ada", "au:Ada neural", "cat:stat.ML graph"]),
)


@given(
    texts=st.lists(st.tuples(_text, _text), min_size=1, max_size=6),
    keywords=st.lists(_keyword, min_size=1, max_size=6, unique=True),
)
def test_assign_answers_as_matching_each_pair_would(
    texts: list[tuple[str, str]], keywords: list[str]
) -> None:
    papers = [
        paper(n, title=title or "x", summary=summary or "x", categories=("cs.CL", "stat.ML"))
        for n, (title, summary) in enumerate(texts, start=1)
    ]
    expected = {k: [p for p in papers if matches(p, k)] for k in keywords}
    assert assign(papers, keywords) == expected
