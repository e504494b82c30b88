import re
from datetime import date
from pathlib import Path

import pytest

from adapters.markdown import MarkdownPublisher, render, row
from bot.models import Channel, Digest, DigestItem
from tests.factories import paper
from tests.seed import papers_from_seed as _papers_from_seed
from tests.seed import seed_path as _seed


def test_reproduces_the_seed_readme_byte_for_byte() -> None:
    seed = _seed().read_text(encoding="utf-8")
    papers = _papers_from_seed(seed)
    assert sum(len(p) for p in papers.values()) == 40
    day = date.fromisoformat(re.search(r"Last update: (\S+)", seed)[1])  # type: ignore[index]
    assert render(papers, day=day, kept=100) == seed


@pytest.mark.parametrize(
    ("comment", "cell"),
    [
        (None, ""),
        ("Work in progress", "Work in progress"),
        ("exactly twenty chars", "exactly twenty chars"),
        (
            "twenty-one characters",
            "<details><summary>twent...</summary><p>twenty-one characters</p></details>",
        ),
    ],
)
def test_comments_over_20_characters_collapse_behind_their_first_5(
    comment: str | None, cell: str
) -> None:
    assert row(paper(1, comment=comment)).endswith(f"| {cell} |")


def test_the_table_keeps_the_seeds_columns_for_code_links_and_venues() -> None:
    """The seed shows a repository where the paper names it (the Abstract or Comment cell)
    and has no venue column; a row stays what the seed would write."""
    plain = paper(1, summary="Code: https://github.com/x/y.", comment="Accepted to ICLR 2025")
    cited = paper(
        1,
        summary="Code: https://github.com/x/y.",
        comment="Accepted to ICLR 2025",
        journal_ref="Phys. Rev. B 85, 115117 (2012)",
    )
    assert row(cited) == row(plain)
    assert row(plain).count("https://github.com/x/y") == 1
    assert "https://arxiv.org/html/" not in row(plain)


def test_pipes_and_newlines_never_break_a_row() -> None:
    nasty = paper(1, title="A | B\nC [x]", summary="line one\nline | two <b>", comment="a|b\n" * 10)
    line = row(nasty)
    assert "\n" not in line
    cells = re.split(r"(?<!\\)\|", line)
    assert len(cells) == 6  # four cells between the outer pipes
    assert "A \\| B C \\[x\\]" in line
    assert "&lt;b>" in line


async def test_publisher_rewrites_the_file_and_reports_delivery(tmp_path: Path) -> None:
    target = tmp_path / "out" / "README.md"
    digest = Digest(
        channel=Channel("markdown", str(target)),
        day=date(2026, 11, 23),
        keywords=("reward model",),
        items=[DigestItem(paper(1), ("reward model",))],
        recent={"reward model": [paper(1), paper(2)]},
    )
    delivered: list[str] = []

    async def record(ids: object) -> None:
        delivered.extend(ids)  # type: ignore[arg-type]

    await MarkdownPublisher(kept=100).publish(digest, record)
    text = target.read_text(encoding="utf-8")
    assert "Last update: 2026-11-23" in text
    assert text.count("| **[Paper number") == 2
    assert delivered == [paper(1).id]
    assert list(target.parent.iterdir()) == [target]


def test_html_in_a_title_reaches_the_readme_as_text() -> None:
    """Issue 22, finding 15: `<img>` and `<a href>` in a title reached the README as HTML."""
    hostile = paper(1, title='<img src=x onerror=alert(1)> <a href="https://evil.example">x</a>')
    line = row(hostile)
    assert "<img" not in line and "<a " not in line
    assert line.startswith(
        '| **[&lt;img src=x onerror=alert(1)> &lt;a href="https://evil.example">x&lt;/a>]('
    )


@pytest.mark.parametrize(
    ("title", "text"),
    [
        ("Ends in a backslash \\", "Ends in a backslash \\\\"),
        ("Escapes \\] a bracket", "Escapes \\\\\\] a bracket"),
        ("$\\alpha$-divergence \\| pipes", "$\\\\alpha$-divergence \\\\\\| pipes"),
    ],
)
def test_a_backslash_in_a_title_never_breaks_its_link(title: str, text: str) -> None:
    """Issue 22, finding 15: a trailing backslash escaped the `]` that closes the link."""
    line = row(paper(1, title=title))
    assert line.startswith(f"| **[{text}](http://arxiv.org/abs/2611.00001v1)** |")


def test_a_trailing_backslash_in_an_abstract_or_comment_closes_no_tag() -> None:
    line = row(paper(1, summary="ends in \\", comment="a comment that ends in \\"))
    assert "<p>ends in &#92;</p>" in line
    assert "<p>a comment that ends in &#92;</p></details> |" in line
