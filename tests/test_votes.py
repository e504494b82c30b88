"""Buttons and the team's commands in the core: real Redis, the fake arXiv."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from bot.commands import Commands
from bot.models import Channel
from bot.state import Tally
from bot.state.redis import RedisStore
from bot.votes import LESS, SAVE, UNSAVE, VOTE
from tests.factories import Clock, paper
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.test_commands import commands_for, ctx

OTHER = Channel("slack", "C2")


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv([make_paper(7, title="Known to arXiv only")]) as fake:
        yield fake


@pytest.fixture
async def commands(arxiv: FakeArxiv, redis_store: RedisStore) -> Commands:
    await redis_store.signals.remember([paper(n) for n in range(1, 6)])
    return commands_for(arxiv, redis_store)


async def test_a_vote_and_its_undo(commands: Commands) -> None:
    first = await commands.press(ctx("U1"), VOTE, "2611.00001")
    assert (first.paper_id, first.reply, first.tally) == ("2611.00001", None, Tally(1, 0, 1))
    assert (await commands.press(ctx("U2"), VOTE, "2611.00001v2")).tally == Tally(2, 0, 1)
    assert (await commands.press(ctx("U1"), VOTE, "2611.00001")).tally == Tally(1, 0, 0)
    assert (await commands.press(ctx("U2"), LESS, "2611.00001")).tally == Tally(0, 1, -1)


@pytest.mark.parametrize(
    ("action", "value", "says"),
    [
        ("papers_delete", "2611.00001", "not one of papers-bot's"),
        (VOTE, "<!everyone>", "not an arXiv id"),
        (VOTE, "2611.00001 OR 1=1", "not an arXiv id"),
        (SAVE, "", "not an arXiv id"),
        (VOTE, "2611.99999", "arXiv doesn't know the paper 2611.99999"),
    ],
)
async def test_bad_presses_get_one_line_and_change_nothing(
    commands: Commands, redis_store: RedisStore, action: str, value: str, says: str
) -> None:
    pressed = await commands.press(ctx(), action, value)
    assert pressed.tally is None and pressed.reply is not None
    assert not pressed.reply.ok and says in pressed.reply.text and "\n" not in pressed.reply.text
    assert (await commands.handle(ctx(), "top 365")).papers == ()
    assert (await commands.handle(ctx(), "saved")).papers == ()


async def test_a_paper_the_store_forgot_is_asked_of_arxiv_once(
    commands: Commands, arxiv: FakeArxiv
) -> None:
    before = len(arxiv.requests)
    assert (await commands.press(ctx(), VOTE, "2611.00007")).tally == Tally(1, 0, 1)
    assert (await commands.press(ctx("U2"), VOTE, "2611.00007")).tally == Tally(2, 0, 1)
    assert len(arxiv.requests) == before + 1
    top = await commands.handle(ctx(), "top")
    assert [p.title for p in top.papers] == ["Known to arXiv only"]


async def test_save_saved_and_remove(commands: Commands) -> None:
    saved = await commands.press(ctx("U1"), SAVE, "2611.00002")
    assert saved.reply is not None and saved.reply.text.startswith("Saved “Paper number 2”")
    await commands.press(ctx("U1", OTHER), SAVE, "2611.00003")
    listing = await commands.handle(ctx("U1"), "saved")
    assert listing.ephemeral and listing.removable
    assert {p.id for p in listing.papers} == {"2611.00002", "2611.00003"}, "across channels"
    assert (await commands.handle(ctx("U2"), "saved")).papers == (), "a user's own list"
    removed = await commands.press(ctx("U1"), UNSAVE, "2611.00002")
    assert (
        removed.reply is not None
        and removed.reply.text == "Removed 2611.00002 from your saved papers."
    )
    again = await commands.handle(ctx("U1"), "unsave 2611.00002")
    assert not again.ok and "not among your saved papers" in again.text
    assert [p.id for p in (await commands.handle(ctx("U1"), "saved")).papers] == ["2611.00003"]
    toggled = await commands.press(ctx("U1"), SAVE, "2611.00003")
    assert toggled.reply is not None and toggled.reply.text.startswith("Removed")


async def test_top_counts_votes_in_the_period(
    arxiv: FakeArxiv, redis_client: aioredis.Redis
) -> None:
    clock = Clock()
    store = RedisStore(redis_client, clock=clock)
    await store.signals.remember([paper(n) for n in range(1, 6)])
    commands = commands_for(arxiv, store, clock=clock)
    await commands.press(ctx("U1"), VOTE, "2611.00004")
    clock.now += timedelta(days=3)
    for user, n in [("U1", 1), ("U1", 2), ("U2", 2), ("U3", 2), ("U1", 3), ("U2", 3)]:
        await commands.press(ctx(user), VOTE, f"2611.0000{n}")
    top = await commands.handle(ctx(), "top")
    assert [(p.id, label) for p, label in zip(top.papers, top.labels, strict=True)] == [
        ("2611.00002", "👍 3"),
        ("2611.00003", "👍 2"),
        ("2611.00001", "👍 1"),
        ("2611.00004", "👍 1"),
    ]
    assert top.text == "Most voted in this channel, the last 7 days:"
    assert [p.id for p in (await commands.handle(ctx(), "top 2")).papers][-1] == "2611.00001"
    assert (await commands.handle(ctx(channel=OTHER), "top")).papers == ()
    clock.now += timedelta(days=8)
    empty = await commands.handle(ctx(), "top")
    assert empty.ok and empty.papers == () and empty.text.startswith("No votes")


@pytest.mark.parametrize(
    "days",
    # Issue 22, finding 11: "0100000" passed the check (its first four digits), then
    # "0001000000000" overflowed. A number is written without leading zeros.
    ["0", "366", "-1", "week", "１", "99999999999", "0100000", "0001000000000", "07", "+7"],
)
async def test_top_refuses_odd_periods(commands: Commands, days: str) -> None:
    reply = await commands.handle(ctx(), f"top {days}")
    assert not reply.ok and reply.text == "Use: top [days], with days between 1 and 365."


@pytest.mark.parametrize("days", ["1", "365"])
async def test_top_takes_any_period_within_a_year(commands: Commands, days: str) -> None:
    reply = await commands.handle(ctx(), f"top {days}")
    assert reply.ok and reply.text.startswith("No votes in this channel in the last ")


async def test_the_team_commands_are_in_help(commands: Commands) -> None:
    text = (await commands.handle(ctx(), "help")).text
    assert "/papers top [days]" in text and "/papers saved" in text and "/papers unsave" in text
