"""What a subscription may say, parsed into an `Expression`, and how keywords compare.

The syntax, the same in Slack, Discord, the settings file and the CLI:

    reward model                    a phrase, searched in titles and abstracts
    RLHF | reward model             either phrase
    diffusion -medical -"image segmentation"   exclusions (quote several words)
    cat:cs.CL  cat:cs               a category, or a whole archive (several: any of them)
    au:"Yoshua Bengio"              an author, alone or with a phrase

Every input either parses to an Expression (whose arXiv query is built from validated
parts, never pasted) or is refused with a KeywordError that says what to change.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import Stemmer

from bot import categories as taxonomy

MAX_LENGTH = 100
MAX_PARTS = 10
_OPERATORS = frozenset({"AND", "OR", "ANDNOT", "NOT"})
_WORD_PUNCTUATION = frozenset("-'.+/&,_")
_NAMED = {
    "(": "parentheses",
    ")": "parentheses",
    "[": "brackets",
    "]": "brackets",
    "{": "braces",
    "}": "braces",
}
_PREFIX = re.compile(r"([A-Za-z]+):")
_CATEGORY = re.compile(r"^[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?$")


class KeywordError(ValueError):
    """A subscription that cannot be accepted; the message is meant for the user."""


@dataclass(frozen=True, slots=True)
class Expression:
    phrases: tuple[str, ...] = ()
    """Any of these phrases, in the title or the abstract."""
    exclude: tuple[str, ...] = ()
    """None of these phrases."""
    categories: tuple[str, ...] = ()
    """Any of these categories or archives (`cs.CL`, `cs`)."""
    authors: tuple[str, ...] = ()
    """Any of these authors."""

    def __str__(self) -> str:
        parts = [" | ".join(self.phrases)] if self.phrases else []
        parts += [f"-{_quoted(x)}" for x in self.exclude]
        parts += [f"cat:{c}" for c in self.categories]
        parts += [f"au:{_quoted(a)}" for a in self.authors]
        return " ".join(parts)

    @property
    def key(self) -> str:
        """The identity: spelling, case, plurals and order of parts don't matter."""
        parts = ["|".join(sorted(_folded(p) for p in self.phrases))] if self.phrases else []
        parts += sorted(f"-{_folded(x)}" for x in self.exclude)
        parts += sorted(f"cat:{c}" for c in self.categories)
        parts += sorted(f"au:{_folded(a)}" for a in self.authors)
        return " ".join(parts)


def _quoted(text: str) -> str:
    return f'"{text}"' if " " in text else text


def _folded(text: str) -> str:
    return " ".join(tokens(text))


_WORD = re.compile(r"\w+")
POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")
"""The `'s` that tokens fold away (`Modeling's` is `modeling`)."""
_PORTER = Stemmer.Stemmer("porter")
"""Martin Porter's original algorithm, the stemmer of Lucene's English analysis, which is
how arXiv's search matches `abs:"reward model"` to "reward modeling"."""


def tokens(text: str) -> list[str]:
    """Lower-case word tokens, possessives folded and Porter-stemmed, as arXiv's search
    analyses both the indexed text and the query: `Reward Modeling's` -> `reward model`."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("_", " ")
    stems: list[str] = _PORTER.stemWords(_WORD.findall(POSSESSIVE.sub("", folded)))
    return stems


def word_stems(words: Sequence[str]) -> list[list[str]]:
    """`[tokens(w) for w in words]` for words without apostrophes or underscores (a word
    may still fold into several tokens), stemmed in one call to the stemmer."""
    pieces = [_WORD.findall(unicodedata.normalize("NFKC", w).casefold()) for w in words]
    stems = iter(_PORTER.stemWords([p for piece in pieces for p in piece]))
    return [[next(stems) for _ in piece] for piece in pieces]


@dataclass(frozen=True, slots=True)
class _Term:
    value: str
    prefix: str = ""
    negated: bool = False
    separator: bool = False


def _check_characters(raw: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in " \t" for ch in raw):
        raise KeywordError("A keyword can't contain control or invisible characters.")
    for ch in raw:
        if ch in _NAMED:
            raise KeywordError(
                f"A keyword can't contain {_NAMED[ch]}: use | for either phrase "
                'and -word or -"two words" to exclude.'
            )


def _lex(text: str) -> list[_Term]:
    terms: list[_Term] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "|":
            terms.append(_Term("|", separator=True))
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        prefix = ""
        match = _PREFIX.match(text, i)
        if match is not None:
            prefix = match.group(1).lower()
            if prefix not in ("cat", "au"):
                raise KeywordError(
                    f"{match.group(0)} isn't supported: only cat: (category) and au: (author) "
                    "are; titles and abstracts are always searched."
                )
            i = match.end()
        if i < n and text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise KeywordError('A quote is not closed: add the missing ".')
            value, i = text[i + 1 : end], end + 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '|"':
                i += 1
            value = text[start:i]
        value = " ".join(value.split())
        if not value:
            what = f"{prefix}:" if prefix else "-" if negated else "quotes"
            raise KeywordError(f"Nothing follows {what}: give a word or a quoted phrase.")
        terms.append(_Term(value, prefix, negated))
    return terms


def _check_phrase(value: str, what: str) -> str:
    for ch in value:
        if not (
            ch.isalnum()
            or ch == " "
            or ch in _WORD_PUNCTUATION
            or unicodedata.category(ch)[0] == "M"
        ):
            raise KeywordError(
                f"A {what} can contain letters, digits, spaces and - ' . + / & , _ only."
            )
    operators = sorted(_OPERATORS.intersection(value.split()))
    if operators:
        raise KeywordError(
            f"Search operators ({', '.join(operators)}) aren't supported: "
            'use | for either phrase and -word or -"two words" to exclude.'
        )
    if not tokens(value):
        raise KeywordError(f"A {what} needs at least one letter or digit.")
    return value


def _check_category(value: str) -> str:
    name = value.removesuffix(".*")
    if not _CATEGORY.match(name) or not taxonomy.is_known(name):
        hint = taxonomy.suggestion(name)
        more = f" Did you mean cat:{hint}?" if hint else " See https://arxiv.org/category_taxonomy"
        raise KeywordError(f"cat:{value} is not an arXiv category.{more}")
    return name


def _distinct(values: list[str], key: Callable[[str], str] = _folded) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(key(value), value)
    return tuple(seen.values())


def parse(raw: str) -> Expression:
    _check_characters(raw)
    text = " ".join(raw.split())
    if not text:
        raise KeywordError("Give a keyword, for example: add reward model")
    if len(text) > MAX_LENGTH:
        raise KeywordError(f"A keyword can have at most {MAX_LENGTH} characters.")
    segments: list[list[str]] = [[]]
    exclude: list[str] = []
    cats: list[str] = []
    authors: list[str] = []
    for term in _lex(text):
        if term.separator:
            segments.append([])
        elif term.prefix == "cat":
            if term.negated:
                raise KeywordError("Excluding a category isn't supported.")
            cats.append(_check_category(term.value))
        elif term.prefix == "au":
            if term.negated:
                raise KeywordError("Excluding an author isn't supported.")
            authors.append(_check_phrase(term.value, "author"))
        elif term.negated:
            exclude.append(_check_phrase(term.value, "keyword"))
        else:
            segments[-1].append(_check_phrase(term.value, "keyword"))
    phrases = [" ".join(words) for words in segments]
    if len(phrases) > 1 and not all(phrases):
        raise KeywordError("| needs a phrase on each side, for example: RLHF | reward model")
    expression = Expression(
        phrases=_distinct([p for p in phrases if p]),
        exclude=_distinct(exclude),
        categories=_distinct(cats, key=str),
        authors=_distinct(authors),
    )
    if not (expression.phrases or expression.categories or expression.authors):
        raise KeywordError("Say what to follow, not only what to exclude: diffusion -medical")
    parts = (expression.phrases, expression.exclude, expression.categories, expression.authors)
    if any(len(part) > MAX_PARTS for part in parts):
        raise KeywordError(f"At most {MAX_PARTS} phrases, exclusions, categories or authors.")
    return expression


def clean(raw: str) -> str:
    """The subscription as stored and shown back (normalized), or KeywordError."""
    return str(parse(raw))


@functools.lru_cache(maxsize=8192)
def normalize(keyword: str) -> str:
    """The identity of a subscription: `Reward  Models` and `reward model` are the same.
    Memoized: digests call it per paper and keyword, and each call parses."""
    try:
        return parse(keyword).key
    except KeywordError:
        return _folded(keyword)
