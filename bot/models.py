"""Plain data shared by the core and the adapters."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

_VERSION_SUFFIX = re.compile(r"v(\d+)$")


def split_version(short_id: str) -> tuple[str, int]:
    """`2401.00001v2` -> (`2401.00001`, 2); an id without a version is version 1."""
    match = _VERSION_SUFFIX.search(short_id)
    if match is None:
        return short_id, 1
    return short_id[: match.start()], int(match.group(1))


@dataclass(frozen=True, slots=True)
class Paper:
    id: str
    """Version-less arXiv id (`2401.00001`, `astro-ph/0601001`): the key for dedupe."""
    version: int
    title: str
    authors: tuple[str, ...]
    summary: str
    comment: str | None
    primary_category: str
    categories: tuple[str, ...]
    published: datetime
    """Submission date of v1."""
    updated: datetime
    """Date of the current version."""
    journal_ref: str | None = None
    """Where the paper was published, as the authors gave it (`Phys. Rev. B 85, 115117`)."""
    doi: str | None = None
    """The published version's DOI, as the authors gave it (`10.1103/PhysRevB.85.115117`)."""

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.id}"

    @property
    def versioned_abs_url(self) -> str:
        return f"http://arxiv.org/abs/{self.id}v{self.version}"

    @property
    def version_key(self) -> str:
        """`2401.00001v2`: what a channel remembers to announce revisions only once."""
        return f"{self.id}v{self.version}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.id}"

    @property
    def html_url(self) -> str:
        """arXiv's HTML rendering of this version (papers without LaTeX source have none)."""
        return f"https://arxiv.org/html/{self.id}v{self.version}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "version": self.version,
                "title": self.title,
                "authors": list(self.authors),
                "summary": self.summary,
                "comment": self.comment,
                "primary_category": self.primary_category,
                "categories": list(self.categories),
                "published": self.published.isoformat(),
                "updated": self.updated.isoformat(),
                "journal_ref": self.journal_ref,
                "doi": self.doi,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Paper:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            id=data["id"],
            version=int(data["version"]),
            title=data["title"],
            authors=tuple(data["authors"]),
            summary=data["summary"],
            comment=data["comment"],
            primary_category=data["primary_category"],
            categories=tuple(data["categories"]),
            published=datetime.fromisoformat(data["published"]),
            updated=datetime.fromisoformat(data["updated"]),
            journal_ref=data.get("journal_ref"),
            doi=data.get("doi"),
        )


def newest_first(papers: list[Paper]) -> list[Paper]:
    return sorted(papers, key=lambda p: (p.published, p.id), reverse=True)


def seen_keys(papers: Sequence[Paper]) -> list[str]:
    """What a channel remembers of delivered papers: the id, and the version after v1."""
    return [p.id for p in papers] + [p.version_key for p in papers if p.version > 1]


@dataclass(frozen=True, slots=True, order=True)
class Channel:
    """One destination: a Slack or Discord channel id, or a Markdown file path."""

    platform: str
    id: str

    @property
    def key(self) -> str:
        """`platform:id`, what Redis keys name. An id that is a URL (an incoming webhook,
        whose URL is its secret) is replaced by a digest of it."""
        if self.is_secret:
            return f"{self.platform}:{hashlib.sha256(self.id.encode()).hexdigest()[:20]}"
        return f"{self.platform}:{self.id}"

    @property
    def is_secret(self) -> bool:
        return "://" in self.id

    def __str__(self) -> str:
        """What logs and messages show: a URL's host and the end of its digest only."""
        if self.is_secret:
            host = urlsplit(self.id).hostname or "?"
            return f"{self.platform}:{host}/…{self.key[-6:]}"
        return self.key


@dataclass(frozen=True, slots=True)
class Why:
    """Why a paper is posted: the subscription it answers, the words of the paper that
    matched it as the paper wrote them, and in a ranked digest what raised it most."""

    keyword: str
    matched: tuple[tuple[str, str], ...] = ()
    """(words as written, where: "title", "abstract", "authors" or "categories")."""
    ranked_by: tuple[str, ...] = ()
    """The paper's words (or categories) that raised it most in the channel's ranking."""


@dataclass(frozen=True, slots=True)
class DigestItem:
    paper: Paper
    keywords: tuple[str, ...]
    """Every keyword of the channel that this paper answers, in the channel's order."""
    revised: bool = False
    """Posted before; this is a new version (channels with `revisions` on)."""
    why: Why | None = None
    """Shown under the paper (`[signals] explain`); None says nothing."""


@dataclass(slots=True)
class Digest:
    """What one channel receives from one run, grouped by keyword."""

    channel: Channel
    day: date
    keywords: tuple[str, ...]
    items: list[DigestItem] = field(default_factory=list)
    recent: dict[str, list[Paper]] = field(default_factory=dict)
    """Latest papers per keyword (used by outputs that show a full list, like Markdown)."""
    more: int = 0
    """New papers left out by the per-channel cap; outputs say "and N more"."""
    resumed: bool = True
    """An earlier run may have posted part of this day's digest to the channel (it was
    stopped, killed, or lost an answer): outputs that can look for their own messages
    (Slack) do; False when the runner knows this is the day's first delivery there."""

    def by_keyword(self) -> list[tuple[str, list[DigestItem]]]:
        """Each item once, under the first of its keywords, in the channel's keyword order."""
        groups: dict[str, list[DigestItem]] = {kw: [] for kw in self.keywords}
        for item in self.items:
            groups.setdefault(item.keywords[0], []).append(item)
        return [(kw, items) for kw, items in groups.items() if items]

    def count(self, keyword: str) -> int:
        return sum(1 for item in self.items if item.keywords[0] == keyword)


def utcnow() -> datetime:
    return datetime.now(UTC)
