"""The Daily Papers README: one `## Keyword` table of the latest papers per keyword.

Byte-compatible with the seed project's output for ordinary text; unlike the seed, a `|`,
a newline or a trailing backslash in a title, abstract or comment can never break a row,
and HTML in a title is shown as text.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from bot.models import Digest, Paper
from bot.publishing import Delivered

COMMENT_COLLAPSE_OVER = 20


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _html_cell(text: str) -> str:
    # Only `<` can open a tag inside the <details> HTML; `>` and `&` stay as the seed has them.
    # A backslash at the end would escape the `<` of the closing tag that follows.
    if text.endswith("\\"):
        text = text[:-1] + "&#92;"
    return _cell(text.replace("<", "&lt;"))


def _title(paper: Paper) -> str:
    """The title as the text of its link: every backslash literal (one at the end escaped
    the link's `]`), no HTML (`<img>`, `<a href>` from arXiv shown as text)."""
    text = _one_line(paper.title).replace("\\", "\\\\").replace("<", "&lt;")
    text = _cell(text).replace("[", "\\[").replace("]", "\\]")
    return f"**[{text}]({paper.versioned_abs_url})**"


def _comment(comment: str | None) -> str:
    if not comment:
        return ""
    text = _one_line(comment)
    if len(text) > COMMENT_COLLAPSE_OVER:
        return (
            f"<details><summary>{_html_cell(text[:5])}...</summary>"
            f"<p>{_html_cell(text)}</p></details>"
        )
    return _html_cell(text)


def row(paper: Paper) -> str:
    summary = _html_cell(_one_line(paper.summary))
    abstract = f"<details><summary>Show</summary><p>{summary}</p></details>"
    return (
        f"| {_title(paper)} | {paper.updated.date().isoformat()} | {abstract} | "
        f"{_comment(paper.comment)} |"
    )


def render(papers_by_keyword: Mapping[str, Sequence[Paper]], *, day: date, kept: int) -> str:
    lines = [
        "# Daily Papers",
        "The project automatically fetches the latest papers from arXiv based on keywords.",
        "",
        "The subheadings in the README file represent the search keywords.",
        "",
        "Only the most recent articles for each keyword are retained, "
        f"up to a maximum of {kept} papers.",
        "",
        "You can click the 'Watch' button to receive daily email notifications.",
        "",
        f"Last update: {day.isoformat()}",
        "",
    ]
    for keyword, papers in papers_by_keyword.items():
        lines.append(f"## {_one_line(keyword)}")
        lines.append("| **Title** | **Date** | **Abstract** | **Comment** |")
        lines.append("| --- | --- | --- | --- |")
        lines.extend(row(p) for p in papers)
        lines.append("")
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MarkdownPublisher:
    """Rewrites the channel's file (its id is the path) on every digest."""

    platform = "markdown"
    needs_recent = True
    shows_everything = True

    def __init__(self, kept: int = 100) -> None:
        self._kept = kept

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        text = render(digest.recent, day=digest.day, kept=self._kept)
        write_atomically(Path(digest.channel.id), text)
        await delivered([item.paper.id for item in digest.items])

    async def aclose(self) -> None:
        """Nothing to let go of: each digest writes its file whole."""
