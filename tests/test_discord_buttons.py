"""Buttons under posted papers, end to end on Discord: a digest posted by discord.py's REST
client to the fake Discord, then presses pushed as INTERACTION_CREATE over the fake gateway
to the real discord.py client, answered by the core with a real Redis."""

# ruff: noqa: F811  (the arxiv fixture of test_discord_app, imported by name)

from __future__ import annotations

from typing import Any

from adapters.discord.app import NOT_HERE, interaction_claims
from bot.settings import DigestSettings
from bot.state.redis import RedisStore
from bot.votes import LESS, SAVE, UNSAVE, VOTE
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, GUILD_ID, MEMBER_ID, FakeDiscord, Posted
from tests.test_discord_app import (  # noqa: F401  (arxiv: its fixture)
    Bot,
    arxiv,
    make_settings,
    run_digest,
    running,
)

PAPER = "2611.00005"


def settings_for(fake: FakeDiscord, arxiv: FakeArxiv, **digest: Any) -> Any:
    return make_settings(
        fake,
        arxiv,
        subscriptions={CHANNEL_ID: ["reward model"]},
        digest=DigestSettings(**digest),
    )


async def posted_digest(fake: FakeDiscord, arxiv: FakeArxiv, store: RedisStore) -> Posted:
    report = await run_digest(settings_for(fake, arxiv), store)
    assert report.ok and report.delivered == 5  # a new keyword's first run: five papers
    (message,) = fake.posted(CHANNEL_ID)
    return message


def labels(message: Posted) -> dict[str, str]:
    return {
        b["custom_id"]: b["label"]
        for row in message.body.get("components") or []
        for b in row["components"]
    }


async def pressed(bot: Bot, message: Posted, custom_id: str, user_id: int = MEMBER_ID) -> str:
    """Press, wait for the answer (an edit of the message, or a private line); the token."""
    fake = bot.fake
    token = await fake.send_interaction(fake.press(message, custom_id, user_id=user_id))
    await fake.wait_until(lambda: fake.edits.get(token) or fake.followups.get(token))
    (deferred,) = fake.callbacks_for(token)
    assert deferred.type == 6  # deferred at once: the 3 seconds never depend on the core
    return token


def private_line(fake: FakeDiscord, token: str) -> Posted:
    (line,) = fake.followups[token]
    assert line.ephemeral and line.allowed_mentions == {"parse": []}
    return line


async def test_each_posted_paper_has_numbered_buttons_within_discords_limits(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    message = await posted_digest(discord_fake, arxiv, redis_store)
    footers = [e["footer"]["text"] for e in message.embeds]
    assert [f.split(" · ")[0] for f in footers] == ["#1", "#2", "#3", "#4", "#5"]
    assert labels(message)[f"{VOTE}:{PAPER}"] == "#1 👍 Relevant"
    assert labels(message)[f"{SAVE}:{PAPER}"] == "#1 🔖"
    assert labels(message)[f"{LESS}:{PAPER}"] == "#1 👎"
    assert len(labels(message)) == 15
    assert discord_fake.refused == []


async def test_at_most_eight_papers_a_message_with_buttons(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = settings_for(discord_fake, arxiv, first_run_papers=20)
    arxiv.papers += [make_paper(n, title=f"Reward model study {n}") for n in range(20, 32)]
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == 17
    posted = discord_fake.posted(CHANNEL_ID)
    assert [len(m.embeds) for m in posted] == [8, 8, 1]
    assert all(len(labels(m)) == 3 * len(m.embeds) for m in posted)
    assert discord_fake.refused == []


async def test_a_vote_shows_its_count_and_an_undo_takes_it_back(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    message = await posted_digest(discord_fake, arxiv, redis_store)
    async with running(discord_fake, settings_for(discord_fake, arxiv), redis_store) as bot:
        token = await pressed(bot, message, f"{VOTE}:{PAPER}")
        (edit,) = bot.fake.edits[token]
        assert "embeds" not in edit and "content" not in edit  # only the buttons change
        assert labels(message)[f"{VOTE}:{PAPER}"] == "#1 👍 Relevant · 1"
        assert message.embeds and message.body["embeds"][0]["footer"]["text"].startswith("#1")
        await pressed(bot, message, f"{VOTE}:{PAPER}", user_id=MEMBER_ID + 1)
        assert labels(message)[f"{VOTE}:{PAPER}"] == "#1 👍 Relevant · 2"
        await pressed(bot, message, f"{VOTE}:{PAPER}")
        assert labels(message)[f"{VOTE}:{PAPER}"] == "#1 👍 Relevant · 1"
        assert labels(message)[f"{VOTE}:2611.00004"] == "#2 👍 Relevant"
        (top,) = await bot.run("top")
        assert top.ephemeral
        assert [e["title"] for e in top.embeds] == ["👍 1 · Reward model study 5"]


async def test_buttons_work_after_a_restart_and_replicas_answer_once(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    message = await posted_digest(discord_fake, arxiv, redis_store)
    settings = settings_for(discord_fake, arxiv)
    claim = interaction_claims(redis_store)
    async with (
        running(discord_fake, settings, redis_store, claim) as bot,
        running(discord_fake, settings, redis_store, claim),
    ):
        payload = discord_fake.press(message, f"{VOTE}:{PAPER}")
        token = await discord_fake.send_interaction(payload)
        await discord_fake.wait_until(lambda: discord_fake.edits.get(token))
        assert discord_fake.callback_attempts.count(int(payload["id"])) == 1
        assert len(discord_fake.edits[token]) == 1
        assert labels(message)[f"{VOTE}:{PAPER}"] == "#1 👍 Relevant · 1"
        assert (await bot.run("top"))[0].embeds[0]["title"].startswith("👍 1 · ")


async def test_save_saved_and_remove(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    message = await posted_digest(discord_fake, arxiv, redis_store)
    async with running(discord_fake, settings_for(discord_fake, arxiv), redis_store) as bot:
        saved = private_line(discord_fake, await pressed(bot, message, f"{SAVE}:{PAPER}"))
        assert saved.content.startswith("Saved “Reward model study 5”")
        (listing,) = await bot.run("saved")
        assert listing.ephemeral
        assert [e["footer"]["text"].split(" · ")[0] for e in listing.embeds] == ["#1"]
        assert labels(listing) == {f"{UNSAVE}:{PAPER}": "Remove #1"}
        token = await pressed(bot, listing, f"{UNSAVE}:{PAPER}")
        (removed,) = discord_fake.edits[token]
        assert removed["content"].startswith("You have no saved papers.")
        assert removed["embeds"] == [] and removed["components"] == []
        (again,) = await bot.run("saved")
        assert again.content.startswith("You have no saved papers.")


async def test_a_forged_button_gets_one_private_line_and_changes_nothing(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    message = await posted_digest(discord_fake, arxiv, redis_store)
    forged = f"{VOTE}:not-an-id"
    message.body["components"][0]["components"][0]["custom_id"] = forged
    async with running(discord_fake, settings_for(discord_fake, arxiv), redis_store) as bot:
        answer = private_line(discord_fake, await pressed(bot, message, forged))
        assert answer.content == "That is not an arXiv id (like 2504.12345)."
        (top,) = await bot.run("top")
        assert top.content.startswith("No votes")


async def test_a_press_from_another_server_gets_one_line_and_changes_nothing(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    """Issue 22, finding 6: the buttons answer only in the servers the settings name."""
    message = await posted_digest(discord_fake, arxiv, redis_store)
    async with running(discord_fake, settings_for(discord_fake, arxiv), redis_store) as bot:
        payload = discord_fake.press(message, f"{SAVE}:{PAPER}", guild_id=GUILD_ID + 1)
        token = await discord_fake.send_interaction(payload)
        (answer,) = await bot.answers(token)
        assert answer.content == NOT_HERE and answer.ephemeral
        (saved,) = await bot.run("saved")
        assert saved.content.startswith("You have no saved papers.")
