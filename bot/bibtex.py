"""Saved papers as BibTeX, in arXiv's own export format (the key is the arXiv id):

    @misc{2401.01234,
      title = {…},
      author = {A and B},
      year = {2024},
      eprint = {2401.01234},
      archivePrefix = {arXiv},
      primaryClass = {cs.CL},
      url = {https://arxiv.org/abs/2401.01234}
    }

An `@article` with a `journal` field when the paper has a journal reference. Titles keep
their LaTeX (`$\\alpha$`, `\\emph{…}`); what would break BibTeX or LaTeX is escaped: braces
that don't pair, bare `%`, `&` and `#`, a backslash that ends the text. Control characters
(a terminal's escape sequences among them) are removed: `papers-bot saved --bibtex` prints
to a terminal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bot.models import Paper

FILENAME = "saved-papers.bib"
_BARE = re.compile(r"(?<!\\)([%&#])")
_BRACE = re.compile(r"\\?[{}]")
_BRACE_TEXT = {"{": r"\textbraceleft{}", "}": r"\textbraceright{}"}
_FENCE = re.compile(r"`(?=``)")
_AND = re.compile(r"\band\b", re.IGNORECASE)


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _escape_braces(text: str) -> str:
    r"""Each brace as LaTeX's text command: BibTeX counts `\{` as a brace too."""
    return _BRACE.sub(lambda m: _BRACE_TEXT[m.group()[-1]], text)


def escape(text: str) -> str:
    """`text` as the inside of a `{…}` value: one line, its LaTeX kept where BibTeX can
    read it, its braces escaped when they don't pair."""
    out = " ".join(text.split())
    out = "".join(ch for ch in out if unicodedata.category(ch) != "Cc")
    out = out if _balanced(out) else _escape_braces(out)
    out = _BARE.sub(r"\\\1", out)
    if (len(out) - len(out.rstrip("\\"))) % 2:  # it would escape the value's closing brace
        out = out[:-1] + r"\textbackslash{}"
    return out


def author(name: str) -> str:
    """One author; a name holding the word "and" is braced, or BibTeX would split it."""
    value = escape(name)
    return f"{{{value}}}" if _AND.search(value) else value


def fields(paper: Paper) -> list[tuple[str, str]]:
    found = [
        ("title", escape(paper.title)),
        ("author", " and ".join(author(a) for a in paper.authors if a.strip())),
        ("year", str(paper.published.year)),
        ("eprint", paper.id),
        ("archivePrefix", "arXiv"),
        ("primaryClass", escape(paper.primary_category)),
        ("url", paper.abs_url),
    ]
    if paper.journal_ref:
        found.insert(3, ("journal", escape(paper.journal_ref)))
    return [(name, value) for name, value in found if value]


def entry(paper: Paper) -> str:
    kind = "article" if paper.journal_ref else "misc"
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields(paper))
    return f"@{kind}{{{paper.id},\n{body}\n}}\n"


def document(papers: Iterable[Paper]) -> str:
    """Every paper's entry, a blank line between two."""
    return "\n".join(entry(p) for p in papers)


def chunks(text: str, limit: int, size: Callable[[str], int] = len) -> list[str]:
    """`text` in pieces whose `size` is at most `limit`: cut between entries where they fit,
    else between lines, else within a line (for a file sent as messages instead)."""
    return _split(text, limit, size, ("\n\n", "\n"))


def _split(text: str, limit: int, size: Callable[[str], int], seps: Sequence[str]) -> list[str]:
    if size(text) <= limit:
        return [text] if text else []
    if not seps:
        cut = max(1, len(text) * limit // max(size(text), 1))
        while cut > 1 and size(text[:cut]) > limit:
            cut -= 1
        return [text[:cut], *_split(text[cut:], limit, size, seps)]
    sep, rest = seps[0], seps[1:]
    pieces: list[str] = []
    current = ""
    for part in text.split(sep):
        joined = f"{current}{sep}{part}" if current else part
        if size(joined) <= limit:
            current = joined
            continue
        if current:
            pieces.append(current)
        current = ""
        small = _split(part, limit, size, rest)
        pieces.extend(small[:-1])
        current = small[-1] if small else ""
    if current:
        pieces.append(current)
    return pieces


def shown(text: str, limit: int, most: int, size: Callable[[str], int] = len) -> Shown:
    """At most `most` pieces of `text` (`chunks`), and how many entries that leaves out."""
    pieces = chunks(text, limit, size)
    kept = pieces[:most]
    left = _entries(text) - _entries("\n".join(kept)) if len(pieces) > most else 0
    return Shown(kept, left)


@dataclass(frozen=True, slots=True)
class Shown:
    pieces: list[str]
    left_out: int
    """Entries (or their ends) beyond the pieces shown."""


def unfenced(text: str) -> str:
    """Three backticks in a row would close a Markdown code block: a zero-width space after
    each backtick that starts such a run breaks it (a LaTeX ``quote'' is kept)."""
    return _FENCE.sub("`\u200b", text)


def _entries(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.startswith("@"))
