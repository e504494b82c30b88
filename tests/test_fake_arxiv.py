"""Tests for the fake arXiv API, driven through the real ``arxiv`` client, and for its daily
RSS listing, read over plain HTTP."""

from __future__ import annotations

import asyncio
import functools
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import arxiv
import pytest
import requests
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from tests.fakes.arxiv_server import (
    ATOM_CONTENT_TYPE,
    RSS_CONTENT_TYPE,
    FakeArxiv,
    FakeListing,
    FakePaper,
    QuerySyntaxError,
    closed_port_url,
    listing_from_rss,
    listing_to_rss,
    make_paper,
    papers_from_feed,
    parse_query,
    text_tokens,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CORPUS_FEEDS = sorted(CORPUS.glob("arxiv_api_*.xml")) if CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the shared corpus is absent: {CORPUS} (beside the checkout)"
)

ATOM = "{http://www.w3.org/2005/Atom}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


SAMPLE = [
    make_paper(
        1,
        title="Large Language Models for Code",
        summary="We fine-tune transformers on source code.",
        authors=["Ada Lovelace", "Alan Turing"],
        categories=["cs.CL", "cs.LG"],
        published=at("2026-01-10T12:00:00"),
    ),
    make_paper(
        2,
        title="The Language of Large Birds",
        summary="Ornithologists discuss whether a large language exists among crows.",
        authors=["Charles Darwin"],
        categories=["q-bio.PE"],
        published=at("2026-01-15T00:00:00"),
    ),
    make_paper(
        3,
        title="Quantum Error Correction in Glass Class Systems",
        summary="Surface codes & <friends> on noisy hardware.",
        authors=["Adrian Del Maestro"],
        categories=["quant-ph", "cs.IT"],
        published=at("2026-01-31T23:59:30"),
        comment="10 pages, 3 figures",
    ),
    make_paper(
        4,
        title="Graph Neural Networks",
        summary="Message passing for molecules.",
        authors=["Grace Hopper"],
        categories=["cs.LG", "stat.ML"],
        published=at("2026-02-01T00:00:00"),
        doi="10.1000/xyz123",
        journal_ref="J. Graphs 1 (2026) 1-10",
    ),
    FakePaper(
        id="astro-ph/0601001",
        title="Hot Jupiters",
        summary="Planets close to their stars.",
        authors=["Andrew Gould"],
        categories=["astro-ph"],
        published=at("2006-01-02T14:57:58"),
        updated=at("2006-01-02T14:57:58"),
    ),
]


def client_for(url: str, *, page_size: int = 100, num_retries: int = 0) -> arxiv.Client:
    client = arxiv.Client(page_size=page_size, delay_seconds=0, num_retries=num_retries)
    client.query_url_format = url + "?{}"
    return client


def with_timeout(client: arxiv.Client, seconds: float) -> arxiv.Client:
    client._session.get = functools.partial(client._session.get, timeout=seconds)  # type: ignore[method-assign, unused-ignore]
    return client


def fetch(
    fake: FakeArxiv,
    query: str = "",
    *,
    id_list: list[str] | None = None,
    sort_by: arxiv.SortCriterion = arxiv.SortCriterion.SubmittedDate,
    sort_order: arxiv.SortOrder = arxiv.SortOrder.Ascending,
    page_size: int = 100,
) -> list[str]:
    """Short ids (with version) of every result, in the order the client yields them."""
    search = arxiv.Search(
        query, id_list=id_list, max_results=None, sort_by=sort_by, sort_order=sort_order
    )
    client = client_for(fake.url, page_size=page_size)
    return [result.get_short_id() for result in client.results(search)]


def short(*numbers: int) -> list[str]:
    return [f"2611.{n:05d}v1" for n in numbers]


def timeless(feed: str) -> str:
    """A feed without its <updated> stamps (the only part that depends on the clock)."""
    return re.sub(r"<updated>[^<]*</updated>", "", feed)


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    with FakeArxiv(SAMPLE) as server:
        yield server
    assert server.errors == []


# -- query evaluation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('ti:"large language"', short(1)),  # "Language of Large" is not contiguous
        ('all:"large language"', short(1, 2)),  # the abstract of 2 has the phrase
        ('ti:"language model"', short(1)),  # Porter stemming ("Models" -> "model")
        ("ti:model", short(1)),
        ("ti:glass", short(3)),  # words ending in "ss" keep their "s"
        ("TI:QUANTUM", short(3)),  # case-insensitive
        ("au:turing", short(1)),
        ("au:del_maestro", short(3)),  # underscores separate words, like arXiv
        ('au:"lovelace alan"', []),  # a phrase never spans two authors
        ("abs:transformers", short(1)),
        ("abs:transformer", short(1)),
        ("abs:friends", short(3)),
        ("co:figures", short(3)),
        ("jr:graphs", short(4)),
        ("hopper", short(4)),  # bare term means all:
        ("all:stat", short(4)),  # all: includes categories
        ("all:figures", short(3)),  # and comments
    ],
)
def test_text_fields_and_phrases(fake: FakeArxiv, query: str, expected: list[str]) -> None:
    assert fetch(fake, query) == expected


# -- stemming like arXiv (Porter, original algorithm) --------------------------------------------

REWARD_PAPERS = [
    make_paper(11, title="Preference Learning at Scale", summary="We study reward modeling."),
    make_paper(12, title="Reward Modeling for Dialogue", summary="Human feedback."),
    make_paper(13, title="Feedback", summary="The reward modeled by the critic is sparse."),
    make_paper(14, title="Agents", summary="Rewarding models for honesty."),
    make_paper(15, title="Critics", summary="The model's accuracy is high; reward modality."),
]


def test_porter_tokens() -> None:
    assert text_tokens("Reward Modeling") == ("reward", "model")
    assert text_tokens("Reward Models") == ("reward", "model")
    assert text_tokens("modeled modelling modeler") == ("model", "model", "model")
    assert text_tokens("rewarding") == ("reward",)  # Porter strips -ing after a vowel
    assert text_tokens("modality") == ("modal",)  # ...but does not conflate modal/model
    # possessives fold away instead of leaving a lone "s"
    assert text_tokens("the model's and the model’s") == ("the", "model", "and", "the", "model")
    assert text_tokens("MODEL'S") == ("model",)
    assert text_tokens("models' outputs") == ("model", "output")
    assert text_tokens("glass classes") == ("glass", "class")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('abs:"reward model"', short(11, 13, 14)),  # modeling, modeled, "Rewarding models"
        ('abs:"reward modeling"', short(11, 13, 14)),  # the query is stemmed too
        ('ti:"Reward Models"', short(12)),  # title says only "Reward Modeling"
        ('ti:"reward modeled"', short(12)),
        ('all:"reward model"', short(11, 12, 13, 14)),
        ('abs:"model accuracy"', short(15)),  # "model's accuracy": the possessive folds
        ('abs:"reward modal"', short(15)),  # "modality" -> "modal", never "model"
        ("abs:rewarding", short(11, 13, 14, 15)),
        ('abs:"model s"', []),  # no lone "s" is left behind by "model's"
    ],
)
def test_stemmed_phrases_match_like_arxiv(query: str, expected: list[str]) -> None:
    with FakeArxiv(REWARD_PAPERS) as fake:
        assert fetch(fake, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ti:quantum OR ti:graph", short(3, 4)),
        ("cat:cs.LG ANDNOT ti:graph", short(1)),
        ("(ti:quantum OR ti:graph) AND cat:stat.ML", short(4)),
        ("ti:quantum OR ti:graph AND cat:stat.ML", short(3, 4)),  # AND binds tighter than OR
        ("all:large all:birds", short(2)),  # juxtaposition means AND
        ("ANDNOT cat:cs", ["astro-ph/0601001v1", *short(2)]),  # a leading ANDNOT negates
        ("ti:(quantum OR graph)", short(3, 4)),  # a field applies inside its group
        ('ti:("error correction" OR birds)', short(2, 3)),
    ],
)
def test_boolean_operators(fake: FakeArxiv, query: str, expected: list[str]) -> None:
    assert fetch(fake, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cat:cs.LG", short(1, 4)),
        ("cat:cs", short(1, 3, 4)),
        ("cat:cs.*", short(1, 3, 4)),
        ("cat:cs.L", []),
        ("cat:cs.lg", []),  # exact, so case-sensitive
        ("cat:astro-ph", ["astro-ph/0601001v1"]),
        ("cat:quant-ph", short(3)),
        ("cat:(stat.ML OR q-bio.PE)", short(2, 4)),
    ],
)
def test_categories(fake: FakeArxiv, query: str, expected: list[str]) -> None:
    assert fetch(fake, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # inclusive at minute resolution: 23:59:30 is inside "...2359"
        ("submittedDate:[202601150000 TO 202601312359]", short(2, 3)),
        ("submittedDate:[202601150001 TO 202602010000]", short(3, 4)),
        ("submittedDate:[* TO 202601100000]", ["astro-ph/0601001v1"]),
        ("cat:cs AND submittedDate:[202601010000 TO *]", short(1, 3, 4)),
    ],
)
def test_submitted_date_range(fake: FakeArxiv, query: str, expected: list[str]) -> None:
    assert fetch(fake, query) == expected


@pytest.mark.parametrize(
    "query",
    [
        'ti:"large language',
        "(ti:quantum OR ti:graph",
        "ti:quantum)",
        "ti:quantum AND",
        "ti:quantum OR",
        "AND ti:quantum",
        "ti:quantum AND OR ti:graph",
        "ti:",
        "ti: AND cat:cs",
        "()",
        'ti:""',
        "foo:bar",
        "submittedDate:202601010000",
        "submittedDate:[20260101 TO 202601312359]",
        "submittedDate:[202613010000 TO 202601312359]",
        "submittedDate:[202601010000 202601312359]",
        "ti:[202601010000 TO 202601312359]",
        "ti:a]",
    ],
)
def test_malformed_queries_are_rejected(query: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse_query(query)


def test_bad_query_gets_a_400_error_feed(fake: FakeArxiv) -> None:
    client = client_for(fake.url)
    with pytest.raises(arxiv.HTTPError) as caught:
        list(client.results(arxiv.Search('ti:"unclosed')))
    assert caught.value.status == 400

    response = requests.get(fake.url, params={"search_query": "ti:a AND"}, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == ATOM_CONTENT_TYPE
    entry = etree.fromstring(response.content).find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == "Error"
    assert entry.findtext(f"{ATOM}id").startswith("https://arxiv.org/api/errors#")
    assert papers_from_feed(response.content) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"id_list": "abc"}, "incorrect id format for abc"),
        ({"search_query": "all:x", "start": "x"}, "start must be an integer"),
        ({"search_query": "all:x", "max_results": "-1"}, "max_results must be non-negative"),
        ({"search_query": "all:x", "sortBy": "date"}, "sortBy must be in:"),
    ],
)
def test_bad_parameters_get_error_feeds(
    fake: FakeArxiv, params: dict[str, str], message: str
) -> None:
    response = requests.get(fake.url, params=params, timeout=5)
    assert response.status_code == 400
    assert message in response.text


# -- id_list, versions, sorting and paging ---------------------------------------------------------


def test_id_list_and_new_versions(fake: FakeArxiv) -> None:
    ids = ["2611.00004", "astro-ph/0601001", "2611.00001", "9999.99999"]
    relevance = arxiv.SortCriterion.Relevance
    # id_list order is kept for relevance; a missing id is just absent
    assert fetch(fake, id_list=ids, sort_by=relevance, sort_order=arxiv.SortOrder.Descending) == [
        "2611.00004v1",
        "astro-ph/0601001v1",
        "2611.00001v1",
    ]
    assert fetch(fake, "cat:cs", id_list=ids) == short(1, 4)

    fake.papers.append(SAMPLE[0].new_version(title="Large Language Models for Code, Revised"))
    assert fetch(fake, "ti:revised") == ["2611.00001v2"]
    assert fetch(fake, "cat:cs.CL") == ["2611.00001v2"]  # only the newest version is searched
    assert fetch(fake, id_list=["2611.00001"]) == ["2611.00001v2"]
    assert fetch(fake, id_list=["2611.00001v1"]) == ["2611.00001v1"]
    assert fetch(fake, id_list=["2611.00001v3"]) == []


def test_sort_orders(fake: FakeArxiv) -> None:
    fake.papers[:] = [
        make_paper(1, published=at("2026-01-03T00:00:00"), updated=at("2026-01-04T00:00:00")),
        make_paper(2, published=at("2026-01-01T00:00:00"), updated=at("2026-01-09T00:00:00")),
        make_paper(3, published=at("2026-01-02T00:00:00"), updated=at("2026-01-02T00:00:00")),
    ]
    by = arxiv.SortCriterion
    order = arxiv.SortOrder
    assert fetch(fake, "cat:cs.CL", sort_by=by.SubmittedDate) == short(2, 3, 1)
    descending = fetch(fake, "cat:cs.CL", sort_by=by.SubmittedDate, sort_order=order.Descending)
    assert descending == short(1, 3, 2)
    assert fetch(fake, "cat:cs.CL", sort_by=by.LastUpdatedDate) == short(3, 1, 2)
    relevance = fetch(fake, "cat:cs.CL", sort_by=by.Relevance, sort_order=order.Descending)
    assert relevance == short(1, 2, 3)  # list order


def test_paging_across_three_pages() -> None:
    papers = [make_paper(n) for n in range(25)]
    with FakeArxiv(papers) as fake:
        ids = fetch(fake, "cat:cs.CL", sort_order=arxiv.SortOrder.Descending, page_size=10)
        assert ids == short(*range(24, -1, -1))
        assert [record.start for record in fake.requests] == [0, 10, 20]
        assert {record.params["max_results"] for record in fake.requests} == {"10"}

        response = requests.get(
            fake.url, params={"search_query": "cat:cs.CL", "start": "20", "max_results": "10"}
        )
        root = etree.fromstring(response.content)
        opensearch = "{http://a9.com/-/spec/opensearch/1.1/}"
        assert root.findtext(f"{opensearch}totalResults") == "25"
        assert root.findtext(f"{opensearch}startIndex") == "20"
        assert root.findtext(f"{opensearch}itemsPerPage") == "10"
        assert len(root.findall(f"{ATOM}entry")) == 5


def test_result_fields_survive_the_client(fake: FakeArxiv) -> None:
    client = client_for(fake.url)
    (result,) = client.results(arxiv.Search(id_list=["2611.00004"]))
    assert result.entry_id == "http://arxiv.org/abs/2611.00004v1"
    assert result.title == "Graph Neural Networks"
    assert [author.name for author in result.authors] == ["Grace Hopper"]
    assert result.categories == ["cs.LG", "stat.ML"]
    assert result.primary_category == "cs.LG"
    assert result.published == at("2026-02-01T00:00:00")
    assert result.doi == "10.1000/xyz123"
    assert result.journal_ref == "J. Graphs 1 (2026) 1-10"
    assert result.comment is None
    assert result.pdf_url == "https://arxiv.org/pdf/2611.00004v1"
    (escaped,) = client.results(arxiv.Search(id_list=["2611.00003"]))
    assert escaped.summary == "Surface codes & <friends> on noisy hardware."


async def test_usable_from_asyncio_to_thread(fake: FakeArxiv) -> None:
    results = await asyncio.to_thread(fetch, fake, "cat:cs")
    assert results == short(1, 3, 4)


# -- the corpus of real captures ----------------------------------------------------------------


@needs_corpus
@pytest.mark.parametrize("path", CORPUS_FEEDS, ids=lambda path: path.name)
def test_every_corpus_feed_parses(path: Path) -> None:
    body = path.read_bytes()
    papers = papers_from_feed(body)
    entries = etree.fromstring(body).findall(f"{ATOM}entry")
    errors = [e for e in entries if e.findtext(f"{ATOM}title") == "Error"]
    assert len(papers) == len(entries) - len(errors)
    for paper in papers:
        assert paper.published.tzinfo is UTC
        assert paper.categories
        assert paper.authors


@needs_corpus
def test_corpus_entries_are_served_like_the_real_api() -> None:
    """An id_list capture and the fake's answer to the same request differ only in time."""
    for path in sorted(CORPUS.glob("arxiv_api_2026_*.xml")):
        captured = path.read_text(encoding="utf-8")
        title = re.search(r"<title>arXiv Query: search_query=&amp;id_list=([^&]+)&amp;", captured)
        if title is None:
            continue
        with FakeArxiv(papers_from_feed(captured.encode())) as fake:
            params = {"id_list": title.group(1), "max_results": "100"}
            served = requests.get(fake.url, params=params, timeout=5).text
        assert timeless(served) == timeless(captured), path.name


@needs_corpus
def test_corpus_error_feed_matches_the_fake() -> None:
    captured = (CORPUS / "arxiv_api_2026_error_feed_incorrect_id_format_http400.xml").read_text()
    with FakeArxiv() as fake:
        response = requests.get(fake.url, params={"id_list": "abc"}, timeout=5)
    assert response.status_code == 400
    assert timeless(response.text) == timeless(captured)


@needs_corpus
def test_raw_corpus_capture_round_trip() -> None:
    body = (CORPUS / "arxiv_api_2026_search_all_testing_10_entries_doi_unicode.xml").read_bytes()
    with FakeArxiv(papers_from_feed(body)) as fake:
        fake.raw_next(body)
        client = client_for(fake.url)
        search = arxiv.Search(id_list=[p.versioned_id for p in fake.papers])
        from_capture = list(client.results(arxiv.Search("x", max_results=10)))
        from_fake = list(client.results(search))
    assert len(from_capture) == 10

    def fields(result: arxiv.Result) -> tuple[object, ...]:
        return (
            result.entry_id,
            result.title,
            result.summary,
            [author.name for author in result.authors],
            result.categories,
            result.primary_category,
            result.comment,
            result.journal_ref,
            result.doi,
            result.published,
            result.updated,
            [(link.href, link.rel, link.title) for link in result.links],
        )

    assert [fields(r) for r in from_fake] == [fields(r) for r in from_capture]


# -- fault injection ---------------------------------------------------------------------------


def test_fail_next_raises_http_errors_in_order(fake: FakeArxiv) -> None:
    fake.fail_next(503)
    fake.fail_next(500)
    client = client_for(fake.url)
    for status in (503, 500):
        with pytest.raises(arxiv.HTTPError) as caught:
            list(client.results(arxiv.Search("cat:cs")))
        assert caught.value.status == status
    assert len(list(client.results(arxiv.Search("cat:cs")))) == 3


def test_fail_next_times_with_retries(fake: FakeArxiv) -> None:
    fake.fail_next(503, times=2)
    client = client_for(fake.url, num_retries=2)
    assert len(list(client.results(arxiv.Search("cat:cs")))) == 3
    assert len(fake.requests) == 3
    assert fake.pending_faults == 0


def test_fail_next_429_carries_headers(fake: FakeArxiv) -> None:
    fake.fail_next(429, headers={"Retry-After": "1"}, body=b"slow down")
    response = requests.get(fake.url, params={"search_query": "cat:cs"}, timeout=5)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.content == b"slow down"


def test_hang_next_times_out_a_client_with_a_timeout(fake: FakeArxiv) -> None:
    fake.hang_next()
    client = with_timeout(client_for(fake.url), 0.2)
    with pytest.raises(requests.exceptions.ReadTimeout):  # not retried by arxiv.Client
        list(client.results(arxiv.Search("cat:cs")))
    assert len(list(client.results(arxiv.Search("cat:cs")))) == 3


def test_stop_releases_a_hung_request_promptly() -> None:
    fake = FakeArxiv(SAMPLE).start()
    fake.hang_next()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            list(client_for(fake.url).results(arxiv.Search("cat:cs")))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 2
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.005)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert isinstance(outcome[0], requests.exceptions.ConnectionError)


def test_truncate_next_cuts_an_entry(fake: FakeArxiv) -> None:
    fake.truncate_next()
    response = requests.get(fake.url, params={"search_query": "cat:cs"}, timeout=5)
    assert response.status_code == 200
    assert response.text.count("<entry>") == 3
    assert "</feed>" not in response.text
    with pytest.raises(ValueError, match="not well-formed"):
        papers_from_feed(response.content)

    # arxiv.Client parses with lxml's recover=True, so the cut entry is silently dropped; the
    # page looks short against totalResults and the client asks again from start=2
    fake.clear_requests()
    fake.truncate_next()
    assert len(list(client_for(fake.url).results(arxiv.Search("cat:cs")))) == 3
    assert [record.start for record in fake.requests] == [0, 2]
    # a first page with no whole entry ends the search quietly
    fake.truncate_next(complete_entries=0)
    assert list(client_for(fake.url).results(arxiv.Search("cat:cs"))) == []


def test_malformed_next_serves_garbage(fake: FakeArxiv) -> None:
    fake.malformed_next()
    response = requests.get(fake.url, params={"search_query": "cat:cs"}, timeout=5)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        papers_from_feed(response.content)
    # ...which arxiv.Client turns into an empty result on the first page, without raising
    fake.malformed_next()
    assert list(client_for(fake.url).results(arxiv.Search("cat:cs"))) == []


def test_error_feed_next(fake: FakeArxiv) -> None:
    fake.error_feed_next()
    with pytest.raises(arxiv.HTTPError) as caught:
        list(client_for(fake.url).results(arxiv.Search("cat:cs")))
    assert caught.value.status == 400
    # legacy behaviour: status 200; the client drops the Error entry (it has no <published>)
    fake.error_feed_next(200, message="incorrect id format for 1234.12345")
    response = requests.get(fake.url, timeout=5)
    assert response.status_code == 200
    assert "errors#incorrect_id_format_for_1234.12345" in response.text
    fake.error_feed_next(200)
    assert list(client_for(fake.url).results(arxiv.Search("cat:cs"))) == []


def test_empty_page_next(fake: FakeArxiv) -> None:
    fake.papers[:] = [make_paper(n) for n in range(5)]
    fake.empty_page_next()
    assert list(client_for(fake.url, page_size=2).results(arxiv.Search("cat:cs"))) == []
    root = etree.fromstring(requests.get(fake.url, params={"search_query": "cat:cs"}).content)
    assert root.findtext("{http://a9.com/-/spec/opensearch/1.1/}totalResults") == "5"

    fake.clear_requests()
    results = client_for(fake.url, page_size=2).results(arxiv.Search("cat:cs"))
    assert next(results).get_short_id() == "2611.00000v1"  # relevance is list order
    fake.empty_page_next()
    next(results)
    with pytest.raises(arxiv.UnexpectedEmptyPageError):
        next(results)
    assert [record.start for record in fake.requests] == [0, 2]


@needs_corpus
def test_raw_next_serves_a_capture(fake: FakeArxiv) -> None:
    body = (CORPUS / "arxiv_api_2026_old_style_versioned_id_quant-ph_0201082v1.xml").read_bytes()
    fake.raw_next(body)
    (result,) = client_for(fake.url).results(arxiv.Search("anything"))
    assert result.get_short_id() == "quant-ph/0201082v1"


def test_raw_next_status_and_content_type(fake: FakeArxiv) -> None:
    fake.raw_next(b"<html>maintenance</html>", 502, content_type="text/html")
    response = requests.get(fake.url, timeout=5)
    assert (response.status_code, response.headers["Content-Type"]) == (502, "text/html")
    assert response.content == b"<html>maintenance</html>"


def test_closed_port_is_refused() -> None:
    client = client_for(closed_port_url())
    with pytest.raises(requests.exceptions.ConnectionError):
        list(client.results(arxiv.Search("cat:cs")))


def test_unknown_path_is_404(fake: FakeArxiv) -> None:
    response = requests.get(fake.url.replace("/api/query", "/nope"), timeout=5)
    assert response.status_code == 404


# -- recording ---------------------------------------------------------------------------------


def test_requests_are_recorded(fake: FakeArxiv) -> None:
    client = client_for(fake.url)
    client.delay_seconds = 0.05
    list(client.results(arxiv.Search("cat:cs")))
    list(client.results(arxiv.Search("cat:cs")))
    first, second = fake.requests
    assert second.params == first.params
    assert first.path == "/api/query"
    assert first.method == "GET"
    assert first.params["search_query"] == "cat:cs"
    assert first.headers["user-agent"].startswith("arxiv.py/")
    assert first.wall_time.tzinfo is UTC
    assert fake.request_gaps()[0] >= 0.05
    assert fake.max_concurrent == 1


def test_max_concurrent_counts_overlapping_requests() -> None:
    with FakeArxiv(SAMPLE, latency=0.2) as fake:
        workers = [
            threading.Thread(target=fetch, args=(fake, "cat:cs"), daemon=True) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=5)
        assert fake.max_concurrent == 4
        assert len(fake.requests) == 4
        fake.wait_idle()
        fake.clear_requests()
        assert fake.requests == []
        assert fake.max_concurrent == 0


def test_fake_paper_validation() -> None:
    with pytest.raises(ValueError, match="version-less"):
        replace(make_paper(1), id="2611.00001v2")
    with pytest.raises(ValueError, match="timezone-aware"):
        make_paper(1, published=datetime(2026, 1, 1))
    paper = make_paper(7, version=3)
    assert paper.versioned_id == "2611.00007v3"
    assert (paper.updated - paper.published).days == 2


# -- the daily RSS listing --------------------------------------------------------------------

DC = "{http://purl.org/dc/elements/1.1/}"
ARXIV = "{http://arxiv.org/schemas/atom}"
RSS_QUANT_PH = "arxiv_rss_2025-04-28_quant-ph_81_items_all_announce_types.xml"
RSS_EMPTY = "arxiv_rss_2024-11-28_empty_feed_no_items_test_archive.xml"
RSS_BAD_ARCHIVE = "arxiv_rss_2024-11-28_error_feed_bad_archive_astroph.xml"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, *, timeout: float = 5) -> tuple[int, str, bytes]:
    """Status, Content-Type and body of a plain GET (urllib raises HTTPError for >= 400)."""
    with _NO_PROXY.open(url, timeout=timeout) as response:
        return int(response.status), str(response.headers["Content-Type"]), response.read()


def rss_channel(body: bytes) -> Any:
    root = etree.fromstring(body)
    assert (root.tag, root.get("version")) == ("rss", "2.0")
    return root.find("channel")


def item_ids(channel: Any) -> list[str]:
    return [item.findtext("guid").removeprefix("oai:arXiv.org:") for item in channel]


def masked(body: bytes) -> bytes:
    """An RSS document without the parts that depend on the clock."""
    return re.sub(rb"<(lastBuildDate|pubDate)>[^<]*</\1>", rb"<\1/>", body)


def tag_sequence(element: Any) -> list[str]:
    return [str(child.tag) for child in element]


LISTED = [
    (
        make_paper(
            21,
            title="Parsing <Tables> & Trees",
            summary="A parser for x < y & z.\nSecond line.",
            authors=["Ada Lovelace", "Alan Turing"],
            categories=["cs.CL", "cs.LG"],
            doi="10.1000/abc",
            journal_ref="J. Parsing 1 (2025)",
        ),
        "new",
    ),
    (make_paper(22, categories=["math.OC", "cs.LG"], doi="10.1000/only-doi"), "cross"),
    (make_paper(23, categories=["quant-ph"], version=2, journal_ref="Only a ref"), "replace"),
    (make_paper(24, categories=["quant-ph", "cs.ET"], version=3), "replace-cross"),
    (make_paper(25, categories=["astro-ph.GA"]), "new"),
]
APRIL_28 = FakeListing(day=date(2025, 4, 28), items=LISTED)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cs", ["2611.00021v1", "2611.00022v1", "2611.00024v3"]),
        ("quant-ph", ["2611.00023v2", "2611.00024v3"]),
        ("cs.CL+math", ["2611.00021v1", "2611.00022v1"]),
        ("cs.CL", ["2611.00021v1"]),
        ("cs.cl", []),  # a category is matched exactly
        # arXiv's order: new, cross, replace, replace-cross, each by id
        ("astro-ph+quant-ph", ["2611.00025v1", "2611.00023v2", "2611.00024v3"]),
        ("math-ph", []),  # "math-ph" is not "math"
        ("econ", []),
    ],
)
def test_rss_filters_by_spec(fake: FakeArxiv, spec: str, expected: list[str]) -> None:
    fake.listing = APRIL_28
    status, content_type, body = http_get(fake.rss_url + spec)
    assert (status, content_type) == (200, RSS_CONTENT_TYPE)
    channel = rss_channel(body)
    assert item_ids(channel.findall("item")) == expected
    assert channel.findtext("title") == f"{spec.replace('+', ', ')} updates on arXiv.org"
    assert channel.findtext("link") == f"http://rss.arxiv.org/rss/{spec}"
    assert body == listing_to_rss(APRIL_28, spec)


def test_rss_items_round_trip_through_lxml(fake: FakeArxiv) -> None:
    fake.listing = APRIL_28
    _, _, body = http_get(fake.rss_url + "cs")
    channel = rss_channel(body)
    assert channel.findtext("pubDate") == "Mon, 28 Apr 2025 00:00:00 -0400"  # EDT
    assert channel.findtext("lastBuildDate") == "Mon, 28 Apr 2025 04:00:00 +0000"
    assert channel.findtext("description") == "cs updates on the arXiv.org e-print archive."
    assert channel.find("{http://www.w3.org/2005/Atom}link").get("href") == (
        "http://rss.arxiv.org/rss/cs"
    )
    assert [day.text for day in channel.find("skipDays")] == ["Saturday", "Sunday"]
    first, cross, replaced = channel.findall("item")

    assert first.findtext("title") == "Parsing <Tables> & Trees"
    assert first.findtext("link") == "https://arxiv.org/abs/2611.00021"
    assert first.findtext("description") == (
        "arXiv:2611.00021v1 Announce Type: new \nAbstract: A parser for x < y & z.\nSecond line."
    )
    assert first.find("guid").get("isPermaLink") == "false"
    assert [c.text for c in first.findall("category")] == ["cs.CL", "cs.LG"]
    assert first.findtext("pubDate") == "Mon, 28 Apr 2025 00:00:00 -0400"
    assert first.findtext(f"{DC}creator") == "Ada Lovelace, Alan Turing"
    assert first.findtext(f"{DC}rights") == "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"
    assert first.findtext(f"{ARXIV}DOI") == "10.1000/abc"
    assert first.findtext(f"{ARXIV}journal_reference") == "J. Parsing 1 (2025)"
    assert cross.findtext(f"{ARXIV}DOI") == "10.1000/only-doi"
    assert cross.find(f"{ARXIV}journal_reference") is None
    assert replaced.find(f"{ARXIV}DOI") is None
    assert [item.findtext(f"{ARXIV}announce_type") for item in (first, cross, replaced)] == [
        "new",
        "cross",
        "replace-cross",
    ]
    assert replaced.findtext("description").startswith("arXiv:2611.00024v3 Announce Type: ")

    # listing_from_rss reads what the fake serves back into the same papers and types
    parsed = listing_from_rss(body)
    assert parsed.day == APRIL_28.day
    assert [
        (p.versioned_id, p.title, p.summary, p.authors, p.categories, t) for p, t in parsed.items
    ] == [
        (p.versioned_id, p.title, p.summary, p.authors, p.categories, t)
        for p, t in APRIL_28.items
        if any(c.startswith("cs.") for c in p.categories)
    ]

    # winter days are EST; replacing the listing between requests takes effect at once
    fake.listing = FakeListing(day=date(2024, 11, 28), items=LISTED[:1])
    channel = rss_channel(http_get(fake.rss_url + "cs")[2])
    assert channel.findtext("pubDate") == "Thu, 28 Nov 2024 00:00:00 -0500"
    assert item_ids(channel.findall("item")) == ["2611.00021v1"]
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/rss/cs")] * 2


def test_rss_without_a_listing_announces_every_held_paper_today(fake: FakeArxiv) -> None:
    fake.papers.append(fake.papers[0].new_version())
    before = datetime.now(UTC).date()
    status, content_type, body = http_get(fake.rss_url + "cs+math")
    after = datetime.now(UTC).date()
    assert (status, content_type) == (200, RSS_CONTENT_TYPE)
    channel = rss_channel(body)
    held = {  # the later version wins; only papers in cs or math
        p.id: p for p in fake.papers if any(c.split(".")[0] in ("cs", "math") for c in p.categories)
    }
    assert len(channel.findall("item")) == len(held)
    types = {
        item.findtext("guid").rsplit(":", 1)[1]: item.findtext(
            "{http://arxiv.org/schemas/atom}announce_type"
        )
        for item in channel.findall("item")
    }

    def listed_as(paper: FakePaper) -> str:  # relative to cs+math, as arXiv types them
        primary = paper.primary_category.split(".")[0] in ("cs", "math")
        if paper.version == 1:
            return "new" if primary else "cross"
        return "replace" if primary else "replace-cross"

    assert types == {p.versioned_id: listed_as(p) for p in held.values()}
    assert "cross" in types.values()
    assert channel.findtext("title") == "cs, math updates on arXiv.org"
    pub_date = channel.findtext("pubDate")
    assert pub_date is not None
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    stamps = {f"{d.day:02d} {months[d.month - 1]} {d.year} 00:00:00" for d in (before, after)}
    assert pub_date[5:25] in stamps


def test_rss_listing_without_matches_is_empty_but_dated(fake: FakeArxiv) -> None:
    fake.listing = FakeListing(day=date(2025, 4, 28))
    channel = rss_channel(http_get(fake.rss_url + "cs")[2])
    assert channel.findall("item") == []
    assert channel.findtext("pubDate") == "Mon, 28 Apr 2025 00:00:00 -0400"


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        ("astroph", "astroph"),
        ("cs+astroph", "astroph"),
        ("CS", "CS"),
        ("cs.CL.x", "cs.CL.x"),
        ("computer.CL", "computer.CL"),
        ("cs+", ""),
    ],
)
def test_rss_bad_archive_gets_the_error_channel(fake: FakeArxiv, spec: str, bad: str) -> None:
    fake.listing = APRIL_28
    status, content_type, body = http_get(fake.rss_url + spec)
    assert (status, content_type) == (200, RSS_CONTENT_TYPE)
    channel = rss_channel(body)
    assert channel.findtext("title") == f"Feed error for query: http://rss.arxiv.org/rss/{spec}"
    description = channel.findtext("description")
    assert description.startswith(f"Bad archive '{bad}'. Valid archive names are: astro-ph, ")
    assert description.endswith(", quant-ph, stat, test.")
    assert channel.findall("item") == []
    assert body == listing_to_rss(APRIL_28, spec)


def test_rss_accepts_every_archive_and_categories(fake: FakeArxiv) -> None:
    spec = "astro-ph.GA+cond-mat.quant-gas+physics.atom-ph+q-fin.ST+test+math-ph+nlin.CD"
    channel = rss_channel(http_get(fake.rss_url + spec)[2])
    assert not channel.findtext("title").startswith("Feed error")


def test_rss_faults(fake: FakeArxiv) -> None:
    fake.listing = APRIL_28
    fake.fail_next(503)
    with pytest.raises(urllib.error.HTTPError) as caught:
        http_get(fake.rss_url + "cs")
    assert caught.value.code == 503
    assert item_ids(rss_channel(http_get(fake.rss_url + "cs")[2]).findall("item")) == [
        "2611.00021v1",
        "2611.00022v1",
        "2611.00024v3",
    ]

    fake.hang_next()
    with pytest.raises(TimeoutError):
        http_get(fake.rss_url + "cs", timeout=0.2)

    fake.malformed_next()
    status, content_type, body = http_get(fake.rss_url + "cs")
    assert (status, content_type) == (200, RSS_CONTENT_TYPE)
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(body)

    fake.truncate_next(complete_entries=1)
    body = http_get(fake.rss_url + "cs")[2]
    assert body.count(b"<item>") == 2
    assert b"</rss>" not in body

    fake.empty_page_next()
    assert rss_channel(http_get(fake.rss_url + "cs")[2]).findall("item") == []
    assert [r.path for r in fake.requests] == ["/rss/cs"] * 6
    assert fake.pending_faults == 0


def test_rss_unknown_announce_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="announce type"):
        FakeListing(day=date(2025, 4, 28), items=[(make_paper(1), "update")])


def test_rss_raw_next_serves_a_capture_verbatim(fake: FakeArxiv, corpus: Path) -> None:
    capture = (corpus / RSS_QUANT_PH).read_bytes()
    fake.raw_next(capture, content_type=RSS_CONTENT_TYPE)
    assert http_get(fake.rss_url + "quant-ph") == (200, RSS_CONTENT_TYPE, capture)


def test_rss_has_the_structure_of_the_real_capture(fake: FakeArxiv, corpus: Path) -> None:
    real = etree.fromstring((corpus / RSS_QUANT_PH).read_bytes())
    fake.listing = APRIL_28
    ours = etree.fromstring(http_get(fake.rss_url + "cs")[2])
    assert ours.nsmap == real.nsmap
    assert ours.attrib == real.attrib
    real_channel, our_channel = real.find("channel"), ours.find("channel")

    def head(channel: Any) -> list[str]:
        return [tag for tag in tag_sequence(channel) if tag != "item"]

    assert head(our_channel) == head(real_channel)

    def shape(item: Any) -> tuple[str, ...]:
        """Element names in order, repeated <category>s counted once."""
        tags = tag_sequence(item)
        return tuple(tag for i, tag in enumerate(tags) if i == 0 or tags[i - 1] != tag)

    real_shapes = {shape(item) for item in real_channel.iterfind("item")}
    our_shapes = [shape(item) for item in our_channel.iterfind("item")]
    assert set(our_shapes) <= real_shapes
    assert len(set(our_shapes)) == 3  # with DOI and journal ref, DOI only, neither


def test_rss_round_trips_a_real_capture_byte_for_byte(corpus: Path) -> None:
    capture = (corpus / RSS_QUANT_PH).read_bytes()
    listing = listing_from_rss(capture)
    assert listing.day == date(2025, 4, 28)
    assert Counter(kind for _, kind in listing.items) == {
        "new": 40,
        "replace": 22,
        "cross": 10,
        "replace-cross": 9,
    }
    first, kind = listing.items[0]
    assert (first.versioned_id, first.authors, kind) == ("2504.17830v1", ["Radmir Kokoulin"], "new")
    assert listing_to_rss(listing, "quant-ph") == capture
    with FakeArxiv() as fake:
        fake.listing = listing
        assert http_get(fake.rss_url + "quant-ph")[2] == capture
        served_in_cs = rss_channel(http_get(fake.rss_url + "cs")[2]).findall("item")
    captured_in_cs = [
        item.findtext("guid")
        for item in rss_channel(capture).iterfind("item")
        if any(c.text.startswith("cs.") for c in item.iterfind("category"))
    ]
    assert sorted(item.findtext("guid") for item in served_in_cs) == sorted(captured_in_cs)
    assert len(captured_in_cs) == 9
    # Typed relative to cs, as arXiv's server types them: a quant-ph paper is a cross here.
    in_quant_ph = {paper.versioned_id: kind for paper, kind in listing.items}
    for item in served_in_cs:
        versioned = item.findtext("guid").rsplit(":", 1)[1]
        primary = item.findtext("category").startswith("cs.")
        if in_quant_ph[versioned].startswith("replace"):
            expected = "replace" if primary else "replace-cross"
        else:
            expected = "new" if primary and in_quant_ph[versioned] == "new" else "cross"
        assert item.findtext("{http://arxiv.org/schemas/atom}announce_type") == expected


def test_rss_empty_and_error_channels_match_the_captures(fake: FakeArxiv, corpus: Path) -> None:
    assert masked(http_get(fake.rss_url + "test")[2]) == masked((corpus / RSS_EMPTY).read_bytes())
    bad = http_get(fake.rss_url + "astroph")[2]
    assert masked(bad) == masked((corpus / RSS_BAD_ARCHIVE).read_bytes())
