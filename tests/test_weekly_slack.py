"""The week's papers on Slack, end to end: a digest posted by the real `AsyncWebClient` to the
fake Slack, votes and saves pressed through the real bolt app by three users, then the weekly
post made by `WeeklyPoster` (two at once, and again after a restart) with a real Redis."""

# ruff: noqa: F811  (the fixtures of test_slack_app, imported by name)

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from adapters.slack.app import publisher_from_settings
from bot.models import Channel
from bot.settings import Settings, SubscriptionSettings
from bot.votes import SAVE, VOTE
from bot.weekly import WeeklyPoster
from tests.fakes.slack_api import block_problems
from tests.test_slack_app import (  # noqa: F401  (arxiv, bot, make_bot: its fixtures)
    CHANNEL,
    Bot,
    arxiv,
    bot,
    make_bot,
)
from tests.test_slack_buttons import post_digest, press, vote_button


def weekly_settings(bot: Bot) -> Settings:
    """The bot's settings with CHANNEL following `reward model`, `weekly = true` in the file."""
    mine = SubscriptionSettings(
        platform="slack", channel=CHANNEL, keywords=["reward model"], weekly=True
    )
    return bot.settings.model_copy(update={"subscriptions": [*bot.settings.subscriptions, mine]})


async def vote(bot: Bot, message: dict[str, Any], paper: str, user: str, count: str) -> None:
    await press(bot, bot.slack.block_actions(CHANNEL, message["ts"], VOTE, paper, user=user))
    await bot.slack.wait_until(lambda: vote_button(message, paper)["text"]["text"].endswith(count))


async def save(bot: Bot, message: dict[str, Any], paper: str, user: str) -> None:
    key = f"save-{user}-{paper}"
    payload = bot.slack.block_actions(CHANNEL, message["ts"], SAVE, paper, user=user)
    payload["response_url"] = bot.slack.response_url(key)
    await press(bot, payload)
    await bot.slack.wait_for_response(key)


async def a_week_of_votes(bot: Bot, settings: Settings) -> None:
    """Five papers posted (6 to 2); three users vote: 6 three times, 5 twice, 4 once then
    taken back; 6 is saved by one, 3 by another, who has it saved still."""
    (message,) = await post_digest(bot, settings=settings)
    for n, user in enumerate(("U1", "U2", "U3"), 1):
        await vote(bot, message, "2611.00006", user, f"· {n}")
    await vote(bot, message, "2611.00005", "U1", "· 1")
    await vote(bot, message, "2611.00005", "U2", "· 2")
    await vote(bot, message, "2611.00004", "U3", "· 1")
    await vote(bot, message, "2611.00004", "U3", "Relevant")
    await save(bot, message, "2611.00006", "U2")
    await save(bot, message, "2611.00003", "U1")


async def weekly_posts(bot: Bot, settings: Settings, replicas: int = 1) -> list[dict[str, Any]]:
    """Run `replicas` posters at once on this week's slot; the channel's weekly messages."""
    outputs = [publisher_from_settings(settings, interval=0) for _ in range(replicas)]
    posters = [WeeklyPoster(settings, bot.store, {"slack": out}) for out in outputs]
    slot = posters[0].schedule.next(datetime.now(UTC))
    try:
        await asyncio.gather(*(p.run_until_done(slot) for p in posters))
    finally:
        for out in outputs:
            await out.aclose()
    return [
        m
        for m in bot.slack.messages(CHANNEL)
        if m.get("blocks") and m["blocks"][0]["type"] == "header"
        if m["blocks"][0]["text"]["text"].startswith("The week's papers")
    ]


def sections(message: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]


async def test_the_weeks_papers_with_votes_from_three_users_posted_once(bot: Bot) -> None:
    settings = weekly_settings(bot)
    await a_week_of_votes(bot, settings)
    (weekly,) = await weekly_posts(bot, settings, replicas=2)
    assert "thread_ts" not in weekly, "in the channel itself, not in a digest's thread"
    texts = sections(weekly)
    assert texts[0] == "5 papers this week, 2 with votes (most votes first):"
    assert texts[1].startswith("👍 3 · 🔖 1 *<https://arxiv.org/abs/2611.00006|")
    assert texts[2].startswith("👍 2 *<https://arxiv.org/abs/2611.00005|")
    (line,) = [b for b in weekly["blocks"] if b["type"] == "context"][-1]["elements"]
    assert line["text"] == (
        "No votes for 3 papers: “Reward model study 3” (🔖 1), “Reward model study 4”, "
        "“Reward model study 2”."
    )
    assert vote_button(weekly, "2611.00006")["text"]["text"] == "👍 Relevant · 3"
    assert block_problems(weekly["blocks"]) == []
    shown = json.dumps(weekly)
    assert not any(user in shown for user in ("U1", "U2", "U3")), "counts, never names"
    assert "<@" not in shown and "<!" not in shown

    # Buttons work on the weekly post: a fourth vote shows there.
    await vote(bot, weekly, "2611.00005", "U4", "· 3")
    _, top = await bot.run("top")
    assert top.blocks[1]["text"]["text"].startswith("👍 3 ")

    # A replica started later (or a restart) finds the week posted.
    assert len(await weekly_posts(bot, settings)) == 1


async def test_weekly_off_posts_nothing_and_bad_input_changes_nothing(bot: Bot) -> None:
    settings = weekly_settings(bot)
    await a_week_of_votes(bot, settings)
    assert (
        await bot.say("set weekly off") == "Posting the week's papers is now off for this channel."
    )
    refused = await bot.say("set weekly maybe")
    assert refused == ":warning: Use: set revisions|quiet|weekly on|off, or set alerts on|off"
    assert await bot.store.channel_options(Channel("slack", CHANNEL)) == {"weekly": False}
    assert await weekly_posts(bot, settings) == []
    on = await bot.say("set weekly on")
    assert on == "Posting the week's papers is now on for this channel (Fridays at 16:00 UTC)."
    assert len(await weekly_posts(bot, settings)) == 1
