"""The subscription syntax: a table of accepted and refused inputs, a property that no
input yields a malformed arXiv query, and local matching against the fake arXiv."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.keywords import KeywordError, clean, normalize, parse
from bot.matching import assign, build_query
from tests.fakes.arxiv_server import FakeArxiv, QuerySyntaxError, papers_from_feed, parse_query


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("reward model", "reward model"),
        ('"reward model"', "reward model"),
        ("RLHF | reward model", "RLHF | reward model"),
        ("RLHF|reward model", "RLHF | reward model"),
        ('diffusion -medical -"image segmentation"', 'diffusion -medical -"image segmentation"'),
        ("cat:cs.CL", "cat:cs.CL"),
        ("cat:cs", "cat:cs"),
        ("cat:cs.*", "cat:cs"),
        ("cat:quant-ph entanglement", "entanglement cat:quant-ph"),
        ('au:"Yoshua Bengio"', 'au:"Yoshua Bengio"'),
        ("au:Bengio deep learning", "deep learning au:Bengio"),
        ("transformers cat:cs.CL cat:cs.LG", "transformers cat:cs.CL cat:cs.LG"),
        ("text-to-speech -music", "text-to-speech -music"),
    ],
)
def test_accepted_and_shown_back_normalized(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    assert clean(shown) == shown


@pytest.mark.parametrize(
    ("raw", "points_at"),
    [
        ('"reward model', "quote is not closed"),
        ("(a | b)", "parentheses"),
        ("a OR b", "use | for either"),
        ("a AND b", "operators"),
        ("diffusion ANDNOT medical", "operators"),
        ("-medical", "not only what to exclude"),
        ("a | | b", "| needs a phrase on each side"),
        ("| a", "| needs a phrase on each side"),
        ("cat:cs.XYZ", "not an arXiv category"),
        ("cat:cs.cl", "Did you mean cat:cs.CL"),
        ("cat:", "Nothing follows cat:"),
        ("-cat:cs.CL x", "Excluding a category"),
        ("ti:foo", "only cat: .category. and au: .author."),
        ("abs:foo", "only cat:"),
        ("a <!channel>", "letters, digits"),
        ("x" * 101, "at most 100"),
    ],
)
def test_refused_with_a_message_that_points_at_the_problem(raw: str, points_at: str) -> None:
    with pytest.raises(KeywordError, match=points_at):
        parse(raw)


def test_identity_ignores_case_order_and_plurals() -> None:
    assert normalize("Reward Models | RLHF") == normalize("rlhf | reward model")
    assert normalize("diffusion -medical cat:cs.CV") == normalize("cat:cs.CV diffusion -Medical")
    assert normalize("diffusion") != normalize("diffusion -medical")


_TOKENS = ["AND", "OR", "ANDNOT", "cat:", "au:", "cat:cs.CL", "ti:", "é", "🙂", "<!channel>"]
_ALPHABET = st.sampled_from(
    [*"abcXYZ019 -|\"'():.*+/&,_@<>!#\\\t\u200b\u202e", *_TOKENS, "@everyone", "<@&123>"]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ALPHABET, max_size=25).map("".join) | st.text(max_size=120))
def test_no_input_yields_a_malformed_query(raw: str) -> None:
    try:
        keyword = clean(raw)
    except KeywordError as err:
        assert str(err) and "\n" not in str(err)
        return
    parse_query(build_query([keyword]))  # the fake arXiv's own parser accepts it
    assert clean(keyword) == keyword
    assert not any(mark in keyword for mark in ("<", ">", "@", "(", ")", "\\"))


def test_the_fake_arxiv_parser_does_refuse_malformed_queries() -> None:
    with pytest.raises(QuerySyntaxError):
        parse_query('(ti:"a" OR')


SUBSCRIPTIONS = [
    "testing | software testing",
    "testing -software",
    'quantum -"quantum criticality"',
    "cat:cs.SE testing",
    "cat:cs",
    "cat:cond-mat.str-el",
    "au:Maestro",
    'au:"Adrian Del Maestro" quantum',
    "electron | neural",
    "deep learning cat:cs.LG",
]


async def test_local_assignment_agrees_with_arxiv_on_the_corpus(corpus: Path) -> None:
    feeds = sorted(corpus.glob("arxiv_api_*.xml"))  # noqa: ASYNC240
    papers = [p for f in feeds for p in papers_from_feed(f.read_bytes())]
    from bot.arxiv_source import ArxivSource
    from bot.settings import ArxivSettings

    with FakeArxiv(papers) as fake:
        source = ArxivSource(
            ArxivSettings(api_url=fake.url, rss_url=fake.rss_url, oai_url="", request_interval=0)
        )
        by_arxiv = {s: {p.id for p in await source.latest(s, 500)} for s in SUBSCRIPTIONS}
        batch = await source.search(build_query(SUBSCRIPTIONS), 2000, SUBSCRIPTIONS)
    local = assign(batch, SUBSCRIPTIONS)
    for subscription in SUBSCRIPTIONS:
        assert {p.id for p in local[subscription]} == by_arxiv[subscription], subscription
    assert all(by_arxiv.values()), {s: len(v) for s, v in by_arxiv.items()}


def test_every_category_in_a_full_day_of_arxiv_is_known(corpus: Path) -> None:
    import re

    from bot import categories

    text = (corpus / "arxiv_rss_2024-11-28_all_archives_1504_items_LARGE.xml").read_text()
    seen = set(re.findall(r"<category>([^<]+)</category>", text))
    assert len(seen) > 100
    assert seen <= categories.CATEGORIES | categories.ARCHIVES, seen - categories.CATEGORIES
