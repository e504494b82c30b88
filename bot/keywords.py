"""What a keyword may be, and how it is compared.

A keyword is a phrase searched in titles and abstracts. It is quoted into the arXiv
query as a phrase, so only characters that cannot change the query's meaning are let in.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 100
_OPERATORS = frozenset({"AND", "OR", "ANDNOT", "NOT"})
_ALLOWED_PUNCTUATION = frozenset(" -'.+/&,_")
_NAMED = {
    '"': "quotes",
    "(": "parentheses",
    ")": "parentheses",
    "[": "brackets",
    "]": "brackets",
    ":": "field prefixes like au:",
}


class KeywordError(ValueError):
    """A keyword that cannot be subscribed to; the message is meant for the user."""


def clean(raw: str) -> str:
    """The keyword as stored and shown: trimmed, inner whitespace collapsed.

    Raises KeywordError with a one-line reason when the keyword is not acceptable.
    """
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch not in " \t" for ch in raw):
        raise KeywordError("A keyword can't contain control or invisible characters.")
    keyword = " ".join(raw.split())
    if not keyword:
        raise KeywordError("Give a keyword, for example: add reward model")
    if len(keyword) > MAX_LENGTH:
        raise KeywordError(f"A keyword can have at most {MAX_LENGTH} characters.")
    for ch in keyword:
        if ch in _NAMED:
            raise KeywordError(
                f"A keyword can't contain {_NAMED[ch]}: it is already searched as one phrase "
                "in titles and abstracts."
            )
        if not (ch.isalnum() or ch in _ALLOWED_PUNCTUATION or unicodedata.category(ch)[0] == "M"):
            raise KeywordError(
                "A keyword can contain letters, digits, spaces and - ' . + / & , _ only."
            )
    operators = sorted(_OPERATORS.intersection(keyword.split()))
    if operators:
        raise KeywordError(
            f"Search operators ({', '.join(operators)}) aren't supported: "
            "add each keyword on its own."
        )
    if not tokens(keyword):
        raise KeywordError("A keyword needs at least one letter or digit.")
    return keyword


_WORD = re.compile(r"\w+")


def _stem(token: str) -> str:
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


def tokens(text: str) -> list[str]:
    """Lower-case word tokens with a light plural stemming, as arXiv's search roughly does."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("_", " ")
    return [_stem(t) for t in _WORD.findall(folded)]


def normalize(keyword: str) -> str:
    """The identity of a keyword: `Reward  Models` and `reward model` are the same."""
    return " ".join(tokens(keyword))
