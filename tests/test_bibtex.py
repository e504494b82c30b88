"""Saved papers as BibTeX (bot/bibtex.py), read back by a BibTeX parser, and
`papers-bot saved --bibtex` against a real Redis."""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import bibtexparser
import pytest
import redis.asyncio as aioredis
from bibtexparser.model import Entry

from bot import bibtex
from bot.cli import main
from bot.models import Paper
from bot.state.redis import RedisStore
from tests.conftest import RedisServer
from tests.factories import paper

HOSTILE = [
    "50% fewer tokens & # of steps",
    "Unbalanced { brace and } } closers",
    "A title ending in a backslash \\",
    "@everyone <!channel> @misc{evil, title={x}}",
    r"Keeps $\alpha$-LaTeX \emph{intact} and {BERT}",
    "Smith and Jones and the `` quotes'' ```code```",
    "Üñíçødé — “quotes” 中文",
]
FIELDS = {"title", "author", "year", "eprint", "archivePrefix", "primaryClass", "url"}


def parsed(text: str) -> dict[str, Entry]:
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks, [b.error for b in library.failed_blocks]
    return {e.key: e for e in library.entries}


def values(entry: Entry) -> dict[str, str]:
    return {f.key: str(f.value) for f in entry.fields}


def test_an_entry_is_arxivs_own_misc_format() -> None:
    one = paper(1, title="Reward Modeling", authors=("Ada Lovelace", "Alan Turing"))
    entry = parsed(bibtex.entry(one))[one.id]
    assert entry.entry_type == "misc"
    assert values(entry) == {
        "title": "Reward Modeling",
        "author": "Ada Lovelace and Alan Turing",
        "year": str(one.published.year),
        "eprint": one.id,
        "archivePrefix": "arXiv",
        "primaryClass": "cs.LG",
        "url": f"https://arxiv.org/abs/{one.id}",
    }


def test_a_journal_reference_makes_an_article() -> None:
    one = paper(2, journal_ref="Phys. Rev. B 85, 115117 (2012) & more")
    entry = parsed(bibtex.entry(one))[one.id]
    assert entry.entry_type == "article"
    assert values(entry)["journal"] == r"Phys. Rev. B 85, 115117 (2012) \& more"
    assert set(values(entry)) == FIELDS | {"journal"}


@pytest.mark.parametrize("title", HOSTILE)
def test_hostile_titles_read_back_with_every_field(title: str) -> None:
    ones = [
        paper(3, title=title, authors=("Barnes and Noble Lab", "Q. {Brace")),
        paper(4, title="after it"),
    ]
    entries = parsed(bibtex.document(ones))
    assert list(entries) == [p.id for p in ones]
    for one in ones:
        assert set(values(entries[one.id])) == FIELDS
    first = values(entries[ones[0].id])
    assert first["author"] == r"{Barnes and Noble Lab} and Q. \textbraceleft{}Brace"
    assert _braces_pair(first["title"])
    assert (len(first["title"]) - len(first["title"].rstrip("\\"))) % 2 == 0


def _braces_pair(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_control_characters_never_reach_a_terminal() -> None:
    text = bibtex.entry(paper(1, title="Reward\x1b[2J models\x07", authors=("Ada\x1b]0;x\x07",)))
    assert not any(unicodedata.category(ch) == "Cc" and ch != "\n" for ch in text)
    assert "Reward[2J models" in text


def test_latex_in_titles_is_kept_and_specials_escaped() -> None:
    assert bibtex.escape(r"$\alpha$ \emph{x} {BERT}") == r"$\alpha$ \emph{x} {BERT}"
    assert bibtex.escape(r"50% & # 50\% \&") == r"50\% \& \# 50\% \&"
    assert bibtex.escape("a } b {") == r"a \textbraceright{} b \textbraceleft{}"
    assert bibtex.escape("ends \\") == r"ends \textbackslash{}"
    assert bibtex.escape("ends \\\\") == "ends \\\\"
    assert bibtex.escape("two\n  lines") == "two lines"


def test_old_style_ids_are_keys_as_arxiv_writes_them() -> None:
    old = Paper(**{**_fields(paper(5)), "id": "hep-th/9901001", "primary_category": "hep-th"})
    entry = parsed(bibtex.entry(old))["hep-th/9901001"]
    assert values(entry)["url"] == "https://arxiv.org/abs/hep-th/9901001"


def _fields(one: Paper) -> dict[str, object]:
    return {name: getattr(one, name) for name in one.__slots__}  # type: ignore[attr-defined]


@pytest.mark.parametrize("limit", [60, 300, 3000])
def test_chunks_fit_and_join_back(limit: int) -> None:
    text = bibtex.document(paper(n, title="x" * (n * 37)) for n in range(1, 12))
    pieces = bibtex.chunks(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")
    if limit >= 3000:  # whole entries, cut between them
        assert all(p.startswith("@") for p in pieces)


def test_chunks_measure_with_the_given_size() -> None:
    text = "&" * 100
    pieces = bibtex.chunks(text, 50, size=lambda s: len(s.replace("&", "&amp;")))
    assert len(pieces) == 10 and "".join(pieces) == text


# papers-bot saved ----------------------------------------------------------------------


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_server: RedisServer
) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("PAPERS_BOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", redis_server.url)
    monkeypatch.setenv("PAPERS_BOT_KEY_PREFIX", "clitest")
    yield


async def test_cli_prints_a_users_saved_papers_as_bibtex(
    env: None, redis_client: aioredis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    store = RedisStore(redis_client, prefix="clitest")
    ones = [paper(6, title=HOSTILE[0]), paper(7, title="Second", journal_ref="JMLR 1")]
    for one in ones:
        await store.signals.toggle_saved("slack:U0ALICE", one)
    await store.signals.toggle_saved("slack:U0BOB", paper(8))
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["saved", "--user", "slack:U0ALICE", "--bibtex"])
    out = capsys.readouterr().out
    assert code == 0
    entries = parsed(out)
    assert list(entries) == [ones[1].id, ones[0].id]  # newest saved first
    assert entries[ones[1].id].entry_type == "article"
    assert set(values(entries[ones[0].id])) == FIELDS


async def test_cli_refuses_a_user_without_platform(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, ["saved", "--user", "U0ALICE", "--bibtex"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("papers-bot: --user is PLATFORM:USER") and "\n" not in err
