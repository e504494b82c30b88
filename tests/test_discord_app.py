"""The Discord adapter end to end: the real discord.py client against a fake Discord (REST and
gateway), the real core with real Redis, and the fake arXiv."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from adapters.discord.app import (
    FAILED,
    IN_DMS,
    NOT_HERE,
    STALE,
    DiscordPublisher,
    create_client,
    identify,
    interaction_claims,
    invite_url,
    publisher_from_settings,
    serve,
)
from adapters.discord.render import DESCRIPTION_LIMIT, ZWSP, escape
from bot import keywords as kw
from bot.arxiv_source import ArxivSource
from bot.claims import Claim
from bot.commands import Commands, Reply
from bot.digest import DigestRunner, RunReport
from bot.models import Channel
from bot.progress import reporting_to
from bot.settings import (
    ArxivSettings,
    CommandSettings,
    DigestSettings,
    DiscordSettings,
    Settings,
    SettingsError,
    SubscriptionSettings,
)
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import (
    FakeArxiv,
    FakeListing,
    FakePaper,
    make_paper,
    papers_from_feed,
)
from tests.fakes.discord_api import (
    APPLICATION_ID,
    BOT_PERMISSIONS,
    CHANNEL_ID,
    EMBED_LINKS,
    GUILD_ID,
    MEMBER_ID,
    MEMBER_PERMISSIONS,
    MODERATOR_PERMISSIONS,
    OTHER_CHANNEL_ID,
    ROLE_ID,
    TOKEN,
    FakeDiscord,
    Posted,
    limit_violations,
)
from tests.recorded import Recorded
from tests.seed import seed_fake_papers, seed_ids, seed_listing

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
UNKNOWN_CHANNEL_ID = 4242
HERE = Channel("discord", str(CHANNEL_ID))


def clock() -> datetime:
    return NOW


def reward_papers() -> list[FakePaper]:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 6)]
    return [*papers, make_paper(9, title="Unrelated topic")]


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv(reward_papers()) as fake:
        yield fake


def make_settings(
    fake: FakeDiscord,
    arxiv: FakeArxiv,
    *,
    subscriptions: dict[int, list[str]] | None = None,
    timeout: float = 5,
    commands: CommandSettings | None = None,
    digest: DigestSettings | None = None,
    **discord_options: Any,
) -> Settings:
    discord_options.setdefault("guild_ids", [GUILD_ID])
    subs = [
        SubscriptionSettings(platform="discord", channel=str(channel), keywords=keywords)
        for channel, keywords in (subscriptions or {}).items()
    ]
    return Settings(
        arxiv=ArxivSettings(
            api_url=arxiv.url,
            rss_url=arxiv.rss_url,
            oai_url="",
            request_interval=0,
            retry_backoff=0,
            timeout=timeout,
            max_retries=0,
        ),
        commands=commands or CommandSettings(),
        digest=digest or DigestSettings(),
        discord=DiscordSettings(
            token=TOKEN, api_url=fake.api_url, gateway_url=fake.gateway_url, **discord_options
        ),
        subscriptions=subs,
    )


@dataclass
class Bot:
    fake: FakeDiscord
    client: discord.Client
    store: RedisStore

    async def send(self, subcommand: str, **options: Any) -> str:
        return await self.fake.send_interaction(self.fake.slash(subcommand, **options))

    async def answers(self, token: str, count: int = 1) -> list[Posted]:
        def enough() -> list[Posted] | None:
            found = self.fake.replies(token)
            return found if len(found) >= count else None

        return await self.fake.wait_until(enough)

    async def run(self, subcommand: str, *, replies: int = 1, **options: Any) -> list[Posted]:
        return await self.answers(await self.send(subcommand, **options), replies)

    async def text(self, subcommand: str, **options: Any) -> str:
        (answer,) = await self.run(subcommand, **options)
        return answer.content


@contextlib.asynccontextmanager
async def running(
    fake: FakeDiscord, settings: Settings, store: RedisStore, claim: Claim | None = None
) -> AsyncIterator[Bot]:
    commands = Commands(settings, store, ArxivSource(settings.arxiv), clock=clock)
    client = create_client(settings, commands, claim=claim)
    task = asyncio.create_task(client.start(TOKEN))
    ready = asyncio.create_task(fake.wait_identified(fake.gateway.sessions + 1))
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    await ready
    try:
        yield Bot(fake, client, store)
    finally:
        await client.close()
        await task


@pytest.fixture
async def bot(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> AsyncIterator[Bot]:
    async with running(discord_fake, make_settings(discord_fake, arxiv), redis_store) as b:
        yield b


async def run_digest(settings: Settings, store: RedisStore, **publisher: Any) -> RunReport:
    source = ArxivSource(settings.arxiv)
    async with DiscordPublisher(settings.discord, TOKEN, **publisher) as output:
        runner = DigestRunner(settings, store, source, {"discord": output}, clock=clock)
        return await runner.run()


def titles(messages: list[Posted]) -> list[str]:
    return [embed["title"] for m in messages for embed in m.embeds]


def outcome(report: RunReport, channel_id: int) -> tuple[int, str | None]:
    (found,) = [c for c in report.channels if c.channel.id == str(channel_id)]
    return found.delivered, found.error


# -- connecting -------------------------------------------------------------------------------


async def test_connects_and_syncs_papers_to_the_guild_only(bot: Bot) -> None:
    fake = bot.fake
    assert fake.gateway.identify is not None
    assert fake.gateway.identify["token"] == TOKEN
    assert fake.gateway.identify["intents"] == discord.Intents(guilds=True).value
    (guild_sync,) = [cmds for guild, cmds in fake.command_syncs if guild == GUILD_ID]
    (papers,) = guild_sync
    assert papers["name"] == "papers"
    names = [o["name"] for o in papers["options"]]
    assert names == ["add", "remove", "list", "recent", "set", "top", "saved", "unsave", "help"]
    assert str(papers["default_member_permissions"]) == str(1 << 4)  # Manage Channels
    assert papers["dm_permission"] is False
    assert [cmds for guild, cmds in fake.command_syncs if guild is None] == [[]]
    assert bot.client.user is not None and bot.client.user.bot
    assert bot.client.get_guild(GUILD_ID) is not None


async def test_syncs_globally_without_guild_ids(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv, guild_ids=[])
    async with running(discord_fake, settings, redis_store):
        assert [g for g, _ in discord_fake.command_syncs] == [None]
        assert discord_fake.command_syncs[0][1][0]["name"] == "papers"


async def test_serve_runs_until_cancelled_and_closes(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=clock)
    task = asyncio.create_task(serve(settings, commands))
    await discord_fake.wait_identified()
    token = await discord_fake.send_interaction(discord_fake.slash("help"))
    await discord_fake.wait_until(lambda: discord_fake.replies(token))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await discord_fake.wait_until(lambda: not discord_fake.gateway.sockets, within=2)
    assert discord.http.Route.BASE == "https://discord.com/api/v10"


async def test_serve_reports_a_refused_token(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    discord_fake.revoke_token()
    settings = make_settings(discord_fake, arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv))
    with pytest.raises(SettingsError, match="refused"):
        await serve(settings, commands)


async def test_replicas_answer_each_command_once(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv)
    claim = interaction_claims(redis_store)
    async with (
        running(discord_fake, settings, redis_store, claim) as first,
        running(discord_fake, settings, redis_store, claim),
    ):
        assert len(discord_fake.gateway.sockets) == 2
        for subcommand, options in [("add", {"keyword": "reward model"}), ("help", {})]:
            token = await first.send(subcommand, **options)
            (answer,) = await first.answers(token)
            await asyncio.sleep(0.1)  # time for a second answer, if one were coming
            (interaction_id,) = {c.interaction_id for c in discord_fake.callbacks_for(token)}
            assert discord_fake.callback_attempts.count(interaction_id) == 1
            assert len(discord_fake.replies(token)) == 1
    assert answer.content.startswith("/papers add")
    assert len(await redis_store.subscriptions(HERE)) == 1


# -- the commands -----------------------------------------------------------------------------


async def test_add_list_remove_end_to_end(bot: Bot, arxiv: FakeArxiv) -> None:
    token = await bot.send("add", keyword="reward model")
    (added,) = await bot.answers(token)
    (defer,) = bot.fake.callbacks_for(token)
    assert defer.type == 5 and defer.ephemeral
    assert added.ephemeral
    assert added.content.startswith("Added “reward model”. New papers will appear")
    assert titles([added]) == [f"Reward model study {n}" for n in (5, 4, 3)]
    assert added.allowed_mentions == {"parse": []}
    assert (await bot.store.subscriptions(HERE))[0].added_by == str(MEMBER_ID)

    (listed,) = await bot.run("list")
    assert listed.ephemeral
    assert listed.content.splitlines() == [
        "This channel follows:",
        "• reward model",
        "Options: posting new versions off, saying when nothing is new off, "
        "posting the week's papers off",
    ]

    assert await bot.text("remove", keyword="Reward  model") == "Removed “Reward model”."
    assert "follows no keywords yet" in await bot.text("list")


@pytest.mark.parametrize(
    "keyword",
    [
        "   ",
        "x" * 101,
        "reward\x07model",
        'say "hi',
        "(reward) model",
        "cats AND dogs",
        "foo:bar",
    ],
)
async def test_add_refuses_bad_keywords(bot: Bot, arxiv: FakeArxiv, keyword: str) -> None:
    with pytest.raises(kw.KeywordError) as refused:
        kw.clean(keyword)
    (answer,) = await bot.run("add", keyword=keyword)
    assert answer.content == escape(str(refused.value))
    assert answer.ephemeral and not answer.embeds
    assert arxiv.requests == []
    assert await bot.store.subscriptions(HERE) == []


async def test_add_refuses_duplicates_and_a_full_channel(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(
        discord_fake, arxiv, commands=CommandSettings(max_keywords_per_channel=2)
    )
    async with running(discord_fake, settings, redis_store) as bot:
        assert (await bot.text("add", keyword="reward model")).startswith("Added")
        duplicate = await bot.text("add", keyword="Reward  Models")
        assert duplicate == "This channel already follows “Reward Models”."
        assert (await bot.text("add", keyword="diffusion")).startswith("Added")
        full = await bot.text("add", keyword="transformers")
        assert full == "This channel follows 2 keywords, the most allowed. Remove one first."
    assert [s.keyword for s in await redis_store.subscriptions(HERE)] == [
        "reward model",
        "diffusion",
    ]


async def test_remove_unknown_keyword_lists_the_channels(bot: Bot) -> None:
    await bot.run("add", keyword="reward model")
    answer = await bot.text("remove", keyword="diffusion")
    assert answer == "This channel doesn't follow “diffusion”. It follows: “reward model”."


async def test_remove_autocompletes_the_channels_keywords(bot: Bot) -> None:
    await bot.run("add", keyword="reward model")
    await bot.run("add", keyword="diffusion")
    token = await bot.send("remove", focused="keyword", keyword="REW")
    (choices,) = await bot.fake.wait_until(lambda: bot.fake.callbacks_for(token))
    assert choices.type == 8
    assert choices.data == {"choices": [{"name": "reward model", "value": "reward model"}]}


async def test_recent(bot: Bot, arxiv: FakeArxiv) -> None:
    (answer,) = await bot.run("recent", keyword="reward model", n=2)
    assert answer.content == "Latest papers for “reward model”:"
    assert titles([answer]) == ["Reward model study 5", "Reward model study 4"]
    assert await bot.text("recent", n=0) == "Ask for between 1 and 20 papers."
    no_keywords = await bot.text("recent")
    assert no_keywords == "This channel follows no keywords yet. Try: /papers recent reward model"


async def test_recent_twenty_papers_come_in_two_messages(bot: Bot, arxiv: FakeArxiv) -> None:
    arxiv.papers += [make_paper(n, title=f"Reward model sequel {n}") for n in range(10, 40)]
    first, second = await bot.run("recent", replies=2, keyword="reward model", n=20)
    assert [len(first.embeds), len(second.embeds)] == [10, 10]
    assert first.content.startswith("Latest papers") and not second.content
    assert first.ephemeral and second.ephemeral
    assert bot.fake.refused == []


async def test_help_answers_at_once_without_deferring(bot: Bot) -> None:
    token = await bot.send("help")
    (answer,) = await bot.answers(token)
    (callback,) = bot.fake.callbacks_for(token)
    assert callback.type == 4 and callback.ephemeral
    assert "/papers add" in answer.content and "/papers recent" in answer.content


async def test_unknown_channel_permissions_warning_on_add(bot: Bot) -> None:
    missing = BOT_PERMISSIONS & ~EMBED_LINKS
    answer = await bot.text("add", keyword="reward model", app_permissions=missing)
    assert answer.startswith("Added")
    assert "missing Embed Links" in answer


# -- permissions --------------------------------------------------------------------------------


async def test_members_without_manage_channels_cannot_change_keywords(bot: Bot) -> None:
    answer = await bot.text("add", keyword="reward model", permissions=MEMBER_PERMISSIONS)
    assert answer == (
        "You can't change this channel's keywords: you need the Manage Channels permission"
    )
    refused = await bot.text("remove", keyword="reward model", permissions=MEMBER_PERMISSIONS)
    assert refused.startswith("You can't change")
    assert "follows no keywords" in await bot.text("list", permissions=MEMBER_PERMISSIONS)


@pytest.mark.parametrize(
    ("allowed", "who", "permitted"),
    [
        ({"allowed_users": [MEMBER_ID]}, {"permissions": MEMBER_PERMISSIONS}, True),
        (
            {"allowed_users": [MEMBER_ID]},
            {"user_id": 77, "permissions": MODERATOR_PERMISSIONS},
            False,
        ),
        (
            {"allowed_roles": [ROLE_ID]},
            {"roles": (ROLE_ID,), "permissions": MEMBER_PERMISSIONS},
            True,
        ),
        ({"allowed_roles": [ROLE_ID]}, {"permissions": MODERATOR_PERMISSIONS}, False),
    ],
)
async def test_configured_users_and_roles(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    allowed: dict[str, Any],
    who: dict[str, Any],
    permitted: bool,
) -> None:
    settings = make_settings(discord_fake, arxiv, **allowed)
    async with running(discord_fake, settings, redis_store) as bot:
        answer = await bot.text("add", keyword="reward model", **who)
    assert answer.startswith("Added") is permitted
    if not permitted:
        assert "listed in the bot's settings" in answer
    papers = discord_fake.command_syncs[0][1][0]
    assert papers["default_member_permissions"] is None  # visible; the list decides


# -- slow arXiv ---------------------------------------------------------------------------------


async def test_add_defers_at_once_while_arxiv_hangs(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv, timeout=1)
    async with running(discord_fake, settings, redis_store) as bot:
        arxiv.hang_next()
        started = time.monotonic()
        token = await bot.send("add", keyword="reward model")
        defer = await bot.fake.wait_until(lambda: bot.fake.callbacks_for(token))
        assert defer[0].type == 5 and defer[0].at - started < 0.5
        (answer,) = await bot.answers(token)
        assert answer.at - started >= 0.9
        assert answer.content == escape(
            "arXiv didn't answer, so nothing was added. Please try again in a few minutes."
        )
    assert await redis_store.subscriptions(HERE) == []


async def test_add_beyond_three_seconds_still_answers(bot: Bot, arxiv: FakeArxiv) -> None:
    arxiv.latency = 1.0
    started = time.monotonic()
    token = await bot.send("add", keyword="reward model")
    defer = await bot.fake.wait_until(lambda: bot.fake.callbacks_for(token))
    assert defer[0].at - started < 0.5
    (answer,) = await bot.answers(token)
    assert answer.at - started >= 1.0
    assert answer.content.startswith("Added")


# -- digests ------------------------------------------------------------------------------------


async def test_add_never_floods_and_nothing_posts_twice(
    bot: Bot, discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    (added,) = await bot.run("add", keyword="reward model")
    assert len(added.embeds) == 3
    settings = make_settings(discord_fake, arxiv)
    report = await run_digest(settings, redis_store)
    assert report.ok and discord_fake.posted() == []

    arxiv.papers.append(make_paper(50, title="Reward model, fresh"))
    assert (await run_digest(settings, redis_store)).delivered == 1
    assert titles(discord_fake.posted()) == ["Reward model, fresh"]
    assert discord_fake.posted()[0].content.startswith("📚 **New on arXiv for “reward model”**")

    assert (await run_digest(settings, redis_store)).delivered == 0
    assert len(discord_fake.posted()) == 1


async def test_digest_posts_over_rest_only(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv, subscriptions={CHANNEL_ID: ["reward model"]})
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == 5
    assert discord_fake.gateway.identify is None
    paths = {path for _, path in discord_fake.requests}
    assert paths == {
        "/api/v10/users/@me",
        "/api/v10/oauth2/applications/@me",
        f"/api/v10/channels/{CHANNEL_ID}/messages",
    }
    (message,) = discord_fake.posted()
    assert message.allowed_mentions == {"parse": []}
    assert discord.http.Route.BASE == "https://discord.com/api/v10"


async def test_digest_splits_long_papers_within_limits(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore, corpus: Path
) -> None:
    feed = corpus / "arxiv_api_2026_idlist_two_ids_one_missing_34_authors.xml"
    (many_authors,) = papers_from_feed(feed.read_bytes())
    abstract = ("information " * 400)[:4000].strip()
    long = [
        make_paper(n, title=f"Information theory study {n}", summary=abstract) for n in range(12)
    ]
    arxiv.papers[:] = [many_authors, *long]
    settings = make_settings(
        discord_fake,
        arxiv,
        subscriptions={CHANNEL_ID: ["information theory"]},
        digest=DigestSettings(first_run_papers=50),
    )
    report = await run_digest(settings, redis_store, abstract_chars=DESCRIPTION_LIMIT)
    assert report.ok and report.delivered == 13
    assert discord_fake.refused == []
    posted = discord_fake.posted()
    # Two long papers would pass 6000 characters: one a message, the short one joins the last.
    assert [len(m.embeds) for m in posted] == [1] * 11 + [2]
    for message in posted:
        assert limit_violations(message.body) == []
    urls = [e["url"] for m in posted for e in m.embeds]
    assert sorted(urls) == sorted(f"https://arxiv.org/abs/{p.id}" for p in [many_authors, *long])
    embeds = [e for m in posted for e in m.embeds]
    authors = {e["url"]: e["fields"][0]["value"] for e in embeds}
    listed = ", ".join(many_authors.authors[:3])
    assert authors[f"https://arxiv.org/abs/{many_authors.id}"] == f"{listed} et al."
    assert max(len(e.get("description", "")) for e in embeds) == len(abstract)


async def test_mentions_in_papers_never_ping(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    arxiv.papers[:] = [
        make_paper(1, title="@everyone Reward model <@&123> attack", summary="@here <@99> read")
    ]
    settings = make_settings(discord_fake, arxiv, subscriptions={CHANNEL_ID: ["reward model"]})
    assert (await run_digest(settings, redis_store)).delivered == 1
    (message,) = discord_fake.posted()
    assert message.allowed_mentions == {"parse": []}
    assert not message.would_ping()
    (embed,) = message.embeds
    assert embed["title"] == f"@{ZWSP}everyone Reward model <@{ZWSP}&123> attack"
    assert "@everyone" not in message.text() and "<@99>" not in message.text()


async def test_forbidden_and_unknown_channels_do_not_stop_the_others(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    subs = {c: ["reward model"] for c in (CHANNEL_ID, OTHER_CHANNEL_ID, UNKNOWN_CHANNEL_ID)}
    settings = make_settings(discord_fake, arxiv, subscriptions=subs)
    discord_fake.fail_channel(OTHER_CHANNEL_ID, 403)
    report = await run_digest(settings, redis_store)
    assert outcome(report, CHANNEL_ID) == (5, None)
    assert outcome(report, OTHER_CHANNEL_ID) == (
        0,
        "missing access or permissions (403): Missing Access",
    )
    assert outcome(report, UNKNOWN_CHANNEL_ID) == (0, "unknown channel (404): Unknown Channel")
    assert discord_fake.posted(OTHER_CHANNEL_ID) == []
    # Unknown Channel (10003) says the channel is gone; a 403 does not (issue 22, finding 7).
    gone = {c.channel.id for c in report.channels if c.gone}
    assert gone == {str(UNKNOWN_CHANNEL_ID)}

    discord_fake.heal_channel(OTHER_CHANNEL_ID)
    report = await run_digest(settings, redis_store)
    assert outcome(report, OTHER_CHANNEL_ID) == (5, None)
    assert outcome(report, CHANNEL_ID) == (0, None)
    assert len(discord_fake.posted(CHANNEL_ID)) == 1


async def test_a_failure_mid_digest_keeps_what_was_delivered(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    arxiv.papers.append(make_paper(20, title="Diffusion study"))
    subs = {CHANNEL_ID: ["reward model", "diffusion"]}
    settings = make_settings(discord_fake, arxiv, subscriptions=subs)
    discord_fake.fail_channel(CHANNEL_ID, 403, after=1)
    report = await run_digest(settings, redis_store)
    assert outcome(report, CHANNEL_ID)[0] == 5
    discord_fake.heal_channel(CHANNEL_ID)
    await run_digest(settings, redis_store)
    assert titles(discord_fake.posted()) == [
        *(f"Reward model study {n}" for n in (5, 4, 3, 2, 1)),
        "Diffusion study",
    ]


async def test_a_revoked_token_fails_every_channel_then_recovers(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    subs = {c: ["reward model"] for c in (CHANNEL_ID, OTHER_CHANNEL_ID)}
    settings = make_settings(discord_fake, arxiv, subscriptions=subs)
    discord_fake.revoke_token()
    report = await run_digest(settings, redis_store)
    assert [c.error for c in report.channels] == [
        "Discord refused the bot token (401): set a valid [discord] token"
    ] * 2
    discord_fake.token = TOKEN
    assert (await run_digest(settings, redis_store)).delivered == 10


async def test_a_token_revoked_after_login_is_a_delivery_error(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv, subscriptions={CHANNEL_ID: ["reward model"]})
    discord_fake.fail_channel(CHANNEL_ID, 401)
    report = await run_digest(settings, redis_store)
    assert outcome(report, CHANNEL_ID) == (0, "Discord refused the bot token (401)")


async def test_rate_limits_are_left_to_discord_py(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv, subscriptions={CHANNEL_ID: ["reward model"]})
    discord_fake.fail_channel(CHANNEL_ID, 429, times=1)
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == 5
    assert len(discord_fake.posted()) == 1
    posts = [r for r in discord_fake.requests if r[0] == "POST"]
    assert len(posts) == 2  # the 429, then the retry


async def test_publisher_needs_a_token(discord_fake: FakeDiscord, arxiv: FakeArxiv) -> None:
    settings = make_settings(discord_fake, arxiv)
    assert publisher_from_settings(settings).platform == "discord"
    settings.discord.token = None
    with pytest.raises(SettingsError, match="PAPERS_BOT_DISCORD__TOKEN"):
        publisher_from_settings(settings)


# -- setup helpers ------------------------------------------------------------------------------


def test_invite_url_asks_for_exactly_what_the_bot_uses() -> None:
    url = urlsplit(invite_url(APPLICATION_ID))
    assert (url.scheme, url.netloc, url.path) == ("https", "discord.com", "/oauth2/authorize")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["client_id"] == str(APPLICATION_ID)
    assert query["scope"].split() == ["bot", "applications.commands"]
    wanted = discord.Permissions(send_messages=True, embed_links=True, read_message_history=True)
    assert int(query["permissions"]) == wanted.value == 83968


async def test_identify_checks_the_token(discord_fake: FakeDiscord, arxiv: FakeArxiv) -> None:
    settings = make_settings(discord_fake, arxiv)
    me = await identify(settings)
    assert (me.application_id, me.invite_url) == (APPLICATION_ID, invite_url(APPLICATION_ID))
    assert me.name == "papers-bot"
    discord_fake.revoke_token()
    with pytest.raises(SettingsError, match="refused"):
        await identify(settings)


async def test_two_clients_in_one_process_each_reach_their_own_discord(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    """Each client's REST calls, gateway and interaction answers go where its own settings
    say, at the same time; discord.py's process-wide addresses are never changed."""
    defaults = discord_addresses()
    async with FakeDiscord() as other:
        first = make_settings(discord_fake, arxiv)
        second = make_settings(other, arxiv)
        async with (
            running(discord_fake, first, redis_store) as one,
            running(other, second, redis_store) as two,
        ):
            assert discord_addresses() == defaults
            assert "/papers add" in await one.text("help")
            assert "/papers add" in await two.text("help")
            async with DiscordPublisher(second.discord, TOKEN) as publisher:
                assert await publisher.notify(str(MEMBER_ID), Reply("hello")) is None
        assert discord_fake.gateway.sessions == other.gateway.sessions == 1
        assert discord_fake.dms(MEMBER_ID) == []
        assert [m.content for m in other.dms(MEMBER_ID)] == ["hello"]
    assert discord_addresses() == defaults


def discord_addresses() -> tuple[str, object]:
    return discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


# -- real captured payloads ---------------------------------------------------------------------


def corpus_payload(corpus: Path, name: str) -> dict[str, Any]:
    """A captured interaction; the `d` of a gateway envelope."""
    raw: dict[str, Any] = json.loads((corpus / name).read_text(encoding="utf-8"))
    return raw.get("d", raw) if raw.get("t") == "INTERACTION_CREATE" else raw


CAPTURES = [
    ("interaction_docs_slash_command_string_option", 53908232506183680, "cardsearch"),
    ("interaction_docs_user_command_resolved_member", 167348773423415296, "context-menu-user-2"),
    (
        "interaction_docs_message_command_resolved_message",
        167348773423415296,
        "context-menu-message-2",
    ),
    ("gateway_INTERACTION_CREATE_subcommand_group_discord4j", 275616469906358273, "payload"),
    (
        "gateway_INTERACTION_CREATE_all_option_types_resolved_discord4j",
        275616469906358273,
        "payload",
    ),
]


@pytest.mark.parametrize(("name", "user_id", "command"), CAPTURES)
async def test_captured_interactions_become_interactions(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    corpus: Path,
    name: str,
    user_id: int,
    command: str,
) -> None:
    payload = discord_fake.complete(corpus_payload(corpus, f"discord_{name}.json"))
    served = [GUILD_ID, int(payload["guild_id"])]
    settings = make_settings(discord_fake, arxiv, allowed_guilds=served)
    async with running(discord_fake, settings, redis_store) as bot:
        seen = asyncio.ensure_future(bot.client.wait_for("interaction"))
        token = await bot.fake.send_interaction(payload)
        interaction: discord.Interaction = await asyncio.wait_for(seen, 5)
        assert interaction.type is discord.InteractionType.application_command
        assert interaction.user.id == user_id
        assert interaction.guild_id == int(payload["guild_id"])
        assert interaction.channel_id == int(payload["channel_id"])
        assert interaction.data is not None and interaction.data.get("name") == command
        assert interaction.permissions.value == int(payload["member"]["permissions"])
        # Not one of ours: a short notice instead of silence, and the bot carries on.
        (notice,) = await bot.answers(token)
        assert notice.content == escape(STALE) and notice.ephemeral
        assert "/papers add" in await bot.text("help")


async def test_the_docs_slash_command_can_carry_papers_add(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore, corpus: Path
) -> None:
    settings = make_settings(discord_fake, arxiv, guild_ids=[], any_guild=True)
    async with running(discord_fake, settings, redis_store) as bot:
        payload = corpus_payload(
            corpus, "discord_interaction_docs_slash_command_string_option.json"
        )
        payload["data"] = discord_fake.slash("add", keyword="reward model")["data"]
        token = await discord_fake.send_interaction(discord_fake.complete(payload))
        (answer,) = await bot.answers(token)
    assert answer.content.startswith("Added “reward model”")
    (sub,) = await redis_store.subscriptions(Channel("discord", "645027906669510667"))
    assert sub.added_by == "53908232506183680"


async def test_a_malformed_subcommand_gets_a_notice_and_the_bot_carries_on(
    bot: Bot, corpus: Path
) -> None:
    # Kord's capture writes the sub-command's type as the string "1" (Discord sends 1).
    payload = corpus_payload(corpus, "discord_interaction_subcommand_integer_option_kord.json")
    assert payload["data"]["options"][0]["type"] == "1"
    payload["guild_id"] = str(GUILD_ID)
    data = bot.fake.slash("recent", n=1)["data"]
    data["options"][0]["type"] = "1"
    payload["data"] = data
    token = await bot.fake.send_interaction(bot.fake.complete(payload))
    (notice,) = await bot.answers(token)
    assert notice.content == escape(FAILED) and notice.ephemeral
    assert "/papers add" in await bot.text("help")


async def test_set_turns_channel_options_on_and_off(bot: Bot) -> None:
    assert await bot.text("set", option="revisions", state="on") == (
        "Posting new versions is now on for this channel."
    )
    listed = await bot.text("list")
    assert "follows no keywords" in listed
    await bot.text("add", keyword="reward model")
    assert "posting new versions on" in await bot.text("list")


async def test_channel_options_end_to_end(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    here = Channel("discord", str(CHANNEL_ID))
    await redis_store.set_channel_option(here, "quiet_days", True)
    await redis_store.set_channel_option(here, "revisions", True)
    digest = DigestSettings(first_run_papers=100, max_papers_per_channel=3)
    settings = make_settings(
        discord_fake, arxiv, subscriptions={CHANNEL_ID: ["reward model"]}, digest=digest
    )
    report = await run_digest(settings, redis_store)
    assert report.delivered == 3
    assert discord_fake.posted()[-1].content.startswith("…and 2 more new papers.")

    arxiv.papers[4] = arxiv.papers[4].new_version()  # "Reward model study 5", posted first
    before = len(discord_fake.posted())
    await run_digest(settings, redis_store)
    revised = titles(discord_fake.posted()[before:])
    assert len(revised) == 1 and revised[0].startswith("New version v2: ")

    before = len(discord_fake.posted())
    await run_digest(settings, redis_store)  # the same listing: said once already
    assert discord_fake.posted()[before:] == []
    arxiv.listing = FakeListing(day=date.today() + timedelta(days=1), items=[])
    await run_digest(settings, redis_store)  # the next day's listing has nothing for it
    (quiet,) = discord_fake.posted()[before:]
    assert quiet.content == "No new papers today for “reward model”."


async def test_every_seed_row_reaches_discord(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    arxiv.papers[:] = seed_fake_papers()  # arXiv's real answers, announced as new
    arxiv.listing = seed_listing(date(2025, 4, 24))
    settings = make_settings(
        discord_fake,
        arxiv,
        subscriptions={CHANNEL_ID: ["reward model", "reasoning"]},
        digest=DigestSettings(first_run_papers=100),
    )
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == len(set().union(*seed_ids().values()))
    links = {embed["url"] for m in discord_fake.posted() for embed in m.embeds}
    assert {link.rsplit("/", 1)[1] for link in links} == set().union(*seed_ids().values())


# -- issue 22, finding 6: only the servers the settings name -----------------------------------

OTHER_GUILD_ID = GUILD_ID + 1


def from_guild(payload: dict[str, Any], guild_id: int) -> dict[str, Any]:
    """The interaction as it comes from server `guild_id` (a global command, or a stale one
    there), made from one of GUILD_ID's."""
    if guild_id == GUILD_ID:
        return payload
    payload["data"].pop("guild_id", None)
    payload["guild_id"] = payload["guild"]["id"] = payload["channel"]["guild_id"] = str(guild_id)
    payload["authorizing_integration_owners"] = {"0": str(guild_id)}
    return payload


@pytest.mark.parametrize(
    ("options", "served", "refused"),
    [
        ({}, GUILD_ID, OTHER_GUILD_ID),  # allowed_guilds defaults to guild_ids
        ({"guild_ids": [], "allowed_guilds": [OTHER_GUILD_ID]}, OTHER_GUILD_ID, GUILD_ID),
        ({"guild_ids": [], "any_guild": True}, OTHER_GUILD_ID, None),
        ({"guild_ids": []}, None, GUILD_ID),  # nothing listed: no server is served
    ],
)
async def test_only_the_servers_of_the_settings_are_served(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    options: dict[str, Any],
    served: int | None,
    refused: int | None,
) -> None:
    settings = make_settings(discord_fake, arxiv, **options)
    async with running(discord_fake, settings, redis_store) as bot:
        if served is not None:
            payload = from_guild(bot.fake.slash("add", keyword="reward model"), served)
            (added,) = await bot.answers(await bot.fake.send_interaction(payload))
            assert added.content.startswith("Added “reward model”")
        if refused is not None:
            payload = from_guild(bot.fake.slash("add", keyword="diffusion"), refused)
            (answer,) = await bot.answers(await bot.fake.send_interaction(payload))
            assert answer.content == NOT_HERE and answer.ephemeral
            assert [s.keyword for s in await redis_store.subscriptions(HERE)] == (
                ["reward model"] if served is not None else []
            )


async def test_a_dm_is_refused_in_one_line(bot: Bot) -> None:
    payload = bot.fake.in_dm(bot.fake.slash("add", keyword="reward model"))
    (answer,) = await bot.answers(await bot.fake.send_interaction(payload))
    assert answer.content == IN_DMS and answer.ephemeral
    assert await bot.store.subscriptions(HERE) == []


async def test_a_429_wait_is_shown_with_its_reason(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = make_settings(discord_fake, arxiv, subscriptions={CHANNEL_ID: ["reward model"]})
    discord_fake.fail_channel(CHANNEL_ID, 429, times=1)
    shown = Recorded()
    with reporting_to(shown):
        assert (await run_digest(settings, redis_store)).delivered == 5
    assert shown.waits == [("Discord: HTTP 429 (retry_after)", 0.05)]
