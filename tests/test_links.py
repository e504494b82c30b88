"""Code links and venues read from real abstracts, comments and journal references."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from bot.links import MAX_CODE_LINKS, VENUE_CHARS, code_links, venue
from bot.listing import parse
from bot.models import Paper
from bot.terminal import format_paper
from tests.conftest import CORPUS
from tests.factories import paper, paper_from_fake
from tests.fakes.arxiv_server import papers_from_feed

LARGE = "arxiv_rss_2024-11-28_all_archives_1504_items_LARGE.xml"

WELL_FORMED = re.compile(
    r"^https://(?:github\.com/[A-Za-z0-9-]+/[\w.-]+"
    r"|gitlab\.com/[\w.-]+(?:/[\w.-]+)+"
    r"|huggingface\.co/(?:datasets/|spaces/)?[\w.-]+/[\w.-]+)$"
)


def corpus_papers() -> dict[str, list[Paper]]:
    """Every paper of every capture (API feeds and RSS listings), by file name."""
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is absent: {CORPUS} (it sits beside the checkout)")
    found: dict[str, list[Paper]] = {}
    for path in sorted(CORPUS.glob("arxiv_api_*.xml")):
        if "error_feed" not in path.name:
            found[path.name] = [paper_from_fake(f) for f in papers_from_feed(path.read_bytes())]
    for path in sorted(CORPUS.glob("arxiv_rss_*.xml")):
        if "error_feed" not in path.name:
            found[path.name] = [item.paper for item in parse(path.read_bytes()).items]
    return found


# code links -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "links"),
    [
        # Sentences from abstracts of the 2024-11-28 listing (ids in the comments).
        (  # 2411.17792
            "Code is available at github.com/sftekin/h3fusion.",
            ("https://github.com/sftekin/h3fusion",),
        ),
        (  # 2411.17876
            "Code is available at https://github.com/aheldis/Toxicity-Classification.git.",
            ("https://github.com/aheldis/Toxicity-Classification",),
        ),
        (  # 2411.17702
            "We made our code available in: https://github.com/mandiehyewon/goodviews_ecg.git",
            ("https://github.com/mandiehyewon/goodviews_ecg",),
        ),
        (  # 2411.17705
            r"The experiment code is open-sourced at \href{https://github.com/Kanyooo/EEG-DCNet}{here}.",
            ("https://github.com/Kanyooo/EEG-DCNet",),
        ),
        (  # 2411.17928
            r"The MapEval library\footnote{\texttt{https://github.com/JokerJohn/Cloud\_Map\_Evaluation}}",
            ("https://github.com/JokerJohn/Cloud_Map_Evaluation",),
        ),
        (  # 2411.18211
            r"Our project page is at \url{https://github.com/TimeMarker-LLM/TimeMarker/}.",
            ("https://github.com/TimeMarker-LLM/TimeMarker",),
        ),
        (  # 2411.18250: the same URL as link and label
            r"open-sourced: \href{https://github.com/MaeChd/SurrogateVarStabe}"
            r"{https://github.com/MaeChd/SurrogateVarStabe}.",
            ("https://github.com/MaeChd/SurrogateVarStabe",),
        ),
        (  # 2411.17833
            "This article introduces ACSP-FL (https://github.com/AllanMSouza/ACSP-FL), a solution",
            ("https://github.com/AllanMSouza/ACSP-FL",),
        ),
        (  # 2411.18104
            "TemplateGSM dataset is publicly available at "
            "https://huggingface.co/datasets/math-ai/TemplateGSM. The code is available at "
            "https://github.com/iiis-ai/TemplateMath.",
            (
                "https://huggingface.co/datasets/math-ai/TemplateGSM",
                "https://github.com/iiis-ai/TemplateMath",
            ),
        ),
        (  # 2408.17175: a project page, then the code
            "(Demo: https://x-codec-audio.github.io Code: https://github.com/zhenye234/xcodec)",
            ("https://github.com/zhenye234/xcodec",),
        ),
        # Not a repository: an organisation, a user, project pages on github.io.
        ("The SPARC-X project (https://github.com/SPARC-X) provides", ()),  # 2411.18024
        ("checkpoints used in this work at https://huggingface.co/Xu-Ouyang.", ()),  # 2411.17691
        (r"\href{https://eduardzamfir.github.io/moceir/}{\texttt{x.github.io/MoCE-IR/}}", ()),
        (r"results and interactive demos: \url{cat-4d.github.io}.", ()),  # 2411.18613
        ("gist.github.com/a/b, git@github.com:a/b.git, github.com/orgs/a/people", ()),
        ("huggingface.co/papers/2401.00001 and huggingface.co/docs/hub/index", ()),
        # Deeper links name their repository; GitLab groups nest.
        (
            "https://github.com/a/b/tree/main/src?x=1 and www.github.com/A/B.git",
            ("https://github.com/a/b",),
        ),
        (
            "http://gitlab.com/group/sub/project/-/tree/main and gitlab.com/a/b.",
            ("https://gitlab.com/group/sub/project", "https://gitlab.com/a/b"),
        ),
        (
            "huggingface.co/spaces/o/demo, https://huggingface.co/meta-llama/Llama-3.1-8B.",
            (
                "https://huggingface.co/spaces/o/demo",
                "https://huggingface.co/meta-llama/Llama-3.1-8B",
            ),
        ),
        (
            "github.com/x/y>z|w <github.com/p/q|label>",
            ("https://github.com/x/y", "https://github.com/p/q"),
        ),
        (
            " ".join(f"github.com/o/r{n}" for n in range(5)),
            tuple(f"https://github.com/o/r{n}" for n in range(3)),
        ),
    ],
)
def test_code_links(text: str, links: tuple[str, ...]) -> None:
    assert code_links(paper(1, summary=text)) == links


def test_the_abstract_comes_before_the_comment() -> None:
    # The comment of 1706.00679v3 (API capture, 100 entries).
    comment = (
        "Final version, 6 figures, Python code and Jupyter notebook available at "
        "https://github.com/ydecastro/super-resolution-testing"
    )
    assert code_links(paper(1, comment=comment)) == (
        "https://github.com/ydecastro/super-resolution-testing",
    )
    both = paper(1, summary="See github.com/a/first.", comment=comment)
    assert code_links(both) == (
        "https://github.com/a/first",
        "https://github.com/ydecastro/super-resolution-testing",
    )


# venue ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "expected"),
    [
        # Comments from the corpus's API captures.
        (
            "39th Conference on Neural Information Processing Systems (NeurIPS 2025); "
            "Project Website: rdd-neurips.github.io",
            "NeurIPS 2025",
        ),
        (
            "Accepted at the 16th IEEE International Conference on Software Testing, "
            "Verification and Validation (ICST) 2023",
            "ICST 2023",
        ),
        (
            "Accepted to the ACM SIGSOFT International Symposium on Software Testing and "
            "Analysis (ISSTA), 2020",
            "ISSTA 2020",
        ),
        (
            "Accepted for publication at 2025 IEEE Conference on Software Testing, "
            "Verification and Validation (ICST)",
            "ICST 2025",
        ),
        (
            "11 pages, 18th IEEE International Conference on Software Testing, Verification "
            "and Validation (ICST) 2025",
            "ICST 2025",
        ),
        (
            "In proceedings of the 19th IEEE International Conference on Software Testing, "
            "Verification and Validation 2026 (ICST '26)",
            "ICST '26",
        ),
        (
            "Accepted for publication at the 7th International Workshop on Deep Learning for "
            "Testing and Testing for Deep Learning (DeepTest 2026), co-located with ICSE 2026",
            "DeepTest 2026",
        ),
        (
            "4 pages, to appear in the Proceedings of the 17th International Workshop on "
            "Search-Based and Fuzz Testing (SBFT@ICSE 2024)",
            "SBFT@ICSE 2024",
        ),
        (
            "53 pages. Added result on monotonicity testing. Abridged version to appear in "
            "Symposium on Discrete Algorithms (SODA), 2021",
            "SODA 2021",
        ),
        (
            '14 pages; to appear in "Algorithmica". Part of this work has been presented at '
            "the ICALP 2011 Group Testing Workshop; arXiv:1106.3680",
            "Algorithmica",
        ),
        (
            "To be published in: 2025 IEEE Conference on Software Testing, Verification and "
            "Validation (ICST)",
            "ICST 2025",
        ),
        (
            "8 pages, accepted at the 6th International Workshop on Metamorphic Testing (MET'21)",
            "MET'21",
        ),
        (
            "Accepted for Software Testing, Verification, and Reliability journal. (arXiv admin "
            "note: text overlap with arXiv:2107.00906 - This is an earlier study that this study "
            "extends)",
            "Software Testing, Verification, and Reliability journal",
        ),
        (
            "Journal of Software: Testing, Verification and Reliability (2022)",
            "Journal of Software: Testing, Verification and Reliability (2022)",
        ),
        (
            'Full version of the conference paper "Compressed Sensing with Probabilistic '
            'Measurements: A Group Testing Solution" appearing in proceedings of the 47th '
            "Annual Allerton Conference on Communication, Control, and Computing, 2009 "
            "(arXiv:0909.3508). To appear in IEEE Transactions on Information Theory",
            "IEEE Transactions on Information Theory",
        ),
        (
            "Accepted at 10th IEEE International Conference on Software Testing, Verification "
            "and Validation",
            "10th IEEE International Conference on Software Testing, Verification and…",
        ),
        # Submitted, under review, or no venue at all: nothing.
        (
            "(v0), Submitted to IEEE International Workshop on Automated and Intelligent "
            "Software Testing (AIST 2020)",
            None,
        ),
        (
            "26 pages, 1 figure, submitted to Software Testing, Vertification and Reliability "
            "journal",
            None,
        ),
        (
            "Currently under review at Journal of Software Testing, Verification and Reliability",
            None,
        ),
        ("8 pages, 3 figures. Published version", None),
        ("62 pages including 16 figures and 9 tables. Submitted to Acta Astronomica.", None),
        ("Web Testing, GUI Testing, front-end, survey, SBST, AI, fuzzing", None),
        (
            'Extended version of paper "The Complexity of Testing Message-Passing Concurrency" '
            "on POPL 2026",
            None,
        ),
        ("44 pages, editors for the proceedings: Yanling Chen and A. J. Han Vinck", None),
        # How ML papers say it.
        ("Accepted to NeurIPS 2025", "NeurIPS 2025"),
        ("Accepted at ICLR 2025 as an oral presentation. 10 pages", "ICLR 2025 (oral)"),
        ("ICLR 2025 (Oral)", "ICLR 2025 (oral)"),
        ("NeurIPS 2025 Spotlight; code at https://github.com/x/y", "NeurIPS 2025 (spotlight)"),
        ("Accepted as a spotlight at NeurIPS 2025", "NeurIPS 2025 (spotlight)"),
        ("EMNLP 2025 Main Conference", "EMNLP 2025 (main)"),
        ("Accepted to Findings of ACL 2025", "Findings of ACL 2025"),
        ("ACL 2025 (Findings), 9 pages", "Findings of ACL 2025"),
        ("Published as a conference paper at ICLR 2025", "ICLR 2025"),
        ("To appear in Phys. Rev. Lett.", "Phys. Rev. Lett."),
        ("Under review at ICLR 2026", None),
        ("Submitted to NeurIPS 2025. Code: https://github.com/x/y", None),
        ("Camera-ready version for ICML 2025", None),
    ],
)
def test_venue_from_the_comment(comment: str, expected: str | None) -> None:
    assert venue(paper(1, comment=comment)) == expected


@pytest.mark.parametrize(
    ("journal_ref", "expected"),
    [
        ("Phys. Rev. B 85, 115117 (2012)", "Phys. Rev. B 85, 115117 (2012)"),
        ("Annals of Physics 324, 523 (2009).", "Annals of Physics 324, 523 (2009)"),
        ("International Conference on Machine Learning (ICML) 2024", "ICML 2024"),
        ("2023 International Joint Conference on Neural Networks (IJCNN)", "IJCNN 2023"),
        (
            "In Proc. ACM SIGSOFT International Symposium on Software Testing and Analysis "
            "(ISSTA 2020), pages 14-26. ACM, 2020",
            "ISSTA 2020",
        ),
        (
            "Proceedings Royal Society A, 480:20230941, 2024",
            "Proceedings Royal Society A, 480:20230941, 2024",
        ),
        (
            "7th U.S. National Technical Meeting of the Combustion Institute, Atlanta, Georgia, "
            "USA, March 20-23, 2011, vol. 4, pp. 2483-2496. "
            "https://www.gbv.de/dms/tib-ub-hannover/668675667.pdf",
            "7th U.S. National Technical Meeting of the Combustion Institute, Atlanta…",
        ),
    ],
)
def test_the_journal_reference_is_the_venue(journal_ref: str, expected: str) -> None:
    # The journal reference wins over the comment: it is what arXiv records.
    assert venue(paper(1, journal_ref=journal_ref, comment="Accepted to ICML 2099")) == expected


HOSTILE = 100_000


@pytest.mark.parametrize("filler", ["A. ", "Phys. ", "(AB) ", "A.; ", "x "])
def test_only_the_start_of_a_huge_comment_is_read_for_a_venue(filler: str) -> None:
    """Issue 22, finding 13: `venue()` was quadratic in "A. A. A. …" (5 s at 32k characters)
    and Discord renders it per channel on the event loop. It is linear now, and reads the
    first `VENUE_SOURCE_CHARS` only (measured: BENCHMARKS.md, "venue() on hostile text")."""
    padding = filler * (HOSTILE // len(filler))
    named = "Accepted at ICLR 2025. "
    assert venue(paper(1, comment=named + padding)) == "ICLR 2025"
    assert venue(paper(1, comment=padding + named)) is None  # past what is read
    found = venue(paper(1, comment="Accepted at " + padding))
    assert found is None or len(found) <= VENUE_CHARS


def test_only_the_start_of_a_huge_journal_reference_is_read() -> None:
    cited = "Proceedings of NeurIPS (NIPS) " + "(AB) " * (HOSTILE // 5) + "2025"
    found = venue(paper(1, journal_ref=cited))
    assert found is not None and found.startswith("NeurIPS (NIPS) (AB)")  # no year read
    assert len(found) <= VENUE_CHARS


# the whole corpus -------------------------------------------------------------------------


def test_every_corpus_paper_gives_well_formed_links_and_short_venues() -> None:
    papers = [p for ps in corpus_papers().values() for p in ps]
    assert len(papers) > 1700
    with_link = with_venue = 0
    for p in papers:
        links = code_links(p)
        text = (p.summary + " " + (p.comment or "")).replace("\\_", "_").lower()
        assert len(links) <= MAX_CODE_LINKS and len(set(links)) == len(links), p.id
        for url in links:
            assert WELL_FORMED.match(url), (p.id, url)
            assert not url.endswith((".", ".git")), (p.id, url)
            assert url.removeprefix("https://").lower() in text, (p.id, url)
        found = venue(p)
        if found is not None:
            assert found.strip() == found and 2 <= len(found) <= VENUE_CHARS, (p.id, found)
            assert "\n" not in found and "http" not in found, (p.id, found)
        if p.journal_ref:
            assert found is not None, p.id
        with_link += bool(links)
        with_venue += found is not None
    assert with_link > 50 and with_venue > 150


def test_the_1504_paper_day_counted_independently() -> None:
    """Each count against one from the raw XML that shares no code with `bot.links`."""
    papers = corpus_papers()[LARGE]
    assert len(papers) == 1504
    root = etree.parse(str(CORPUS / LARGE)).getroot()
    repository = re.compile(
        r"(?<![\w.])(?:github\.com|gitlab\.com|huggingface\.co)/(?:datasets/|spaces/)?[\w.-]+/\w"
    )
    items = list(root.iter("item"))
    named = sum(1 for item in items if repository.search(item.findtext("description") or ""))
    referenced = sum(
        1 for item in items if item.findtext("{http://arxiv.org/schemas/atom}journal_reference")
    )
    assert sum(1 for p in papers if code_links(p)) == named == 54
    assert sum(1 for p in papers if venue(p)) == referenced == 97  # the listing has no comments
    assert sum(1 for p in papers if code_links(p) and venue(p)) == 3


def test_a_paper_with_code_and_venue_from_the_corpus() -> None:
    (p,) = [p for p in corpus_papers()[LARGE] if p.id == "2411.18388"]
    assert code_links(p) == ("https://github.com/Criscraft/PredefinedFilterNetworks",)
    assert (
        venue(p) == "IJCNN 2023"
    )  # "2023 International Joint Conference on Neural Networks (IJCNN)"


def test_a_terminal_shows_the_venue_and_the_code_link() -> None:
    shown = paper(1, summary="Code at \\url{https://github.com/a/b}.", comment="ICLR 2025 (Oral)")
    lines = format_paper(shown).splitlines()
    assert lines[1] == "  Ada Lovelace, Alan Turing · cs.LG · 2026-11-20 · ICLR 2025 (oral)"
    assert lines[2:4] == ["  https://arxiv.org/abs/2611.00001", "  Code: https://github.com/a/b"]
    hostile = paper(1, journal_ref="\x1b]8;;http://evil\x07Nature\x1b]8;;\x07 \x1b[2J")
    assert "\x1b" not in format_paper(hostile) and "\x07" not in format_paper(hostile)


# the paper's own facts --------------------------------------------------------------------


def test_html_url_is_the_versioned_rendering() -> None:
    assert paper(1, version=3).html_url == "https://arxiv.org/html/2611.00001v3"
    old = replace(paper(1), id="astro-ph/0601001")
    assert old.html_url == "https://arxiv.org/html/astro-ph/0601001v1"


def test_journal_ref_survives_json_and_old_json_still_loads() -> None:
    p = paper(1, journal_ref="Phys. Rev. B 85, 115117 (2012)", comment="8 pages")
    assert Paper.from_json(p.to_json()) == p
    old = p.to_json().replace(', "journal_ref": "Phys. Rev. B 85, 115117 (2012)"', "")
    assert "journal_ref" not in old
    assert Paper.from_json(old) == replace(p, journal_ref=None)


def test_the_corpus_stays_outside_the_repository() -> None:
    assert not list(Path(__file__).resolve().parents[1].rglob("arxiv_api_*.xml"))
