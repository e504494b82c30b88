"""Discord rendering: escaping, mention safety, embeds and splitting within Discord's limits."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord.render import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBEDS_PER_MESSAGE,
    EMBEDS_TOTAL_LIMIT,
    FOOTER_LIMIT,
    TITLE_LIMIT,
    ZWSP,
    Outgoing,
    authors_line,
    embed_size,
    escape,
    pack,
    paper_embed,
    render_digest,
    render_reply,
    shorten,
    units,
)
from bot.commands import Reply
from bot.models import Channel, Digest, DigestItem, Paper
from tests.factories import paper_from_fake
from tests.fakes.arxiv_server import papers_from_feed
from tests.fakes.discord_api import limit_violations

LIVE_MENTION = re.compile(r"@everyone|@here|<@[!&]?\d+>|<#\d+>|<t:\d+")
WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def paper(n: int, **changes: object) -> Paper:
    fields: dict[str, object] = {
        "id": f"2611.{n:05d}",
        "version": 1,
        "title": f"Paper {n}",
        "authors": (f"Author {n}",),
        "summary": f"Abstract {n}.",
        "comment": None,
        "primary_category": "cs.CL",
        "categories": ("cs.CL",),
        "published": WHEN + timedelta(minutes=n),
        "updated": WHEN + timedelta(minutes=n),
    }
    fields.update(changes)
    return Paper(**fields)  # type: ignore[arg-type]


def digest_of(groups: dict[str, list[Paper]]) -> Digest:
    items = [DigestItem(p, (kw,)) for kw, papers in groups.items() for p in papers]
    return Digest(Channel("discord", "1"), WHEN.date(), tuple(groups), items)


def as_payload(message: Outgoing) -> dict[str, object]:
    return {"content": message.content, "embeds": [e.to_dict() for e in message.embeds]}


def assert_within_limits(messages: list[Outgoing]) -> None:
    for message in messages:
        assert units(message.content) <= CONTENT_LIMIT
        assert len(message.embeds) <= EMBEDS_PER_MESSAGE
        assert sum(embed_size(e) for e in message.embeds) <= EMBEDS_TOTAL_LIMIT
        assert limit_violations(as_payload(message)) == []


# -- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain words", "plain words"),
        ("@everyone look", f"@{ZWSP}everyone look"),
        ("@here", f"@{ZWSP}here"),
        ("<@123> and <@!123>", f"<@{ZWSP}123> and <@{ZWSP}!123>"),
        ("role <@&456>", f"role <@{ZWSP}&456>"),
        ("channel <#789>", f"channel <{ZWSP}#789>"),
        ("<t:1700000000:R> </papers add:1> <:e:1> <a:e:2>", None),
        ("x_i and y_j", r"x\_i and y\_j"),
        (
            "**bold** ~~gone~~ `code` ||spoiler||",
            r"\*\*bold\*\* \~\~gone\~\~ \`code\` \|\|spoiler\|\|",
        ),
        ("[click](https://evil.example)", r"\[click\](https://evil.example)"),
        ("a \\ backslash", r"a \\ backslash"),
        ("# Header\n> quote\n- item\n1. first\n-# small", None),
        ("O(n log n) < 5% of x > y", "O(n log n) < 5% of x > y"),
        ("<keyword> stays", "<keyword> stays"),
        ("code at https://github.com/a_b/c_d.", "code at https://github.com/a_b/c_d."),
        ("$\\mathcal{O}(n^2)$", r"$\\mathcal{O}(n^2)$"),
    ],
)
def test_escape(raw: str, shown: str | None) -> None:
    escaped = escape(raw)
    if shown is not None:
        assert escaped == shown
    assert not LIVE_MENTION.search(escaped)


def test_escape_neutralizes_line_markup() -> None:
    escaped = escape("# Header\n> quote\n- item\n1. first\n-# small")
    assert escaped.splitlines() == [
        r"\# Header",
        r"\> quote",
        r"\- item",
        r"1\. first",
        r"\-# small",
    ]


@given(st.text())
@settings(max_examples=300)
def test_escaped_text_never_mentions(text: str) -> None:
    assert not LIVE_MENTION.search(escape(text))


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("one two three four five", 12, "one two…"),
        ("a_b_c_d_e_f", 8, r"a\_b\_c…"),
        ("", 5, ""),
    ],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected


@given(st.text(), st.integers(min_value=1, max_value=300))
@settings(max_examples=300)
def test_shorten_always_fits(text: str, limit: int) -> None:
    result = shorten(text, limit)
    assert units(result) <= limit
    assert not LIVE_MENTION.search(result)


def test_units_count_astral_characters_twice() -> None:
    assert units("𝑥") == 2
    assert units(shorten("𝑥" * 100, 10)) <= 10


@pytest.mark.parametrize(
    ("authors", "line"),
    [
        ((), "unknown"),
        (("A",), "A"),
        (("A", "B", "C"), "A, B, C"),
        (("A", "B", "C", "D"), "A, B, C et al."),
    ],
)
def test_authors_line(authors: tuple[str, ...], line: str) -> None:
    assert authors_line(authors) == line


# -- one paper ------------------------------------------------------------------------------


def test_paper_embed_fields() -> None:
    p = paper(
        7,
        title="Reward models_v2",
        version=3,
        updated=WHEN + timedelta(days=2),
        authors=("Ann", "Bob", "Cy", "Dee"),
        comment="12 pages, code: https://github.com/x/y_z",
    )
    embed = paper_embed(p, ("reward model", "rlhf"))
    assert embed.title == r"Reward models\_v2"
    assert embed.url == "https://arxiv.org/abs/2611.00007"
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Authors"] == "Ann, Bob, Cy et al."
    assert fields["Category"] == "cs.CL"
    assert fields["Submitted"] == "2026-11-02 (v3: 2026-11-04)"
    assert fields["Links"] == (
        "[PDF](https://arxiv.org/pdf/2611.00007) · [HTML](https://arxiv.org/html/2611.00007v3)"
        " · [Code](https://github.com/x/y_z)"
    )
    assert "Venue" not in fields  # pages and a link say nothing about where it appeared
    assert fields["Comment"] == "12 pages, code: https://github.com/x/y_z"
    assert embed.footer.text == "arXiv:2611.00007v3 · also matches “rlhf”"
    assert embed.description == "Abstract 7."


def test_the_fake_refuses_what_discord_refuses() -> None:
    """Empty field values, and lengths counted in UTF-16 units (what the render promises)."""
    empty = {"embeds": [{"title": "t", "fields": [{"name": "Category", "value": ""}]}]}
    assert limit_violations(empty) == ["embed 0 field 0 value is empty"]
    astral = {"embeds": [{"title": "t", "footer": {"text": "𝔸" * 1100}}]}
    assert limit_violations(astral) == ["embed 0 footer has 2200 characters (limit 2048)"]


def test_a_paper_without_a_category_has_no_empty_field() -> None:
    """Issue 22, finding 14: an empty `Category` field was sent, which Discord refuses."""
    embed = paper_embed(paper(1, primary_category="", categories=()))
    assert "Category" not in [f.name for f in embed.fields]
    assert limit_violations({"embeds": [embed.to_dict()]}) == []


def test_the_footer_fits_in_utf16_units() -> None:
    """Issue 22, finding 14: the footer was cut by code points (2,149 units seen)."""
    keywords = ("main", *(f"𝔸{n:03d}" + "𝔹" * 40 for n in range(30)))
    embed = paper_embed(paper(1), keywords, number=12)
    footer = embed.footer.text or ""
    assert units(footer) <= FOOTER_LIMIT < units(footer) + 100  # cut, and near the limit
    assert footer.startswith("#12 · arXiv:2611.00001v1 · also matches “𝔸000")
    assert footer.endswith("…")
    assert limit_violations({"embeds": [embed.to_dict()]}) == []


def test_paper_embed_with_34_authors_from_corpus(corpus: Path) -> None:
    feed = corpus / "arxiv_api_2026_idlist_two_ids_one_missing_34_authors.xml"
    (fake,) = papers_from_feed(feed.read_bytes())
    p = paper_from_fake(fake)
    assert len(p.authors) == 34
    embed = paper_embed(p)
    authors = next(f.value for f in embed.fields if f.name == "Authors")
    assert authors == f"{', '.join(p.authors[:3])} et al."
    assert "Wübben" not in authors


def test_venue_field_from_the_comment_or_the_journal_reference(corpus: Path) -> None:
    feed = corpus / "arxiv_api_legacy2025_search_cat_cs.RO_2_entries_multiline_comment.xml"
    rdd = next(
        paper_from_fake(p) for p in papers_from_feed(feed.read_bytes()) if p.id == "2510.14968"
    )
    fields = {f.name: f.value for f in paper_embed(rdd).fields}
    assert fields["Venue"] == "NeurIPS 2025"  # "39th Conference on ... (NeurIPS 2025); ..."
    assert "[Code]" not in fields["Links"]  # its project page is on github.io, not a repository
    journal = paper(1, journal_ref="Phys. Rev. B 110, L180202 (2024)")
    assert {f.name: f.value for f in paper_embed(journal).fields}["Venue"] == (
        "Phys. Rev. B 110, L180202 (2024)"
    )


def test_hostile_venues_and_code_urls_are_inert() -> None:
    evil = paper(
        1,
        summary="Code: https://github.com/a/b)](http://evil) and github.com/c/d>x",
        comment="Accepted at <!everyone> @here [x](http://evil) <@123> **b** " + "_" * 500,
    )
    embed = paper_embed(evil)
    fields = {f.name: f.value for f in embed.fields}
    assert not LIVE_MENTION.search(str(embed.to_dict()))
    assert fields["Venue"].startswith(rf"<!everyone> @{ZWSP}here \[x\]")
    assert "http://evil" not in fields["Venue"] and units(fields["Venue"]) <= 128
    assert re.findall(r"\]\((\S+?)\)", fields["Links"]) == [
        evil.pdf_url,
        evil.html_url,
        "https://github.com/a/b",
    ]
    assert_within_limits(render_digest(digest_of({"x": [evil] * 12})))


def test_long_title_and_abstract_are_cut_to_discords_limits() -> None:
    p = paper(1, title="word " * 80, summary="x" * 4000 + " end", comment="c" * 3000)
    full = paper_embed(p, abstract_chars=DESCRIPTION_LIMIT)
    assert units(full.title or "") <= TITLE_LIMIT
    assert (full.title or "").endswith("…")
    assert units(full.description or "") <= DESCRIPTION_LIMIT
    assert embed_size(full) <= EMBEDS_TOTAL_LIMIT
    short = paper_embed(p)
    assert units(short.description or "") <= 600
    assert limit_violations({"embeds": [full.to_dict()]}) == []


def test_a_4000_character_abstract_is_kept_whole_when_asked() -> None:
    summary = " ".join(["lorem"] * 666)[:4000]
    embed = paper_embed(paper(1, summary=summary), abstract_chars=DESCRIPTION_LIMIT)
    assert embed.description == summary


def test_mentions_in_a_paper_are_inert() -> None:
    p = paper(1, title="@everyone <@&42> wins", summary="@here read <#5>", authors=("<@1>",))
    embed = paper_embed(p)
    assert not LIVE_MENTION.search(str(embed.to_dict()))


# -- splitting --------------------------------------------------------------------------------


def sized(n: int) -> discord.Embed:
    return discord.Embed(description="d" * n)


@pytest.mark.parametrize(
    ("sizes", "per_message"),
    [
        ([100] * 25, [10, 10, 5]),
        ([3000, 3000, 3000], [2, 1]),
        ([3000, 3001], [1, 1]),
        ([5999, 1, 1], [2, 1]),
        ([6000, 6000], [1, 1]),
        ([], [0]),
    ],
)
def test_pack(sizes: list[int], per_message: list[int]) -> None:
    messages = pack("header", [(str(i), sized(n), None) for i, n in enumerate(sizes)], continued="")
    assert [len(m.embeds) for m in messages] == per_message
    assert [m.content for m in messages] == ["header"] + [""] * (len(per_message) - 1)
    assert [pid for m in messages for pid in m.paper_ids] == [str(i) for i in range(len(sizes))]


def test_digest_header_per_keyword_and_each_paper_once() -> None:
    a, b, c = paper(1), paper(2), paper(3)
    items = [DigestItem(a, ("rlhf", "reward model")), DigestItem(b, ("reward model",))]
    items.append(DigestItem(c, ("rlhf",)))
    digest = Digest(Channel("discord", "1"), WHEN.date(), ("reward model", "rlhf"), items)
    messages = render_digest(digest)
    assert [m.content for m in messages] == [
        "📚 **New on arXiv for “reward model”** · 1 paper",
        "📚 **New on arXiv for “rlhf”** · 2 papers",
    ]
    assert [m.paper_ids for m in messages] == [(b.id,), (a.id, c.id)]


def test_digest_of_long_papers_splits_within_limits(corpus: Path) -> None:
    feed = corpus / "arxiv_api_2026_idlist_two_ids_one_missing_34_authors.xml"
    (big,) = [paper_from_fake(p) for p in papers_from_feed(feed.read_bytes())]
    long = [
        paper(n, summary="token " * 800, authors=tuple("A" * 30 for _ in range(34)))
        for n in range(12)
    ]
    digest = digest_of({"information theory": [big, *long], "second": [paper(99)]})
    for chars in (600, DESCRIPTION_LIMIT):
        messages = render_digest(digest, abstract_chars=chars)
        assert_within_limits(messages)
        carried = [pid for m in messages for pid in m.paper_ids]
        assert carried == [big.id] + [p.id for p in long] + [paper(99).id]
    full = render_digest(digest, abstract_chars=DESCRIPTION_LIMIT)
    assert max(sum(embed_size(e) for e in m.embeds) for m in full) > 4000
    assert len(full) >= 7


paper_strategy = st.builds(
    paper,
    st.integers(min_value=0, max_value=99_999),
    title=st.text(max_size=400),
    summary=st.text(max_size=5000),
    authors=st.lists(st.text(max_size=300), max_size=40).map(tuple),
    comment=st.none() | st.text(max_size=3000),
    primary_category=st.text(min_size=1, max_size=80),
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a_b", "@everyone", "k" * 100]), paper_strategy), max_size=25
    ),
    st.sampled_from([100, 600, DESCRIPTION_LIMIT]),
)
@settings(max_examples=60, deadline=None)
def test_any_digest_fits_discord(entries: list[tuple[str, Paper]], chars: int) -> None:
    unique = {p.id: (kw, p) for kw, p in entries}
    items = [DigestItem(p, (kw,)) for kw, p in unique.values()]
    keywords = tuple(dict.fromkeys(kw for kw, _ in unique.values()))
    digest = Digest(Channel("discord", "1"), WHEN.date(), keywords, items)
    messages = render_digest(digest, abstract_chars=chars)
    assert_within_limits(messages)
    expected = [item.paper.id for _, group in digest.by_keyword() for item in group]
    assert [pid for m in messages for pid in m.paper_ids] == expected
    for message in messages:
        assert not LIVE_MENTION.search(str(as_payload(message)))


# -- replies ----------------------------------------------------------------------------------


def test_reply_text_is_escaped_and_fits() -> None:
    (message,) = render_reply(Reply("Added “a_b”. " + "@everyone " * 300))
    assert message.content.startswith(r"Added “a\_b”.")
    assert units(message.content) <= CONTENT_LIMIT
    assert not LIVE_MENTION.search(message.content)


def test_reply_with_twenty_papers_takes_two_messages() -> None:
    messages = render_reply(Reply("Latest papers:", papers=tuple(paper(n) for n in range(20))))
    assert [len(m.embeds) for m in messages] == [10, 10]
    assert [m.content for m in messages] == ["Latest papers:", ""]
    assert_within_limits(messages)


def test_quiet_day_revisions_and_more_are_rendered() -> None:
    from datetime import date

    from adapters.discord.render import render_digest
    from bot.models import Channel, Digest, DigestItem
    from tests.factories import paper

    quiet = render_digest(Digest(Channel("discord", "1"), date(2026, 11, 23), ("reward model",)))
    assert [m.content for m in quiet] == ["No new papers today for “reward model”."]
    assert quiet[0].paper_ids == ()
    revised = DigestItem(paper(1, version=3), ("reward model",), revised=True)
    digest = Digest(
        Channel("discord", "1"), date(2026, 11, 23), ("reward model",), [revised], more=7
    )
    messages = render_digest(digest)
    assert messages[0].embeds[0].title is not None
    assert messages[0].embeds[0].title.startswith("New version v3: ")
    assert messages[-1].content.startswith("…and 7 more new papers")
    assert messages[-1].paper_ids == ()
