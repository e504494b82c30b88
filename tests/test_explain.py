"""Why a paper is posted (bot/explain.py): the words as the paper wrote them, and the line
under each paper in digests posted by the real Slack and Discord clients to the fakes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.slack.app import publisher_from_settings
from bot import explain
from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner
from bot.keywords import tokens
from bot.models import Channel, Why
from bot.ranking import Taste, paper_text, rank, rank_explained
from bot.settings import Settings, SignalsSettings
from bot.state.redis import RedisStore
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, FakeDiscord
from tests.fakes.slack_api import FakeSlack, block_problems
from tests.test_discord_app import make_settings as discord_settings
from tests.test_discord_app import run_digest
from tests.test_slack_app import make_settings as slack_settings

STEMMED = "Towards Better Reward Modeling for Agents"
HOSTILE = "Reward&<!channel> @everyone *bold* _it_"


@pytest.mark.parametrize(
    ("text", "keyword", "expected"),
    [
        (STEMMED, "reward model", "Reward Modeling"),
        ("Our reward models' errors", "reward model", "reward models"),
        ("The Reward Model's bias", "reward model", "Reward Model"),
        ("big_data pipelines", "big data", "big_data"),
        ("ﬁne-tuning", "fine tuning", "fine-tuning"),
        ("nothing here", "reward model", None),
    ],
)
def test_spelled_finds_the_words_behind_the_stems(
    text: str, keyword: str, expected: str | None
) -> None:
    assert explain.spelled(text, tokens(keyword)) == expected


@pytest.mark.parametrize("text", [STEMMED, HOSTILE, "İstanbul's ß Straße_x 3.5 ｆｕｌｌ"])
def test_words_stem_as_matching_does(text: str) -> None:
    _, found = explain.words(text)
    assert [w.stem for w in found] == tokens(text)


def test_matched_says_where_title_first() -> None:
    one = paper(1, title=STEMMED, summary="We train reward models.", categories=("cs.CL",))
    assert explain.matched(one, "reward model") == (("Reward Modeling", "title"),)
    two = paper(2, title="Agents", summary="We train reward models.")
    assert explain.matched(two, "RLHF | reward model") == (("reward models", "abstract"),)
    three = paper(3, authors=("Yoshua Bengio",), categories=("cs.CL",))
    assert explain.matched(three, 'au:"Yoshua Bengio" cat:cs') == (
        ("Yoshua Bengio", "authors"),
        ("cs", "categories"),
    )


def test_ranked_terms_are_shown_as_the_paper_writes_them() -> None:
    one = paper(1, title="RLHF with Preferences", summary="Preference optimization.")
    assert explain.term_words(one, ["prefer", "rlhf", "cat:cs.LG"]) == (
        "preferences",
        "rlhf",
        "cs.LG",
    )


def test_the_line_is_short_and_plain() -> None:
    why = Why("reward model", (("Reward Modeling", "title"),), ("rlhf", "preference"))
    assert explain.line(why) == (
        "Why: reward model — “Reward Modeling” in the title; ranked up by: rlhf, preference"
    )
    long = Why("x", (("word " * 100, "abstract"),), ("t",) * 200)
    assert len(explain.line(long)) <= explain.LINE_CHARS
    assert explain.line(Why("cat:cs.CL")) == "Why: cat:cs.CL"


# on the platforms ----------------------------------------------------------------------


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [
        make_paper(1, title=STEMMED),
        make_paper(2, title=HOSTILE, summary="An abstract about agents."),
    ]
    with FakeArxiv(papers) as fake:
        yield fake


async def post_to_slack(
    slack: FakeSlack, settings: Settings, store: RedisStore, keyword: str
) -> list[str]:
    """The context lines of the papers of the day's digest in the fake Slack."""
    publisher = publisher_from_settings(settings, interval=0)
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": publisher})
    try:
        report = await runner.run({Channel("slack", "C0WHY"): [keyword]})
    finally:
        await publisher.aclose()
    assert report.ok and report.delivered == 1
    return [
        element["text"]
        for call in slack.posts("C0WHY")
        for block in call.blocks
        if block["type"] == "context"
        for element in block["elements"]
    ]


async def test_slack_shows_the_stemmed_match_as_written(
    slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = slack_settings(slack, arxiv)
    lines = await post_to_slack(slack, settings, redis_store, "reward model -everyone")
    assert "Why: reward model -everyone — “Reward Modeling” in the title" in lines
    assert all(block_problems(call.blocks) == [] for call in slack.posts("C0WHY"))


async def test_slack_escapes_hostile_matched_words(
    slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = slack_settings(slack, arxiv)
    lines = await post_to_slack(slack, settings, redis_store, "reward channel")
    (why,) = [line for line in lines if line.startswith("Why:")]
    assert why == "Why: reward channel — “Reward&amp;&lt;!channel” in the title"


async def test_slack_without_explain_has_no_why_line(
    slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = slack_settings(slack, arxiv).model_copy(
        update={"signals": SignalsSettings(explain=False)}
    )
    lines = await post_to_slack(slack, settings, redis_store, "reward model -everyone")
    assert lines and not any("Why" in line for line in lines)


async def test_discord_shows_the_stemmed_match_and_neutralizes_mentions(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = discord_settings(
        discord_fake,
        arxiv,
        subscriptions={CHANNEL_ID: ["reward model -everyone", "channel everyone"]},
    )
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == 2
    fields = {
        embed["title"]: f["value"]
        for message in discord_fake.posted(CHANNEL_ID)
        for embed in message.embeds
        for f in embed.get("fields") or []
        if f["name"] == "Why"
    }
    assert fields[STEMMED] == "reward model -everyone — “Reward Modeling” in the title"
    hostile = next(v for t, v in fields.items() if t != STEMMED)
    assert "@\u200beveryone" in hostile and "@everyone" not in hostile
    assert not any(m.would_ping() for m in discord_fake.posted(CHANNEL_ID))
    assert discord_fake.refused == []


async def test_discord_without_explain_has_no_why_field(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = discord_settings(
        discord_fake, arxiv, subscriptions={CHANNEL_ID: ["reward model"]}
    ).model_copy(update={"signals": SignalsSettings(explain=False)})
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == 1
    names = [
        f["name"]
        for m in discord_fake.posted(CHANNEL_ID)
        for e in m.embeds
        for f in e.get("fields") or []
    ]
    assert names and "Why" not in names


def test_a_ranked_digest_says_what_raised_each_paper() -> None:
    liked = paper(1, title="RLHF from human preferences", summary="Preference data for RLHF.")
    day = [
        paper(2, title="Reward modeling with RLHF preferences", summary="We study RLHF."),
        paper(3, title="Galaxy clusters", summary="Dark matter halos."),
    ]
    taste = Taste(liked=(paper_text(liked),))
    ranked = rank_explained(day, taste, explain.RANKED_TERMS)
    assert [p for p, _ in ranked] == rank(day, taste)
    (best, terms), _ = ranked
    assert best.id == day[0].id
    assert "rlhf" in terms and len(terms) <= explain.RANKED_TERMS
    assert "rlhf" in explain.why(best, "reward model", terms).ranked_by
