"""Plain text for a terminal: `papers-bot recent`'s output and the console platform's.

One line per field, control characters (terminal escape sequences) removed from all text
that comes from arXiv.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence

from bot import explain, wording
from bot.links import code_links, venue
from bot.models import Digest, Paper

ABSTRACT_CHARS = 300


def safe(text: str) -> str:
    """One line, with control characters (terminal escape sequences) removed."""
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\t\n")
    return " ".join(text.split())


def authors(names: Sequence[str]) -> str:
    return wording.authors([safe(n) for n in names])


def format_paper(paper: Paper, *, width: int = 88) -> str:
    abstract = safe(paper.summary)
    if len(abstract) > ABSTRACT_CHARS:
        abstract = abstract[: ABSTRACT_CHARS - 1].rstrip() + "…"
    meta = f"{authors(paper.authors)} · {safe(paper.primary_category)} · {paper.published.date()}"
    where = venue(paper)
    if where:
        meta += f" · {safe(where)}"
    lines = [f"• {safe(paper.title)}", f"  {meta}", f"  {paper.abs_url}"]
    code = code_links(paper)
    if code:
        lines.append(f"  Code: {code[0]}")
    if paper.comment:
        lines.append(f"  Comment: {safe(paper.comment)}")
    lines += textwrap.wrap(abstract, width=width, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)


def format_digest(digest: Digest) -> str:
    header = f"{digest.channel} · {digest.day} · {len(digest.items)} new paper(s)"
    parts = [header, "=" * min(len(header), 88)]
    for keyword, items in digest.by_keyword():
        parts.append(f"\n## {safe(keyword)} ({len(items)})")
        for item in items:
            text = format_paper(item.paper)
            if item.revised:
                text = text.replace("• ", f"• New version v{item.paper.version}: ", 1)
            if len(item.keywords) > 1:
                text += "\n  Also matches: " + ", ".join(safe(k) for k in item.keywords[1:])
            if item.why is not None:
                text += f"\n  {safe(explain.line(item.why))}"
            parts.append(text)
    if digest.more:
        parts.append(f"\n{wording.more_papers(digest.more)}")
    if not digest.items:
        parts.append("No new papers.")
    return "\n".join(parts) + "\n"
