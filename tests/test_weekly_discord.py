"""The week's papers on Discord, end to end: `/papers set weekly on` and the presses of three
users through the real discord.py client on the fake gateway, the weekly post through
discord.py's REST client to the fake Discord (which checks Discord's limits), a real Redis."""

# ruff: noqa: F811  (the arxiv fixture of test_discord_app, imported by name)

from __future__ import annotations

import json
from datetime import UTC, datetime

from adapters.discord.app import DiscordPublisher
from bot.settings import Settings
from bot.state.redis import RedisStore
from bot.votes import SAVE, VOTE
from bot.weekly import WeeklyPoster
from tests.fakes.arxiv_server import FakeArxiv
from tests.fakes.discord_api import CHANNEL_ID, MEMBER_ID, TOKEN, FakeDiscord, Posted
from tests.test_discord_app import arxiv, running  # noqa: F401  (arxiv: its fixture)
from tests.test_discord_buttons import labels, posted_digest, pressed, settings_for


async def post_weekly(settings: Settings, store: RedisStore, fake: FakeDiscord) -> list[Posted]:
    """This week's post made once by each of two posters in turn (a restart); the messages."""
    before = len(fake.posted(CHANNEL_ID))
    for _ in range(2):
        async with DiscordPublisher(settings.discord, TOKEN) as output:
            poster = WeeklyPoster(settings, store, {"discord": output})
            await poster.run_until_done(poster.schedule.next(datetime.now(UTC)))
    return fake.posted(CHANNEL_ID)[before:]


async def test_the_weeks_papers_with_votes_from_three_users(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = settings_for(discord_fake, arxiv)
    async with running(discord_fake, settings, redis_store) as bot:
        on = await bot.text("set", option="weekly", state="on")
        assert on == "Posting the week's papers is now on for this channel (Fridays at 16:00 UTC)."
    digest = await posted_digest(discord_fake, arxiv, redis_store)  # papers 5 to 1
    async with running(discord_fake, settings, redis_store) as bot:
        for n in range(3):
            await pressed(bot, digest, f"{VOTE}:2611.00005", user_id=MEMBER_ID + n)
        for n in range(2):
            await pressed(bot, digest, f"{VOTE}:2611.00004", user_id=MEMBER_ID + n)
        await pressed(bot, digest, f"{SAVE}:2611.00005", user_id=MEMBER_ID + 2)
        await pressed(bot, digest, f"{SAVE}:2611.00002", user_id=MEMBER_ID)

        (weekly,) = await post_weekly(settings, redis_store, discord_fake)
        assert weekly.content.splitlines() == [
            weekly.content.splitlines()[0],
            "5 papers this week, 2 with votes (most votes first):",
            "No votes for 3 papers: “Reward model study 2” (🔖 1), “Reward model study 3”, "
            "“Reward model study 1”.",
        ]
        assert weekly.content.startswith("🗓️ **The week's papers · ")
        assert [e["title"] for e in weekly.embeds] == [
            "👍 3 · 🔖 1 · Reward model study 5",
            "👍 2 · Reward model study 4",
        ]
        assert labels(weekly)[f"{VOTE}:2611.00005"] == "#1 👍 Relevant · 3"
        assert labels(weekly)[f"{VOTE}:2611.00004"] == "#2 👍 Relevant · 2"
        assert weekly.allowed_mentions == {"parse": []} and not weekly.would_ping()
        assert str(MEMBER_ID) not in json.dumps(weekly.body), "counts, never names"
        assert discord_fake.refused == []

        # Its buttons work: a fourth vote shows on the weekly post.
        await pressed(bot, weekly, f"{VOTE}:2611.00004", user_id=MEMBER_ID + 3)
        assert labels(weekly)[f"{VOTE}:2611.00004"] == "#2 👍 Relevant · 3"


async def test_weekly_off_posts_nothing(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = settings_for(discord_fake, arxiv)
    digest = await posted_digest(discord_fake, arxiv, redis_store)
    async with running(discord_fake, settings, redis_store) as bot:
        await pressed(bot, digest, f"{VOTE}:2611.00005")
        assert await post_weekly(settings, redis_store, discord_fake) == []
