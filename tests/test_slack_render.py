"""Block Kit rendering: escaping, shortening, the digest layout, splitting at Slack's limits."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.slack import render as slack_render
from adapters.slack.render import (
    MAX_BLOCKS,
    MAX_FALLBACK_CHARS,
    MAX_MESSAGE_CHARS,
    SlackMessage,
    authors,
    block_chars,
    clip,
    escape,
    fit,
    link,
    render_digest,
    render_reply,
    slack_len,
    unescape,
)
from bot.commands import USAGE, Reply
from bot.models import Channel, Digest, DigestItem, Paper
from tests.fakes.arxiv_server import papers_from_feed
from tests.fakes.slack_api import block_problems

DAY = date(2026, 11, 4)
CHANNEL = Channel("slack", "C0PAPERS")
THIRTY_FOUR = "arxiv_api_2026_idlist_two_ids_one_missing_34_authors.xml"


def paper(n: int, **changes: object) -> Paper:
    fields: dict[str, object] = {
        "id": f"2611.{n:05d}",
        "version": 1,
        "title": f"Paper number {n}",
        "authors": ("Ada Lovelace",),
        "summary": f"Abstract of paper {n}.",
        "comment": None,
        "primary_category": "cs.CL",
        "categories": ("cs.CL",),
        "published": datetime(2026, 11, 2, tzinfo=UTC) + timedelta(minutes=n),
        "updated": datetime(2026, 11, 2, tzinfo=UTC) + timedelta(minutes=n),
    }
    fields.update(changes)
    return Paper(**fields)  # type: ignore[arg-type]


def digest_of(groups: dict[str, list[Paper]]) -> Digest:
    items = [DigestItem(p, (kw,)) for kw, papers in groups.items() for p in papers]
    return Digest(CHANNEL, DAY, tuple(groups), items)


def all_text(message: SlackMessage) -> str:
    """Everything Slack parses as mrkdwn: mrkdwn text objects and the fallback `text`.
    (Headers are plain_text, shown as they are.)"""
    texts = [message.text]
    for block in message.blocks:
        for obj in [block.get("text"), *block.get("elements", [])]:
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                texts.append(obj["text"])
    return "\n".join(texts)


def assert_within_limits(message: SlackMessage) -> None:
    assert block_problems(message.blocks) == []
    assert len(message.blocks) <= MAX_BLOCKS
    assert block_chars(message.blocks) <= MAX_MESSAGE_CHARS
    assert 0 < slack_len(message.text) <= MAX_FALLBACK_CHARS


OUR_CODE_LINK = re.compile(r"<https://(?:github\.com|gitlab\.com|huggingface\.co)/[\w./-]+\|Code>")


def raw_angles(text: str) -> list[str]:
    """Every `<…>` that is not one of our own links: to arxiv.org, or a paper's code."""
    return [
        m
        for m in re.findall(r"<[^>]*>?", text)
        if not m.startswith("<https://arxiv.org/") and not OUR_CODE_LINK.fullmatch(m)
    ]


# text helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain words", "plain words"),
        ("", ""),
        ("R&D", "R&amp;D"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here|here>", "&lt;!here|here&gt;"),
        ("<@U012AB3CD>", "&lt;@U012AB3CD&gt;"),
        ("<http://evil.example|arxiv.org>", "&lt;http://evil.example|arxiv.org&gt;"),
        ("a < b > c & d", "a &lt; b &gt; c &amp; d"),
        ("&amp; already", "&amp;amp; already"),
        ("*bold* _it_ `code`", "*bold* _it_ `code`"),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
    assert unescape(escaped) == raw


@pytest.mark.parametrize(
    ("raw", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("lorem ipsum dolor sit amet", 24, "lorem ipsum dolor sit…"),  # at a word when near
        ("one two three four", 12, "one two thr…"),  # mid-word when the last space is far
        ("abcdefghij", 5, "abcd…"),
        ("a & b & c", 9, "a &amp;…"),  # never half an entity
        ("<<<<", 10, "&lt;&lt;…"),
        ("𝒪(n) 𝒪(n) 𝒪(n)", 9, "𝒪(n) 𝒪…"),  # astral characters count twice
    ],
)
def test_fit_escapes_and_shortens(raw: str, limit: int, expected: str) -> None:
    assert fit(raw, limit) == expected
    assert slack_len(fit(raw, limit)) <= limit


def old_shorten(text: str, limit: int, *, escaped: bool) -> str:
    """`_shorten` as it was before its fast path: one character at a time."""
    whole = escape(text) if escaped else text
    if slack_len(whole) <= limit:
        return whole
    kept: list[str] = []
    used = 1
    for ch in text[:limit]:
        piece = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}.get(ch, ch) if escaped else ch
        used += slack_len(piece)
        if used > limit:
            break
        kept.append(piece)
    cut = "".join(kept)
    head, space, _ = cut.rpartition(" ")
    if space and len(head) >= 0.8 * len(cut):
        cut = head
    return cut.rstrip() + "…"


ABSTRACT = ("Reward models trained on human preferences, evaluated at scale. " * 60)[:3000]


@pytest.mark.parametrize("escaped", [True, False])
@pytest.mark.parametrize(
    ("text", "limits"),
    [
        pytest.param("", [0, 1], id="empty"),
        pytest.param("abcdefghij", [-1, 0, 1, 2, 9, 10, 11], id="ascii"),
        pytest.param("lorem ipsum dolor sit amet", range(28), id="words"),
        pytest.param("word " * 30, [10, 50, 99, 100, 101], id="trailing-spaces"),
        pytest.param("a" * 79 + " " + "b" * 40, [100, 101, 102, 121], id="word-at-80%"),
        pytest.param(ABSTRACT, [1, 300, 499, 500, 501, 3000, 3001], id="abstract"),
        pytest.param(ABSTRACT.replace("at scale", "R&D <x>"), [300, 500], id="escapes"),
        pytest.param(ABSTRACT.replace("Reward", "Récompense"), [300, 500], id="one-unit-non-ascii"),
        pytest.param(ABSTRACT.replace("Reward", "𝒪 🎉"), [300, 500], id="two-unit"),
        pytest.param("&<>" * 10, range(35), id="entities"),
    ],
)
def test_shorten_answers_as_before(text: str, limits: Iterable[int], escaped: bool) -> None:
    for limit in limits:
        assert slack_render._shorten(text, limit, escaped=escaped) == old_shorten(
            text, limit, escaped=escaped
        ), limit


_shorten_text = st.one_of(
    st.text(st.sampled_from("abc xyz.,-"), max_size=800),  # ASCII, nothing to escape
    st.text(st.characters(max_codepoint=127), max_size=800),  # any ASCII, & < > too
    st.text(st.sampled_from([*"ab &<>", "é", "\u200b", "𝒪", "🎉", "\u3000"]), max_size=800),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=300),  # any code point
)


@settings(max_examples=500, deadline=None)
@given(text=_shorten_text, limit=st.integers(-2, 900), escaped=st.booleans())
def test_shorten_answers_as_before_on_any_text(text: str, limit: int, escaped: bool) -> None:
    assert slack_render._shorten(text, limit, escaped=escaped) == old_shorten(
        text, limit, escaped=escaped
    )


def test_clip_does_not_escape() -> None:
    assert clip("R&D <x>", 20) == "R&D <x>"
    assert clip("x" * 200, 150) == "x" * 149 + "…"


@pytest.mark.parametrize(
    ("names", "shown"),
    [
        ((), ""),
        (("A",), "A"),
        (("A", "B", "C"), "A, B, C"),
        (("A", "B", "C", "D"), "A, B, C et al."),
    ],
)
def test_authors(names: tuple[str, ...], shown: str) -> None:
    assert authors(names) == shown


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://arxiv.org/abs/2611.00001", "<https://arxiv.org/abs/2611.00001|T>"),
        ("https://arxiv.org/abs/astro-ph/0601001", "<https://arxiv.org/abs/astro-ph/0601001|T>"),
        ("https://arxiv.org/abs/x|y", "T"),
        ("https://arxiv.org/abs/x>y", "T"),
        ("javascript:alert(1)", "T"),
    ],
)
def test_link_refuses_urls_that_could_break_out(url: str, expected: str) -> None:
    assert link(url, "T") == expected


# the digest --------------------------------------------------------------------------


def test_top_message_says_date_keywords_and_counts() -> None:
    digest = digest_of({"reward model": [paper(1), paper(2)], "R&D": [paper(3)]})
    digest.keywords = ("reward model", "R&D", "quiet one")
    top = render_digest(digest)[0]
    assert top.paper_ids == ()
    assert top.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "New on arXiv · Wed 4 Nov 2026"},
    }
    body = top.blocks[1]["text"]["text"]
    assert "*3 new papers*" in body
    assert "• reward model: 2" in body
    assert "• R&amp;D: 1" in body
    assert "quiet one" in top.blocks[2]["elements"][1]["text"]
    assert top.text == "New on arXiv, 2026-11-04: 3 papers (reward model 2, R&amp;D 1)"


def test_thread_groups_papers_by_keyword_with_every_detail() -> None:
    rich = paper(
        7,
        title="Reward models & you",
        authors=("A", "B", "C", "D"),
        comment="12 pages, 3 figures",
        primary_category="cs.LG",
        version=2,
        updated=datetime(2026, 11, 3, tzinfo=UTC),
    )
    digest = digest_of({"reward model": [rich, paper(1)], "rlhf": [paper(2)]})
    digest.items[0] = DigestItem(rich, ("reward model", "rlhf"))
    thread = render_digest(digest)[1:]
    assert len(thread) == 1
    blocks = thread[0].blocks
    headers = [b["text"]["text"] for b in blocks if b["type"] == "header"]
    assert headers == ["reward model · 2 new", "rlhf · 1 new"]
    section = blocks[1]["text"]
    assert section["verbatim"] is True
    assert section["text"].splitlines() == [
        "*<https://arxiv.org/abs/2611.00007|Reward models &amp; you>*",
        "A, B, C et al.",
        "Abstract of paper 7.",
    ]
    notes = [e["text"] for e in blocks[2]["elements"]]
    assert notes == [
        "cs.LG · 2026-11-02 · v2 2026-11-03 · <https://arxiv.org/pdf/2611.00007|PDF>"
        " · <https://arxiv.org/html/2611.00007v2|HTML>",
        "_12 pages, 3 figures_",
        "Also matches: rlhf",
    ]
    assert thread[0].paper_ids == ("2611.00007", "2611.00001", "2611.00002")
    assert "<https://arxiv.org/abs/2611.00007|Reward models &amp; you>" in thread[0].text


def test_hostile_text_cannot_ping_or_forge_links() -> None:
    evil = paper(
        1,
        title="<!channel> wake up <@U012AB3CD>",
        summary="Click <http://evil.example|https://arxiv.org/abs/1> & <!here>",
        comment="<!subteam^S123|@team> <#C123>",
        authors=("<@U999>", "Bob"),
        primary_category="<!everyone>",
    )
    messages = render_digest(digest_of({"<!channel>": [evil]}))
    messages += render_reply(Reply("This channel doesn't follow “<!here>”.", papers=(evil,)))
    for message in messages:
        assert raw_angles(all_text(message)) == []
    assert "&lt;!channel&gt; wake up &lt;@U012AB3CD&gt;" in all_text(messages[1])


def test_code_link_and_venue_close_the_context_line() -> None:
    shown = paper(
        3,
        summary="Code is available at github.com/sftekin/h3fusion.",  # 2411.17792's abstract
        comment="Accepted at ICLR 2025 as an oral presentation & more",
    )
    meta = slack_render.paper_meta(shown)
    assert meta == (
        "cs.CL · 2026-11-02 · <https://arxiv.org/pdf/2611.00003|PDF>"
        " · <https://arxiv.org/html/2611.00003v1|HTML>"
        " · <https://github.com/sftekin/h3fusion|Code> · ICLR 2025 (oral)"
    )
    journal = paper(4, journal_ref="A&A 691, A35 (2024)")  # from the 2024-11-28 listing
    assert slack_render.paper_meta(journal).endswith("|HTML> · A&amp;A 691, A35 (2024)")


def test_hostile_venues_and_code_urls_cannot_ping_or_forge_links() -> None:
    evil = paper(
        1,
        summary="Code: https://github.com/a/b>x|<!channel> and github.com/c/d|<http://evil|x>",
        comment="Accepted at <!everyone> @here [x](http://evil) <@U1|y> &amp; " + "&<" * 200,
    )
    meta = slack_render.paper_meta(evil)
    assert raw_angles(meta) == []
    assert "<https://github.com/a/b|Code>" in meta
    assert "&lt;!everyone&gt;" in meta and "http://evil" not in meta
    assert re.findall(r"<([^|>]+)\|", meta) == [
        evil.pdf_url,
        evil.html_url,
        "https://github.com/a/b",
    ]
    assert slack_len(meta.rsplit(" · ", 1)[1]) <= slack_render.VENUE_CHARS
    for message in render_digest(digest_of({"x": [evil]})) + render_reply(
        Reply("r", papers=(evil,))
    ):
        assert raw_angles(all_text(message)) == []
        assert_within_limits(message)


def test_corpus_34_authors_show_three_then_et_al(corpus: Path) -> None:
    fake = papers_from_feed((corpus / THIRTY_FOUR).read_bytes())[0]
    assert len(fake.authors) == 34
    real = paper(1, title=" ".join(fake.title.split()), authors=tuple(fake.authors))
    section = render_digest(digest_of({"mimo": [real]}))[1].blocks[1]["text"]["text"]
    names = section.splitlines()[1]
    assert names == ", ".join(fake.authors[:3]) + " et al."
    assert fake.authors[3] not in section


def test_a_3000_character_abstract_is_shortened() -> None:
    words = ("lorem ipsum dolor sit amet " * 200)[:3000]
    message = render_digest(digest_of({"kw": [paper(1, summary=words)]}))[1]
    abstract = message.blocks[1]["text"]["text"].splitlines()[2]
    assert abstract.endswith("…")
    assert 400 < len(abstract) <= 500
    assert_within_limits(message)


def test_long_digest_splits_without_splitting_a_paper() -> None:
    long_text = "x " * 1500
    groups = {
        "first": [paper(n, summary=long_text, comment="c " * 200) for n in range(30)],
        "second": [paper(100 + n) for n in range(40)],
    }
    top, *thread = render_digest(digest_of(groups))
    assert len(thread) > 2
    carried = [pid for m in thread for pid in m.paper_ids]
    assert carried == [p.id for ps in groups.values() for p in ps]
    assert_within_limits(top)
    for message in thread:
        assert_within_limits(message)
        assert message.blocks[0]["type"] == "header"
        sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
        assert [s.split("|")[0] for s in sections] == [
            f"*<https://arxiv.org/abs/{pid}" for pid in message.paper_ids
        ]
    continued = [m.blocks[0]["text"]["text"] for m in thread[1:]]
    assert "first (continued)" in continued


def test_every_field_at_its_worst_still_fits() -> None:
    """`&` grows fivefold when escaped; astral characters count twice."""
    worst = paper(
        1,
        title="&" * 5000,
        authors=tuple("𝒪" * 300 for _ in range(50)),
        summary="<" * 5000,
        comment="&>" * 3000,
        primary_category="&" * 500,
    )
    keywords = ("k" * 100, "&" * 100, "x" * 100)
    item = DigestItem(worst, keywords)
    digest = Digest(CHANNEL, DAY, keywords, [item] * 30)
    for message in [*render_digest(digest), *render_reply(Reply("&" * 5000, papers=(worst,)))]:
        assert_within_limits(message)


def test_fifty_block_limit_splits_short_papers() -> None:
    thread = render_digest(digest_of({"kw": [paper(n) for n in range(60)]}))[1:]
    assert [len(m.blocks) for m in thread] == [49, 49, 25]  # a header, then 2 blocks per paper
    assert sum(len(m.paper_ids) for m in thread) == 60


# replies -----------------------------------------------------------------------------


def test_reply_is_escaped_text_then_compact_papers() -> None:
    reply = Reply("Latest papers for “R&D”:", papers=(paper(1), paper(2, authors=tuple("ABCD"))))
    (message,) = render_reply(reply)
    assert message.blocks[0]["text"]["text"] == "Latest papers for “R&amp;D”:"
    assert len(message.blocks) == 3
    assert message.blocks[2]["text"]["text"].splitlines() == [
        "*<https://arxiv.org/abs/2611.00002|Paper number 2>*",
        "A, B, C et al. · cs.CL · 2026-11-02 · <https://arxiv.org/pdf/2611.00002|PDF>"
        " · <https://arxiv.org/html/2611.00002v1|HTML>",
    ]
    assert message.paper_ids == ("2611.00001", "2611.00002")
    assert message.text.startswith("Latest papers for “R&amp;D”:\n• <https://arxiv.org/abs/")


def test_failed_reply_is_marked_and_usage_placeholders_survive() -> None:
    (message,) = render_reply(Reply(f"Unknown command.\n{USAGE}", ok=False))
    text = message.blocks[0]["text"]["text"]
    assert text.startswith(":warning: Unknown command.")
    assert "/papers add &lt;keyword&gt;" in text
    assert raw_angles(text) == []


# properties --------------------------------------------------------------------------

_hostile = st.text(
    alphabet=st.sampled_from([*"ab <>&|@!*_~`\n", "𝒪", "é", "\u200b", " "]), max_size=400
)
_papers = st.lists(
    st.builds(
        lambda n, title, summary, comment, count: paper(
            n,
            title=title * 10,  # up to 4,000 characters, as every field below
            summary=summary * 10,
            comment=comment * 10 or None,
            authors=tuple(f"Author {i} {title[:20]}" for i in range(count)),
        ),
        st.integers(0, 99_999),
        _hostile,
        _hostile,
        _hostile,
        st.integers(0, 40),
    ),
    max_size=70,
    unique_by=lambda p: p.id,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers=_papers, keywords=st.lists(_hostile.filter(str.strip), min_size=1, max_size=4))
def test_any_digest_fits_and_carries_each_paper_once(
    papers: list[Paper], keywords: list[str]
) -> None:
    keywords = list(dict.fromkeys(keywords))
    items = [DigestItem(p, (keywords[i % len(keywords)],)) for i, p in enumerate(papers)]
    digest = Digest(CHANNEL, DAY, tuple(keywords), items)
    messages = render_digest(digest)
    carried = [pid for m in messages for pid in m.paper_ids]
    assert sorted(carried) == sorted(p.id for p in papers)
    for message in messages:
        assert_within_limits(message)
        assert raw_angles(all_text(message)) == []


@given(text=_hostile, papers=_papers.map(lambda ps: tuple(ps[:20])), ok=st.booleans())
@settings(max_examples=40, deadline=None)
def test_any_reply_fits(text: str, papers: tuple[Paper, ...], ok: bool) -> None:
    messages = render_reply(Reply(text or "x", papers=papers, ok=ok))
    assert [pid for m in messages for pid in m.paper_ids] == [p.id for p in papers]
    for message in messages:
        assert_within_limits(message)
        assert raw_angles(all_text(message)) == []


def test_quiet_day_revisions_and_more() -> None:
    from datetime import date

    from adapters.slack.render import render_digest
    from bot.models import Channel, Digest, DigestItem
    from tests.factories import paper

    (quiet,) = render_digest(Digest(Channel("slack", "C1"), date(2026, 11, 23), ("R&D",)))
    assert quiet.text == "No new papers today for R&amp;D." and quiet.paper_ids == ()
    revised = DigestItem(paper(1, version=2), ("x",), revised=True)
    top, thread = render_digest(
        Digest(Channel("slack", "C1"), date(2026, 11, 23), ("x",), [revised], more=4)
    )
    assert "…and 4 more" in str(top.blocks)
    assert "New version v2: " in str(thread.blocks)


def test_a_paper_is_rendered_once_per_run_and_the_same_for_every_channel_that_gets_it() -> None:
    shared = paper(1, comment="Code: https://github.com/a/b")
    other = Channel("slack", "C0OTHER")
    one = Digest(CHANNEL, DAY, ("rlhf",), [DigestItem(shared, ("rlhf",))])
    two = Digest(other, DAY, ("rlhf",), [DigestItem(shared, ("rlhf",))])
    both = Digest(other, DAY, ("rlhf", "ppo"), [DigestItem(shared, ("rlhf", "ppo"))])
    slack_render._paper_unit.cache_clear()
    first = slack_render.thread_messages(one, buttons=True)
    assert slack_render.thread_messages(two, buttons=True) == first
    assert slack_render._paper_unit.cache_info().hits == 1
    uncached = slack_render._paper_unit.__wrapped__(DigestItem(shared, ("rlhf",)), True)
    assert first[0].blocks[1:] == uncached.blocks
    (message,) = slack_render.thread_messages(both, buttons=True)
    assert "Also matches: ppo" in all_text(message) and "Also matches" not in all_text(first[0])
    plain = slack_render.thread_messages(one)[0].blocks
    assert [b["type"] for b in plain] == ["header", "section", "context"]  # no buttons


@pytest.mark.parametrize("buttons", [False, True])
def test_a_packed_units_size_is_what_its_blocks_and_text_measure(buttons: bool) -> None:
    long = [paper(n, title="Long " * 60, summary="word " * 400) for n in range(1, 40)]
    groups = digest_of({"reward models": long, "rlhf": long[:3]}).by_keyword()
    for keyword, items in groups:
        for i, item in enumerate(items):
            cached = slack_render._paper_unit(item, buttons)
            heading = slack_render.header(f"{keyword} (continued)")
            for unit in (cached.led_by(slack_render.header(keyword)),
                         cached.continuing(heading).opening()):  # fmt: skip
                measured = (len(unit.blocks), slack_render.block_chars(unit.blocks),
                            slack_render.slack_len(unit.text) + 1)  # fmt: skip
                assert unit.size == measured, (keyword, i)
