"""Why a paper is posted (`[signals] explain`): the words of the paper that matched its
subscription, as the paper wrote them, and the terms that raised it in a ranked digest.

Matching compares Porter stems (`bot.keywords.tokens`), so `reward model` matches "Reward
Modeling": `words` finds the words behind the stems, with their place in the text, the way
`tokens` splits it (possessives folded, underscores split), and `why` shows them as written.
Platforms render `line(why)`, escaped like everything else and cut to their limits.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from bot.keywords import POSSESSIVE, parse, tokens, word_stems
from bot.matching import in_categories
from bot.models import Paper, Why

RANKED_TERMS = 3
"""Terms shown for what raised a paper in a ranked digest."""
SHOWN_MATCHES = 2
"""Distinct matched spellings shown (the title's first)."""
WORDS_CHARS = 60
"""Characters of one matched spelling shown (a long author list, a long phrase)."""
LINE_CHARS = 280
"""The whole line at most: platforms cut it to this (and to their own limits)."""
WORDS_CACHED = 2048
"""Texts (titles, abstracts, author names) whose words are kept: a day's matched papers."""

_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class _Word:
    start: int
    end: int
    stem: str


@dataclass(frozen=True, slots=True)
class _Words:
    """A text's words, kept as tuples of numbers and strings only: the garbage collector
    leaves those alone, where a `_Word` each would make every full collection longer."""

    norm: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    stems: tuple[str, ...]


@functools.lru_cache(maxsize=WORDS_CACHED)
def _words_of(text: str) -> _Words:
    """Kept for the last `WORDS_CACHED` texts: a digest explains the same papers in every
    channel that gets them."""
    norm = unicodedata.normalize("NFKC", text)
    possessive = {m.start() + 1 for m in POSSESSIVE.finditer(norm)}
    found = [m for m in _WORD.finditer(norm) if m.start() not in possessive]
    stems = word_stems([m.group() for m in found])
    spans = [(m.start(), m.end(), s) for m, of in zip(found, stems, strict=True) for s in of]
    return _Words(
        norm,
        tuple(start for start, _, _ in spans),
        tuple(end for _, end, _ in spans),
        tuple(stem for _, _, stem in spans),
    )


def words(text: str) -> tuple[str, list[_Word]]:
    """`text` (NFKC) and its words with their spans and stems: the stems are `tokens(text)`."""
    w = _words_of(text)
    return w.norm, [_Word(*span) for span in zip(w.starts, w.ends, w.stems, strict=True)]


def spelled(text: str, phrase: Sequence[str]) -> str | None:
    """The first place `text` holds the stemmed `phrase`, as `text` writes it; else None."""
    if not phrase:
        return None
    w = _words_of(text)
    wanted, n = tuple(phrase), len(phrase)
    for i, stem in enumerate(w.stems[: len(w.stems) - n + 1]):
        if stem == wanted[0] and w.stems[i : i + n] == wanted:
            return w.norm[w.starts[i] : w.ends[i + n - 1]]
    return None


_parse = functools.lru_cache(maxsize=1024)(parse)
"""A digest explains each of a channel's keywords for each of its papers."""


def matched(paper: Paper, keyword: str) -> tuple[tuple[str, str], ...]:
    """The paper's words that answer `keyword` (its phrases, authors, categories), where."""
    expression = _parse(keyword)
    found: list[tuple[str, str]] = []
    for phrase in expression.phrases:
        stems = tokens(phrase)
        for where, text in (("title", paper.title), ("abstract", paper.summary)):
            spelling = spelled(text, stems)
            if spelling is not None:
                found.append((spelling, where))
                break
    for author in expression.authors:
        stems = tokens(author)
        found += [(name, "authors") for name in paper.authors if spelled(name, stems)][:1]
    for category in expression.categories:
        if in_categories(paper, [category]):
            found.append((category, "categories"))
    return _distinct(found)[:SHOWN_MATCHES]


def _distinct(found: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen: dict[str, tuple[str, str]] = {}
    for spelling, where in sorted(found, key=lambda f: f[1] != "title"):
        seen.setdefault(spelling.casefold(), (spelling, where))
    return tuple(seen.values())


def term_words(paper: Paper, terms: Sequence[str]) -> tuple[str, ...]:
    """Ranking terms (stems, `cat:` features) as the paper writes them, lower case: the
    first word of its title or abstract with that stem; a category as itself."""
    shown: list[str] = []
    texts = [_words_of(paper.title), _words_of(paper.summary)] if terms else []
    for term in terms:
        if term.startswith("cat:"):
            shown.append(term[4:])
            continue
        spelling = next(
            (t.norm[t.starts[i] : t.ends[i]] for t in texts for i in _places(t, term)), term
        )
        shown.append(spelling.casefold())
    return tuple(dict.fromkeys(shown))


def _places(text: _Words, stem: str) -> list[int]:
    return [i for i, s in enumerate(text.stems) if s == stem][:1]


def why(paper: Paper, keyword: str, ranked: Sequence[str] = ()) -> Why:
    return Why(keyword, matched(paper, keyword), term_words(paper, ranked))


def line(reason: Why) -> str:
    """`Why: reward model — “Reward Modeling” in the title; ranked up by: rlhf, preference`,
    plain text (platforms escape it) of at most `LINE_CHARS` characters."""
    text = f"Why: {reason.keyword}"
    if reason.matched:
        shown = ", ".join(f"“{_clip(s, WORDS_CHARS)}” in the {w}" for s, w in reason.matched)
        text += f" — {shown}"
    if reason.ranked_by:
        text += f"; ranked up by: {', '.join(reason.ranked_by)}"
    return _clip(" ".join(text.split()), LINE_CHARS)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
