"""What a paper says about itself beyond arXiv's links: its code and where it was accepted.

Pure functions over a `Paper`'s text. `code_links` finds repositories named in the abstract
or comment (GitHub, GitLab, Hugging Face), `venue` the conference or journal from the
journal reference or the comment. Both read what authors write, in the forms they write it
("Code is available at https://github.com/x/y.", `\\url{github.com/x/y}`, "Accepted to
ICLR 2025 as an oral"); neither guesses: no link or venue is better than a wrong one.
"""

from __future__ import annotations

import re

from bot.models import Paper

MAX_CODE_LINKS = 3
MAX_URL_CHARS = 200
VENUE_CHARS = 80
VENUE_SOURCE_CHARS = 1000
"""Characters of a comment or journal reference read for a venue: authors name it in the
first few hundred (the longest comment in the shared corpus has 449 characters), and
arXiv does not bound a comment."""

# A host not preceded by a name character (so `gist.github.com`, `notgithub.com`,
# `git@github.com:` are not it), then the path up to whatever can't be part of it.
_REPO_URL = re.compile(
    r"(?<![\w.@/-])(?:https?://)?(?:www\.)?(?P<host>github\.com|gitlab\.com|huggingface\.co)"
    r"/(?P<path>[\w.~%/-]+)",
    re.IGNORECASE,
)
_LATEX_ESCAPE = re.compile(r"\\([_%&#~])")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_GITHUB_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_GITHUB_NOT_OWNERS = frozenset(
    {"about", "apps", "collections", "features", "marketplace", "orgs", "settings"}
    | {"sponsors", "topics", "trending", "users", "login", "search", "explore"}
)
_HF_NOT_OWNERS = frozenset(
    {"api", "blog", "collections", "docs", "join", "learn", "login", "models", "papers"}
    | {"pricing", "settings", "tasks", "organizations", "chat", "posts", "spaces", "datasets"}
)
_HF_KINDS = frozenset({"datasets", "spaces"})
_GITLAB_PAGES = frozenset({"-", "tree", "blob", "raw", "issues", "merge_requests", "wikis"})


def code_links(paper: Paper) -> tuple[str, ...]:
    """Repository URLs the abstract or comment names, as `https://host/owner/name`, in the
    order written, each once (GitHub compared without case), at most `MAX_CODE_LINKS`.
    A project page (`*.github.io`), a user or organisation alone, or a file inside a
    repository's tree counts as its repository, or not at all."""
    found: list[str] = []
    seen: set[str] = set()
    for text in (paper.summary, paper.comment or ""):
        for match in _REPO_URL.finditer(_LATEX_ESCAPE.sub(r"\1", text)):
            url = _repository(match["host"].lower(), match["path"])
            if url is None or len(url) > MAX_URL_CHARS:
                continue
            key = url.lower() if "//github.com/" in url else url
            if key not in seen:
                seen.add(key)
                found.append(url)
                if len(found) == MAX_CODE_LINKS:
                    return tuple(found)
    return tuple(found)


def _name(segment: str) -> str | None:
    """A repository name without what a sentence, LaTeX or a clone URL leaves on it."""
    name = segment.rstrip(".-")
    name = name.removesuffix(".git").rstrip(".-")
    return name if name and _SEGMENT.fullmatch(name) else None


def _repository(host: str, path: str) -> str | None:
    parts = path.split("/")
    if host == "github.com":
        if len(parts) < 2 or parts[0].lower() in _GITHUB_NOT_OWNERS:
            return None
        owner, name = parts[0], _name(parts[1])
        if not _GITHUB_OWNER.fullmatch(owner) or name is None:
            return None
        return f"https://github.com/{owner}/{name}"
    if host == "huggingface.co":
        kind = ""
        if parts[0] in _HF_KINDS:
            kind, parts = parts[0] + "/", parts[1:]
        elif parts[0] in _HF_NOT_OWNERS:
            return None
        if len(parts) < 2 or not _SEGMENT.fullmatch(parts[0]):
            return None
        name = _name(parts[1])
        return f"https://huggingface.co/{kind}{parts[0]}/{name}" if name else None
    # GitLab: groups nest (`group/subgroup/project`); `/-/` starts the project's own pages
    # (older links go straight to `/tree/`, `/blob/`...).
    names: list[str] = []
    for part in parts:
        if not part or part in _GITLAB_PAGES:
            break
        name = _name(part)
        if name is None:
            break
        names.append(name)
        if name != part:  # `project.` or `project.git`: the sentence goes on after it
            break
    return "https://gitlab.com/" + "/".join(names) if len(names) >= 2 else None


# venue ---------------------------------------------------------------------------------

_NOT_ACCEPTED = re.compile(
    r"\b(?:submitted|submission|under review|in review|under consideration|rejected"
    r"|withdrawn|to be submitted)\b",
    re.IGNORECASE,
)
# What an author writes before the venue of their paper: "Accepted to", "Accepted as an
# oral at", "accepted for publication in", "To appear in", "Published at", "Presented at".
_ACCEPTED = re.compile(
    r"\b(?:accepted|to\s+appear|to\s+be\s+(?:published|presented)|published|presented)"
    r"(?:\s+as\s+(?:an?\s+)?[\w -]{1,30}?|\s+for\s+(?:publication|presentation)"
    r"|\s+for\s+(?:an?\s+)?(?:oral|spotlight|poster)(?:\s+presentation)?)?"
    r"\s+(?:to|at|by|in|on|for|into)\b:?\s+(?:the\s+)?(?P<venue>\S.*)",
    re.IGNORECASE,
)
# A segment that is a venue by itself: "39th Conference on Neural Information Processing
# Systems (NeurIPS 2025)", "In Proceedings of the 19th IEEE International Conference ...".
_NAMED = re.compile(
    r"^(?:(?i:in\s+)?(?i:(?:the\s+)?proceedings\s+of|proc\.\s+of)\s+)?(?i:the\s+)?"
    r"(?P<venue>.{0,40}?\b(?:Conference|Workshop|Symposium|Journal|Transactions)\b.*)"
)
_ACRONYM = r"[A-Z][\w@&/-]{0,24}?[A-Za-z](?:\s[A-Z][\w@&/-]{0,24}?[A-Za-z])?"
_YEAR = r"(?:19|20)\d{2}"
_SHORT_YEAR = rf"'\d{{2}}|{_YEAR}"
# "ICLR 2025 (oral)", "NeurIPS 2025 Spotlight", "EMNLP 2025 main", "ACL 2025 Findings".
_MARKED = re.compile(
    rf"(?<![\w@])(?P<venue>{_ACRONYM})\s?(?P<year>{_SHORT_YEAR})\s*[(\[]?\s*"
    r"(?P<mark>(?i:oral|spotlight|poster|main|findings))\b"
)
_FINDINGS = re.compile(rf"\bFindings\s+of\s+(?:the\s+)?(?P<venue>{_ACRONYM})\s?(?P<year>{_YEAR})")
_MARK = re.compile(r"\b(oral|spotlight|poster)\b", re.IGNORECASE)
_PAREN_ACRONYM = re.compile(rf"\((?P<acronym>{_ACRONYM})(?:\s?(?P<year>{_SHORT_YEAR}))?\)")
_PROCEEDINGS = re.compile(
    r"^(?:(?:in\s*)?(?:proceedings|proc\.)\s+of\s+|in:?\s+(?=[A-Z])|the\s+)(?:the\s+)?", re.I
)
_PUNCTUATION = " \t.,;:-–—\"'“”‘’`{}"
_YEAR_AFTER = re.compile(rf"\s*,?\s*(?P<year>{_YEAR})\b")  # matched from a position
_ANY_YEAR = re.compile(rf"\b{_YEAR}\b")
_VENUE_END = re.compile(
    r"\s*(?:https?://|www\.|\(arXiv|,?\s*\d+\s*pages\b|\s+as\s+(?:an?\s+)?(?i:oral|spotlight"
    r"|poster|long|short|full|main|regular|workshop)\b)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.;!?])\s+|\s+/\s+|\s*;\s*")
# "Phys. Rev. Lett.", "Proc. of", "pp.": a full stop that ends no sentence.
_ABBREVIATION = re.compile(r"(?:^|[\s(])(?:[A-Z][a-z]{0,4}|pp|vol|no|eds?|al|vs|cf)\.$")
_COUNTS = re.compile(
    r"^(?:\(?\s*v\d+\s*\)?[,:]?\s*)?(?:\d+\s*(?:\+\s*\d+\s*)?(?:pages?|pp|figures?|figs?|tables?)"
    r"\b[^,.;]*[,.;]?\s*(?:and\s+)?)+",
    re.IGNORECASE,
)


def venue(paper: Paper) -> str | None:
    """Where the paper was accepted, short: the journal reference when there is one, else
    what the comment says ("NeurIPS 2025", "ICLR 2025 (oral)", "Findings of ACL 2025").
    None when the comment names no venue or only one the paper was submitted to."""
    if paper.journal_ref and paper.journal_ref.strip():
        return _short(" ".join(paper.journal_ref[:VENUE_SOURCE_CHARS].split()))
    if not paper.comment:
        return None
    for segment in _segments(" ".join(paper.comment[:VENUE_SOURCE_CHARS].split())):
        if _NOT_ACCEPTED.search(segment):
            continue
        found = _from_segment(segment)
        if found:
            return found
    return None


def _segments(comment: str) -> list[str]:
    """The comment's sentences and `;`-separated parts, without their page counts."""
    parts: list[list[str]] = []  # each part's pieces: joined once, at the end
    for piece in _SENTENCE_END.split(comment):
        if parts and _ABBREVIATION.search(parts[-1][-1]):  # the part ends as its last piece
            parts[-1].append(piece)
        elif piece.strip():
            parts.append([piece.strip()])
    return [_COUNTS.sub("", " ".join(p)).strip() for p in parts]


def _from_segment(segment: str) -> str | None:
    findings = _FINDINGS.search(segment)
    if findings:
        return f"Findings of {findings['venue']} {findings['year']}"
    accepted = _ACCEPTED.search(segment)
    if accepted:
        return _short(accepted["venue"], mark=_MARK.search(segment))
    marked = _MARKED.search(segment)
    if marked and _is_acronym(marked["venue"]):
        mark = marked["mark"].lower()
        if mark == "findings":
            return f"Findings of {marked['venue']} {marked['year']}"
        return f"{marked['venue']} {marked['year']} ({mark})"
    named = _NAMED.match(segment)
    if named:
        return _short(named["venue"])
    return None


def _short(phrase: str, mark: re.Match[str] | None = None) -> str | None:
    """The venue named by `phrase`: its acronym and year when it gives them
    ("... (ICST 2025)", "... (ICST), 2025", "2025 IEEE ... (ICST)"), else the phrase
    without what follows the venue, at most `VENUE_CHARS`."""
    end = _VENUE_END.search(phrase)
    if end:
        phrase = phrase[: end.start()]
    kept = phrase.strip(_PUNCTUATION).rstrip(" ([")
    if phrase[phrase.find(kept) + len(kept) :].startswith(".") and _ABBREVIATION.search(kept + "."):
        kept += "."  # "Phys. Rev. Lett."
    phrase = _PROCEEDINGS.sub("", kept).strip()
    short = _acronym(phrase)
    found = short or phrase
    if len(found) < 2:
        return None
    if mark:
        found += f" ({mark[1].lower()})"
    if len(found) > VENUE_CHARS:
        cut = found[: VENUE_CHARS - 1]
        head, space, _ = cut.rpartition(" ")
        found = (head if space and len(head) > VENUE_CHARS // 2 else cut).rstrip(" ,;:") + "…"
    return found


def _acronym(phrase: str) -> str | None:
    anywhere = _any_year(phrase)  # once: the phrase can hold many acronyms
    for match in _PAREN_ACRONYM.finditer(phrase):
        if not _is_acronym(match["acronym"]):
            continue
        if match["year"]:
            return match.group()[1:-1]
        year = _year_after(phrase, match.end()) or anywhere
        if year:
            return f"{match['acronym']} {year}"
    return None


def _is_acronym(words: str) -> bool:
    """`ICST`, `NeurIPS`, `IEEE AITest`: two capitals or more in every word."""
    return all(sum(ch.isupper() for ch in word) >= 2 for word in words.split())


def _year_after(phrase: str, start: int) -> str | None:
    found = _YEAR_AFTER.match(phrase, start)
    return found["year"] if found else None


def _any_year(phrase: str) -> str | None:
    found = _ANY_YEAR.search(phrase)
    return found.group() if found else None
