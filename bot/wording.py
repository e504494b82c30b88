"""How a paper and a shortened list are worded on every platform: the authors shown, the
links under a paper, "…and N more". Adapters escape and mark these up natively."""

from __future__ import annotations

from collections.abc import Sequence

from bot.links import code_links
from bot.models import Paper

AUTHORS_SHOWN = 3
"""Names shown before "et al."."""


def authors(names: Sequence[str]) -> str:
    """`A, B, C et al.`: the first `AUTHORS_SHOWN` names; plain text, empty without any."""
    shown = ", ".join(names[:AUTHORS_SHOWN])
    return shown + (" et al." if len(names) > AUTHORS_SHOWN else "")


def links(paper: Paper) -> tuple[tuple[str, str], ...]:
    """`(label, url)` under a paper: arXiv's PDF and HTML, then the first repository the
    paper names (`Code`). Adapters leave out a URL their markup can't hold safely."""
    found = [("PDF", paper.pdf_url), ("HTML", paper.html_url)]
    found += [("Code", url) for url in code_links(paper)[:1]]
    return tuple(found)


def and_more(count: int, what: str = "") -> str:
    """`…and 7 more` (`what` after it: `…and 7 more new papers`): the end of a list cut short."""
    return f"…and {count} more {what}".rstrip()


def more_papers(count: int) -> str:
    """The line a digest cut short ends with."""
    return and_more(count, "new papers") + "."
