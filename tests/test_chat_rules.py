"""The chat rules the core owns for every platform (issue 25 item 2): the verb table, typed
command methods, answering when a claim fails, the saved list again after Remove, and the
wording of authors, links and "…and N more". Real Redis, the fake arXiv."""

import logging
from collections.abc import Iterator

import pytest

from bot import wording
from bot.claims import answers_here
from bot.commands import (
    SAVED_FORMS,
    SET_NAMES,
    SET_USAGE,
    SLOW_VERBS,
    USAGE,
    VERBS,
    CommandContext,
    Commands,
    UserError,
    parse_days,
    verb_of,
)
from bot.state.redis import RedisStore
from bot.votes import MAX_TOP_DAYS, SAVE, TOP_DAYS, TOP_USAGE, UNSAVE
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.test_commands import HERE, commands_for, ctx


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv([make_paper(1, title="Reward model 1")]) as fake:
        yield fake


@pytest.fixture
async def commands(arxiv: FakeArxiv, redis_store: RedisStore) -> Commands:
    await redis_store.signals.remember([paper(n) for n in range(1, 4)])
    return commands_for(arxiv, redis_store)


def test_every_verb_is_in_the_help_and_read_from_one_table() -> None:
    for verb in VERBS:
        assert f"/papers {verb}" in USAGE
    assert VERBS.keys() >= SLOW_VERBS
    assert [verb_of(t) for t in ("", "  ADD x", "recent 5", "frobnicate")] == [
        "help",
        "add",
        "recent",
        "other",
    ]
    assert all(f"set {name}" in USAGE for name in SET_NAMES)
    assert "saved bibtex" in USAGE and SAVED_FORMS == ("list", "bibtex")


def test_top_days_are_read_once_and_bounded() -> None:
    assert parse_days("") == TOP_DAYS and parse_days(" 30 ") == 30
    for wrong in ("0", "366", "07", "a week", "-1"):
        with pytest.raises(UserError, match=r"Use: top \[days\]"):
            parse_days(wrong)


async def test_command_methods_take_typed_arguments(commands: Commands) -> None:
    on = await commands.set_option(ctx(), "revisions", True)
    assert on.text == "Posting new versions is now on for this channel."
    off = await commands.set_option(ctx(), "QUIET", False)
    assert off.text == "Saying when nothing is new is now off for this channel."
    alerts = await commands.set_option(ctx(), "alerts", False)
    assert alerts.text.startswith("Alerts are off")
    with pytest.raises(UserError, match=SET_USAGE.replace("|", r"\|")):
        await commands.set_option(ctx(), "loud", True)
    top = await commands.votes.top(ctx(), 30)
    assert top.text.startswith("No votes in this channel in the last 30 days.")
    for days in (0, MAX_TOP_DAYS + 1):
        with pytest.raises(UserError) as refused:
            await commands.votes.top(ctx(), days)
        assert str(refused.value) == TOP_USAGE


async def test_a_member_who_may_not_change_the_channel_is_told_so_first(
    commands: Commands,
) -> None:
    denied = CommandContext(HERE, "U1", denied="you need the Manage Channels permission")
    reply = await commands.handle(denied, "set revisions maybe")
    assert reply.text.startswith("You can't change this channel's keywords")
    alerts = await commands.handle(denied, "set alerts maybe")
    assert alerts.text == "Use: set alerts on|off"


async def test_remove_shows_the_saved_list_again_in_its_place(commands: Commands) -> None:
    await commands.press(ctx(), SAVE, "2611.00001")
    await commands.press(ctx(), SAVE, "2611.00002")
    removed = await commands.press(ctx(), UNSAVE, "2611.00001")
    assert removed.reply is not None and removed.reply.text.startswith("Removed 2611.00001")
    again = removed.replacement
    assert again is not None and again.removable
    assert [p.id for p in again.papers] == ["2611.00002"]
    missing = await commands.press(ctx(), UNSAVE, "2611.00001")
    assert missing.replacement is None
    assert missing.reply is not None and not missing.reply.ok
    saved = await commands.press(ctx(), SAVE, "2611.00003")
    assert saved.replacement is None


async def test_a_failed_claim_is_answered_anyway(caplog: pytest.LogCaptureFixture) -> None:
    async def taken() -> bool:
        return False

    async def broken() -> bool:
        raise ConnectionError("redis down")

    assert not await answers_here(taken(), "claim_failed id=1")
    with caplog.at_level(logging.WARNING):
        assert await answers_here(broken(), "claim_failed id=2")
    assert "claim_failed id=2 error='redis down'" in caplog.text


def test_wording_of_authors_links_and_more() -> None:
    assert wording.authors([]) == ""
    assert wording.authors(["A", "B", "C"]) == "A, B, C"
    assert wording.authors(["A", "B", "C", "D"]) == "A, B, C et al."
    shown = paper(4, comment="Code: https://github.com/o/r")
    assert [label for label, _ in wording.links(shown)] == ["PDF", "HTML", "Code"]
    assert wording.links(shown)[2][1] == "https://github.com/o/r"
    assert wording.and_more(3) == "…and 3 more"
    assert wording.more_papers(7) == "…and 7 more new papers."
