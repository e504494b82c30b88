import html
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.markdown import MarkdownPublisher, render, row
from bot.models import Channel, Digest, DigestItem, Paper
from tests.conftest import SEEDS
from tests.factories import paper

_ROW = re.compile(
    r"^\| \*\*\[(?P<title>.*)\]\(http://arxiv\.org/abs/(?P<id>[^)]+)v(?P<v>\d+)\)\*\* "
    r"\| (?P<date>\d{4}-\d\d-\d\d) \| <details><summary>Show</summary><p>(?P<abs>.*)</p>"
    r"</details> \| (?P<comment>.*) \|$"
)
_COLLAPSED = re.compile(r"^<details><summary>.{5}\.\.\.</summary><p>(.*)</p></details>$")


def _seed() -> Path:
    seeds = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []
    if not seeds:
        pytest.skip(f"the shared seeds are absent: {SEEDS}")
    return seeds[0]


def _papers_from_seed(text: str) -> dict[str, list[Paper]]:
    sections: dict[str, list[Paper]] = {}
    current: list[Paper] = []
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:], [])
        match = _ROW.match(line)
        if match is None:
            continue
        when = datetime.fromisoformat(match["date"]).replace(tzinfo=UTC)
        comment = match["comment"]
        collapsed = _COLLAPSED.match(comment)
        current.append(
            Paper(
                id=match["id"],
                version=int(match["v"]),
                title=match["title"],
                authors=(),
                summary=html.unescape(match["abs"]),
                comment=html.unescape(collapsed[1] if collapsed else comment) or None,
                primary_category="",
                categories=(),
                published=when,
                updated=when,
            )
        )
    return sections


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
