"""arXiv's OAI-PMH answers read (`bot.oai`): a real arXivRaw capture, a fake server paged over
real HTTP, and the rules that tell what arXiv announced on the days the bot missed."""

from __future__ import annotations

import asyncio
import http.client
import logging
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.oai import (
    GROUPS,
    OaiError,
    OaiPageLimit,
    OaiRecord,
    Version,
    announced,
    harvest_from,
    list_records,
    list_url,
    parse_page,
    resume_url,
    sets_for,
    split_authors,
    submission_cutoff,
)
from tests.fakes.oai_server import FakeOai, FakeRecord, records_from_capture

DATA = Path(__file__).parent / "data"
CAPTURE = (DATA / "arxiv_oai_2015_listrecords_arxivraw.xml").read_bytes()
NO_RECORDS = (DATA / "arxiv_oai_2015_error_norecordsmatch.xml").read_bytes()
BAD_TOKEN = (DATA / "arxiv_oai_2015_error_badresumptiontoken.xml").read_bytes()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


async def fetch(url: str) -> bytes:
    """What the caller's fetch does, without pacing: one real HTTP GET."""
    return await asyncio.to_thread(_get, url)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- the real capture --------------------------------------------------------------------


def test_parse_reads_every_field_of_the_real_capture() -> None:
    page = parse_page(CAPTURE)

    assert page.token == "726959|1001"
    assert [r.id for r in page.records] == [
        "0704.0471",
        "0704.0716",
        "0704.0874",
        "0704.1109",
        "0704.1114",
        "0704.1586",
    ]
    richard = page.records[1]
    assert richard == OaiRecord(
        id="0704.0716",
        datestamp=date(2014, 12, 22),
        versions=(
            Version(1, _utc(2007, 4, 5, 12, 45, 3)),
            Version(2, _utc(2007, 9, 28, 15, 13, 43)),
            Version(3, _utc(2008, 2, 29, 16, 5, 39)),
            Version(4, _utc(2008, 11, 14, 9, 7, 25)),
        ),
        title="Limit distributions and scaling functions",
        authors=("Christoph Richard",),
        abstract=(
            "We discuss the asymptotic behaviour of models of lattice polygons, mainly on the "
            "square lattice. In particular, we focus on limiting area laws in the uniform "
            "perimeter ensemble where, for fixed perimeter, each polygon of a given area occurs "
            "with the same probability. We relate limit distributions to the scaling behaviour "
            "of the associated perimeter and area generating functions, thereby providing a "
            "geometric interpretation of scaling functions. To a major extent, this article is "
            "a pedagogic review of known results."
        ),
        categories=("math-ph", "math.MP"),
        comments=(
            "54 pages, 2 figures; v2 updated and slightly expanded; v3 changes in some proofs; "
            "v4 slightly expanded"
        ),
        journal_ref=(
            "Polygons, polyominoes and polycubes, 247-299, Lecture Notes in Phys., 775, "
            "Springer, Dordrecht, 2009"
        ),
        doi=None,
    )
    shetty = page.records[0]
    assert shetty.authors == ("D.V. Shetty", "S.J. Yennello", "G.A. Souliotis")
    assert shetty.title == (
        "Density dependence of the symmetry energy and the nuclear equation of state: "
        "A Dynamical and Statistical model perspective"
    )
    assert '" stiff " and " soft "' in shetty.abstract
    assert shetty.doi == "10.1103/PhysRevC.76.024606 10.1103/PhysRevC.76.039902"
    assert page.records[3].authors == ("Valeria M. Rosa", "Patricio S. letelier")


def test_a_record_becomes_the_paper_of_one_version() -> None:
    richard = parse_page(CAPTURE).records[1]

    paper = richard.paper(2)

    assert (paper.id, paper.version, paper.version_key) == ("0704.0716", 2, "0704.0716v2")
    assert paper.published == _utc(2007, 4, 5, 12, 45, 3)
    assert paper.updated == _utc(2007, 9, 28, 15, 13, 43)
    assert (paper.primary_category, paper.categories) == ("math-ph", ("math-ph", "math.MP"))
    assert paper.comment == richard.comments and paper.journal_ref == richard.journal_ref
    assert paper.summary == richard.abstract and paper.authors == ("Christoph Richard",)
    with pytest.raises(ValueError, match="no version 5"):
        richard.paper(5)


def test_the_real_replacement_is_the_only_announcement_of_its_days() -> None:
    """0704.0874 v3 was submitted on Thursday 2014-11-20 at 15:03 UTC (10:03 US Eastern),
    before the cutoff: announced that evening, Friday's listing, datestamp 2014-11-21. The
    records whose datestamp moved on 2014-11-18 without a new version (2007 papers) are bulk
    updates, not announcements."""
    records = parse_page(CAPTURE).records

    friday = announced(records, first_day=date(2014, 11, 21), last_day=date(2014, 11, 21),
                       archives=["math"])  # fmt: skip
    week = announced(records, first_day=date(2014, 11, 17), last_day=date(2014, 11, 21),
                     archives=[])  # fmt: skip

    assert [(a.paper.version_key, a.kind) for a in friday] == [("0704.0874v3", "replace")]
    assert [(a.paper.version_key, a.kind) for a in week] == [("0704.0874v3", "replace")]
    # Monday's gap reaches back into Thursday by SUBMISSION_MARGIN; Tuesday's does not.
    monday = announced(records, first_day=date(2014, 11, 24), last_day=date(2014, 11, 24),
                       archives=[])  # fmt: skip
    tuesday = announced(records, first_day=date(2014, 11, 25), last_day=date(2014, 11, 26),
                        archives=[])  # fmt: skip
    assert [a.paper.version_key for a in monday] == ["0704.0874v3"] and tuesday == []


def test_the_real_error_answers() -> None:
    assert parse_page(NO_RECORDS).records == () and parse_page(NO_RECORDS).token is None
    with pytest.raises(OaiError) as caught:
        parse_page(BAD_TOKEN)
    assert caught.value.code == "badResumptionToken"
    assert caught.value.message == "The resumptionToken supplied is illegal for this repository"


async def test_the_fake_serves_the_capture_as_arxiv_did() -> None:
    """The fake's layout is the real one: its answer for the capture's records reads as the
    capture itself does."""
    with FakeOai(records_from_capture(CAPTURE)) as fake:
        body = await fetch(list_url(fake.url, set_spec="math", from_day=date(2014, 10, 1)))
        served = parse_page(body)

    wanted = [r for r in parse_page(CAPTURE).records if r.id in {"0704.0716", "0704.0874"}]
    assert sorted(served.records, key=lambda r: r.id) == wanted
    assert served.token is None


# --- requests and pages --------------------------------------------------------------------


def test_urls_carry_what_oai_pmh_asks() -> None:
    first = parse_qs(urlsplit(list_url("https://oaipmh.arxiv.org/oai", set_spec="cs:cs:CL",
                                       from_day=date(2026, 11, 9),
                                       until_day=date(2026, 11, 12))).query)  # fmt: skip
    token = "verb%3DListRecords%26set%3Dcs%26skip%3D2000|x y&z"
    resumed = parse_qs(urlsplit(resume_url("https://oaipmh.arxiv.org/oai", token)).query)

    assert first == {
        "verb": ["ListRecords"],
        "metadataPrefix": ["arXivRaw"],
        "set": ["cs:cs:CL"],
        "from": ["2026-11-09"],
        "until": ["2026-11-12"],
    }
    assert resumed == {"verb": ["ListRecords"], "resumptionToken": [token]}
    assert list_url("http://h/oai?x=1", set_spec="cs", from_day=date(2026, 1, 2)).startswith(
        "http://h/oai?x=1&verb=ListRecords"
    )


def _cs(n: int, *, day: date = date(2026, 11, 10), categories: tuple[str, ...] = ("cs.CL",),
        versions: tuple[datetime, ...] = (_utc(2026, 11, 9, 10),)) -> FakeRecord:  # fmt: skip
    return FakeRecord(
        id=f"2611.{n:05d}",
        versions=list(versions),
        datestamp=day,
        categories=list(categories),
        title=f"Paper {n}",
        authors=f"A. Author{n} and B. Author{n}",
    )


async def test_three_pages_are_followed_by_their_tokens() -> None:
    with FakeOai([_cs(n) for n in range(1, 8)], page_size=3) as fake:
        records = await list_records(fetch, fake.url, ["cs"], date(2026, 11, 9))
        requests = fake.requests

    assert sorted(r.id for r in records) == [f"2611.{n:05d}" for n in range(1, 8)]
    assert records[0].authors == ("A. Author1", "B. Author1")
    assert [r.params for r in requests] == [
        {"verb": "ListRecords", "metadataPrefix": "arXivRaw", "set": "cs", "from": "2026-11-09"},
        {"verb": "ListRecords", "resumptionToken": requests[1].params["resumptionToken"]},
        {"verb": "ListRecords", "resumptionToken": requests[2].params["resumptionToken"]},
    ]


async def test_the_set_and_the_days_choose_the_records() -> None:
    held = [
        _cs(1, day=date(2026, 11, 8)),  # before `from`
        _cs(2, day=date(2026, 11, 9)),
        _cs(3, day=date(2026, 11, 11), categories=("math.CO", "cs.DM")),  # cross-listed to cs
        _cs(4, day=date(2026, 11, 11), categories=("math.CO",)),  # not in cs
        _cs(5, day=date(2026, 11, 13)),  # after `until`
        _cs(6, day=date(2026, 11, 12), categories=("cs.LG", "stat.ML")),
    ]
    with FakeOai(held, page_size=2) as fake:
        cs = await list_records(fetch, fake.url, ["cs"], date(2026, 11, 9),
                                until_day=date(2026, 11, 12))  # fmt: skip
        both = await list_records(fetch, fake.url, ["cs", "stat"], date(2026, 11, 9))
        nothing = await list_records(fetch, fake.url, ["q-fin"], date(2026, 11, 9))

    assert sorted(r.id for r in cs) == ["2611.00002", "2611.00003", "2611.00006"]
    assert sorted(r.id for r in both) == ["2611.00002", "2611.00003", "2611.00005", "2611.00006"]
    assert nothing == []  # noRecordsMatch


async def test_a_list_longer_than_the_page_limit_is_refused() -> None:
    with FakeOai([_cs(n) for n in range(1, 8)], page_size=3) as fake:
        with pytest.raises(OaiPageLimit, match="more than 2 pages"):
            await list_records(fetch, fake.url, ["cs"], date(2026, 11, 9), max_pages=2)
        with pytest.raises(ValueError, match="max_pages"):
            await list_records(fetch, fake.url, ["cs"], date(2026, 11, 9), max_pages=0)
        assert len(fake.requests) == 2


async def test_failures_propagate_from_fetch_and_from_the_answer() -> None:
    with FakeOai([_cs(n) for n in range(1, 5)], page_size=2) as fake:
        fake.fail_next(503, headers={"Retry-After": "7"})
        with pytest.raises(urllib.error.HTTPError) as unavailable:
            await list_records(fetch, fake.url, ["cs"], date(2026, 11, 9))
        assert unavailable.value.code == 503
        assert unavailable.value.headers["Retry-After"] == "7"

        fake.cut_next(300)
        with pytest.raises(ValueError, match="malformed OAI-PMH answer"):
            await list_records(fetch, fake.url, ["cs"], date(2026, 11, 9))

        fake.cut_next(300, honest_length=False)
        with pytest.raises(http.client.IncompleteRead):
            await list_records(fetch, fake.url, ["cs"], date(2026, 11, 9))

        first = parse_page(
            await fetch(list_url(fake.url, set_spec="cs", from_day=date(2026, 1, 1)))
        )
        fake.expire_tokens()
        with pytest.raises(OaiError) as expired:
            await fetch_and_parse(resume_url(fake.url, first.token or ""))
        assert expired.value.code == "badResumptionToken"

        with pytest.raises(OaiError) as bad:
            await fetch_and_parse(list_url(fake.url, set_spec="cs", from_day=date(2026, 1, 1))
                                  + "&resumptionToken=1")  # fmt: skip
        assert bad.value.code == "badArgument"
        assert fake.errors == []


async def fetch_and_parse(url: str) -> object:
    return parse_page(await fetch(url))


def test_answers_that_are_not_oai_pmh_are_value_errors() -> None:
    with pytest.raises(ValueError, match="malformed"):
        parse_page(b"<<< not xml")
    with pytest.raises(ValueError, match="not an OAI-PMH answer"):
        parse_page(b'<feed xmlns="http://www.w3.org/2005/Atom"/>')
    with pytest.raises(ValueError, match="neither ListRecords nor an error"):
        parse_page(b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><GetRecord/></OAI-PMH>')


def _page(records: str, token: str = "") -> bytes:
    return (
        '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>'
        f"{records}{token}</ListRecords></OAI-PMH>"
    ).encode()


def _raw(identifier: str, inner: str, *, datestamp: str = "2026-11-10", status: str = "") -> str:
    return (
        f"<record><header{status}><identifier>{identifier}</identifier>"
        f"<datestamp>{datestamp}</datestamp></header><metadata>"
        f'<arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/">{inner}</arXivRaw>'
        "</metadata></record>"
    )


GOOD = (
    '<id>2611.00001</id><version version="v1"><date>Mon, 09 Nov 2026 10:00:00 GMT</date>'
    "</version><title>T</title><authors>A. One</authors><categories>cs.CL</categories>"
)


def test_one_bad_record_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    no_id = _raw("", GOOD.replace("<id>2611.00001</id>", ""))
    bad_date = _raw("oai:arXiv.org:2611.00002", GOOD.replace("Mon, 09 Nov", "Someday, 99 Nov")
                    .replace("2611.00001", "2611.00002"))  # fmt: skip
    deleted = (
        '<record><header status="deleted"><identifier>oai:arXiv.org:2611.00003</identifier>'
        "<datestamp>2026-11-10</datestamp></header></record>"
    )
    from_header = _raw("oai:arXiv.org:2611.00004", GOOD.replace("<id>2611.00001</id>", ""))
    body = _page(
        no_id + bad_date + deleted + _raw("oai:arXiv.org:2611.00001", GOOD) + from_header,
        "<resumptionToken/>",
    )

    with caplog.at_level(logging.WARNING, logger="bot.oai"):
        page = parse_page(body)

    assert [r.id for r in page.records] == ["2611.00001", "2611.00004"]
    assert page.token is None  # an empty token ends the list
    skipped = [r.getMessage() for r in caplog.records if "oai_record_skipped" in r.getMessage()]
    assert len(skipped) == 2
    assert "identifier=oai:arXiv.org:2611.00002" in skipped[1] and "Someday" in skipped[1]


def test_other_oai_errors_raise_and_no_records_is_empty() -> None:
    def error(code: str) -> bytes:
        return (
            '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
            f"<error code='{code}'>The request includes\n illegal arguments.</error></OAI-PMH>"
        ).encode()

    assert parse_page(error("noRecordsMatch")).records == ()
    for code in ("badArgument", "cannotDisseminateFormat", "badVerb"):
        with pytest.raises(OaiError) as caught:
            parse_page(error(code))
        assert (caught.value.code, caught.value.message) == (
            code,
            "The request includes illegal arguments.",
        )


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("A. One, B. Two and C. Three", ("A. One", "B. Two", "C. Three")),
        ("D.V. Shetty, S.J. Yennello, and G.A. Souliotis",
         ("D.V. Shetty", "S.J. Yennello", "G.A. Souliotis")),
        ("J. Smith (1), K. Lee (2) ((1) MIT, (2) ETH and EPFL)", ("J. Smith", "K. Lee")),
        ("ATLAS Collaboration", ("ATLAS Collaboration",)),
        ("Alexander Sandander,and  Ann\n  Andersen", ("Alexander Sandander", "Ann Andersen")),
        ("", ()),
    ],
)  # fmt: skip
def test_authors_are_split_into_names(text: str, names: tuple[str, ...]) -> None:
    assert split_authors(text) == names


@pytest.mark.parametrize(
    ("categories", "sets"),
    [
        ([], list(GROUPS)),
        (["cs"], ["cs"]),
        (["math", "stat"], ["math", "stat"]),
        (["hep-th", "quant-ph", "astro-ph", "cond-mat"],
         ["physics:astro-ph", "physics:cond-mat", "physics:hep-th", "physics:quant-ph"]),
        (["cs.CL", "cs.LG"], ["cs:cs:CL", "cs:cs:LG"]),
        (["cs", "cs.CL", "stat.ML"], ["cs", "stat:stat:ML"]),
        (["physics", "physics.optics", "astro-ph.GA"], ["physics:astro-ph:GA", "physics:physics"]),
        (["cond-mat.str-el", "nlin.SI", "q-bio.NC", "eess", "econ.EM"],
         ["econ:econ:EM", "eess", "physics:cond-mat:str-el", "physics:nlin:SI", "q-bio:q-bio:NC"]),
    ],
)  # fmt: skip
def test_sets_for_the_configured_categories(categories: list[str], sets: list[str]) -> None:
    """arXiv's set names (arXiv/oaipmh `create_set_list.make_set_str` and its tests)."""
    assert sets_for(categories) == sets


def test_sets_for_an_unknown_name_says_so() -> None:
    with pytest.raises(ValueError, match=r"not an arXiv archive or category: 'cs\.XX'"):
        sets_for(["cs.XX"])
    assert GROUPS == ("cs", "econ", "eess", "math", "physics", "q-bio", "q-fin", "stat")


# --- what arXiv announced on the missed days -----------------------------------------------

# Three missed listing days, Tuesday 2026-11-10 to Thursday 2026-11-12 (US Eastern standard
# time, UTC-5). Their submissions ran from Friday 2026-11-06 14:00 ET (19:00 UTC) to
# Wednesday 2026-11-11 14:00 ET; with the one-day margin, Thursday 11-05 19:00 UTC to
# Thursday 11-12 19:00 UTC.
FIRST, LAST = date(2026, 11, 10), date(2026, 11, 12)
IN_GAP = _utc(2026, 11, 9, 10)


def _record(
    n: int,
    *versions: datetime,
    categories: tuple[str, ...] = ("cs.CL",),
    datestamp: date = date(2026, 11, 11),
    paper_id: str | None = None,
) -> OaiRecord:
    return OaiRecord(
        id=paper_id or f"2611.{n:05d}",
        datestamp=datestamp,
        versions=tuple(Version(i, when) for i, when in enumerate(versions, start=1)),
        title=f"Paper {n}",
        authors=("A. One",),
        abstract="An abstract.",
        categories=categories,
    )


CASES = [
    # (what, record, archives, (version, kind) or None)
    ("new", _record(1, IN_GAP), ["cs"], (1, "new")),
    ("new, any archive", _record(2, IN_GAP, categories=("math.CO",)), [], (1, "new")),
    ("cross", _record(3, IN_GAP, categories=("math.CO", "cs.DM")), ["cs"], (1, "cross")),
    ("cross by category", _record(4, IN_GAP, categories=("cs.LG", "cs.CL")), ["cs.CL"],
     (1, "cross")),
    ("new, then replaced in the gap", _record(5, IN_GAP, _utc(2026, 11, 10, 15)), ["cs"],
     (2, "new")),
    ("replace", _record(6, _utc(2026, 6, 1), IN_GAP, paper_id="2606.00006"), ["cs"],
     (2, "replace")),
    ("replace-cross", _record(7, _utc(2026, 3, 1), _utc(2026, 4, 1), IN_GAP,
                              categories=("stat.ML", "cs.LG"), paper_id="2603.00007"),
     ["cs"], (3, "replace-cross")),
    ("replacement of a 60-day-old paper",
     _record(8, IN_GAP - timedelta(days=60), IN_GAP, paper_id="2609.00008"), ["cs"],
     (2, "replace")),
    ("replacement of a 2007 paper", _record(9, _utc(2007, 4, 6), IN_GAP, paper_id="0704.0874"),
     [], (2, "replace")),
    ("held", _record(10, _utc(2026, 10, 20)), ["cs"], (1, "new")),
    ("held, cross-listed", _record(11, _utc(2026, 10, 20), categories=("math.CO", "cs.DM")),
     ["cs"], (1, "cross")),
    ("held, the datestamp the UTC day before", _record(12, _utc(2026, 10, 20),
                                                       datestamp=date(2026, 11, 9)),
     ["cs"], (1, "new")),
    ("held 113 days", _record(13, _utc(2026, 7, 15)), ["cs"], (1, "new")),
    ("held too long ago", _record(22, _utc(2026, 7, 1)), ["cs"], None),
    ("bulk-updated, numbered before the gap",
     _record(14, _utc(2026, 9, 20), paper_id="2609.01234"), ["cs"], None),
    ("bulk-updated 2007 paper", _record(15, _utc(2007, 4, 3), paper_id="0704.0471"), [], None),
    ("held, modified after the gap", _record(16, _utc(2026, 10, 20),
                                             datestamp=date(2026, 11, 13)), ["cs"], None),
    ("an old paper revised again, not in the gap",
     _record(17, _utc(2026, 1, 5), _utc(2026, 11, 3), paper_id="2601.00017",
             datestamp=date(2026, 11, 11)), ["cs"], None),
    ("submitted after the gap", _record(18, _utc(2026, 11, 12, 20), datestamp=date(2026, 11, 13)),
     ["cs"], None),
    ("submitted before the gap", _record(19, _utc(2026, 11, 5, 18), datestamp=date(2026, 11, 6)),
     ["cs"], None),
    ("not in the requested archives", _record(20, IN_GAP, categories=("math.CO",)), ["cs"], None),
    ("a sixth version is not listed", _record(21, *[_utc(2026, m, 1) for m in range(1, 6)], IN_GAP,
                                              paper_id="2601.00021"), ["cs"], None),
]  # fmt: skip


@pytest.mark.parametrize(("what", "record", "archives", "expected"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_what_was_announced_in_the_gap(
    what: str, record: OaiRecord, archives: list[str], expected: tuple[int, str] | None
) -> None:
    found = announced([record], first_day=FIRST, last_day=LAST, archives=archives)

    assert [(a.paper.version, a.kind) for a in found] == ([expected] if expected else [])
    if found:
        assert found[0].paper.published == record.versions[0].submitted
        assert found[0].paper.updated == record.versions[expected[0] - 1].submitted  # type: ignore[index]


def test_the_gap_window_follows_the_eastern_cutoff() -> None:
    # Tuesday's listing ends with Monday 14:00 ET; Monday's (announced on Sunday) with Friday's.
    assert submission_cutoff(date(2026, 11, 10)) == _utc(2026, 11, 9, 19)
    assert submission_cutoff(date(2026, 11, 9)) == _utc(2026, 11, 6, 19)
    assert submission_cutoff(date(2026, 7, 14)) == _utc(2026, 7, 13, 18)  # daylight time
    assert harvest_from(FIRST) == date(2026, 11, 9)
    edge = [
        _record(1, _utc(2026, 11, 5, 19)),  # the margin's first second
        _record(2, _utc(2026, 11, 5, 18, 59, 59), datestamp=date(2026, 11, 6)),
        _record(3, _utc(2026, 11, 12, 18, 59, 59)),  # the margin's last second
        _record(4, _utc(2026, 11, 12, 19), datestamp=date(2026, 11, 13)),
    ]
    found = announced(edge, first_day=FIRST, last_day=LAST, archives=[])
    assert [a.paper.id for a in found] == ["2611.00001", "2611.00003"]


async def test_a_catch_up_over_three_missed_weekdays_from_the_fake() -> None:
    """The whole path: the fake serves the gap's records for the sets of `["cs"]`, the
    harvest reads them page by page, and the rules type them as the cs feed would."""
    served = [
        FakeRecord(id="2611.00101", versions=[IN_GAP], datestamp=date(2026, 11, 10),
                   categories=["cs.CL"], title="A new one", authors="A. One and B. Two"),
        FakeRecord(id="2611.00102", versions=[_utc(2026, 11, 10, 12)],
                   datestamp=date(2026, 11, 11), categories=["math.CO", "cs.DM"]),
        FakeRecord(id="2611.00103", versions=[_utc(2026, 10, 21, 9)],
                   datestamp=date(2026, 11, 12), categories=["cs.AI"]),
        FakeRecord(id="2609.00104", versions=[IN_GAP - timedelta(days=60), IN_GAP],
                   datestamp=date(2026, 11, 10), categories=["cs.LG"]),
        FakeRecord(id="2301.00105", versions=[_utc(2023, 1, 3)], datestamp=date(2026, 11, 11),
                   categories=["cs.DB"]),
        FakeRecord(id="2611.00106", versions=[IN_GAP], datestamp=date(2026, 11, 10),
                   categories=["cs.CL"], deleted=True),
        FakeRecord(id="2611.00107", versions=[IN_GAP], datestamp=date(2026, 11, 10),
                   categories=["math.AG"]),
    ]  # fmt: skip
    with FakeOai(served, page_size=2) as fake:
        records = await list_records(fetch, fake.url, sets_for(["cs"]), harvest_from(FIRST))
        pages = len(fake.requests)

    found = announced(records, first_day=FIRST, last_day=LAST, archives=["cs"])

    assert pages == 3
    assert [(a.paper.version_key, a.kind) for a in found] == [
        ("2609.00104v2", "replace"),
        ("2611.00101v1", "new"),
        ("2611.00102v1", "cross"),
        ("2611.00103v1", "new"),
    ]
    assert found[1].paper.authors == ("A. One", "B. Two")


# Today's server (github.com/arXiv/oaipmh) renders the same elements from Jinja templates:
# indented (`templates/record_formats.xml`, `macros.xml`; long tags wrapped here),
# `<source_type>` in a version, a token with `expires` and an url-encoded query
# (`templates/token.xml`, `processors/resume.py`).
TEMPLATE_LAYOUT = b"""<?xml version="1.0" encoding="UTF-8"?>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/
           http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">
    <responseDate>2026-11-12T06:00:00Z</responseDate>
        <request verb="ListRecords" metadataPrefix="arXivRaw" set="cs"
          from="2026-11-09">https://oaipmh.arxiv.org/oai</request>
    <ListRecords>
        <record>
    <header>
        <identifier>oai:arXiv.org:2611.00001</identifier>
        <datestamp>2026-11-10</datestamp>
            <setSpec>cs:cs:CL</setSpec>
    </header>
            <metadata>
    <arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/"
      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
      xsi:schemaLocation="http://arxiv.org/OAI/arXivRaw/ http://arxiv.org/OAI/arXivRaw.xsd">
        <id>2611.00001</id>
        <submitter>A. One</submitter>
            <version version="v1">
                <date>Mon, 09 Nov 2026 10:00:00 GMT</date>
                <size>120kb</size>
                    <source_type>D</source_type>
            </version>
        <title>A title
  on two lines</title>
        <authors>A. One and B. Two</authors>
        <categories>cs.CL cs.LG</categories>
            <license>http://creativecommons.org/licenses/by/4.0/</license>
            <abstract>  An abstract.
</abstract>
    </arXivRaw>
            </metadata>
        </record>
<resumptionToken expires='2026-11-13T00:00:00Z'>verb%3DListRecords%26skip%3D2000</resumptionToken>
    </ListRecords>
</OAI-PMH>"""


def test_todays_server_layout_reads_the_same() -> None:
    page = parse_page(TEMPLATE_LAYOUT)

    assert page.token == "verb%3DListRecords%26skip%3D2000"
    (record,) = page.records
    assert (record.id, record.title, record.authors, record.abstract) == (
        "2611.00001",
        "A title on two lines",
        ("A. One", "B. Two"),
        "An abstract.",
    )
    assert record.versions == (Version(1, _utc(2026, 11, 9, 10)),)
    assert (record.categories, record.comments, record.doi) == (("cs.CL", "cs.LG"), None, None)
