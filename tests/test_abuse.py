"""Bad input and abuse through the real adapters: any command text on Slack (signed HTTP
slash commands into the bolt app) and Discord (INTERACTION_CREATE over the fake gateway),
replayed and forged Slack requests, users who may not change subscriptions, and one user
trying to make the bot hammer arXiv. Real Redis, the fake arXiv recording every request.
Unsigned, wrongly signed and stale Slack requests are proven in test_slack_app.py; rows and
references in docs/reliability.md."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.discord.app import FAILED
from adapters.slack.app import WORKING, RecentSignatures, signature_claims
from adapters.slack.app import serve as serve_slack
from adapters.slack.render import escape as slack_escape
from bot.claims import Claim
from bot.keywords import MAX_LENGTH, clean
from bot.models import Channel
from bot.settings import CommandSettings, SubscriptionSettings
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import FakeArxiv, make_paper, parse_query
from tests.fakes.discord_api import MEMBER_PERMISSIONS, FakeDiscord, Posted
from tests.fakes.slack_api import FakeSlack
from tests.test_discord_app import Bot as DiscordBot
from tests.test_discord_app import make_settings as discord_settings
from tests.test_discord_app import running
from tests.test_slack_app import CHANNEL, Bot, make_settings, sign

NOW = datetime(2026, 11, 4, 12, tzinfo=UTC)
HERE_SLACK = Channel("slack", CHANNEL)

# Pieces that have broken chat bots: markup, mentions, query syntax, invisible and
# right-to-left characters, emoji (with joiners), entities, quotes and parentheses.
PIECES = [
    "add",
    "remove",
    "recent",
    "reward model",
    "AND",
    "OR",
    "ANDNOT",
    "NOT",
    "au:",
    'au:"Yoshua Bengio"',
    "cat:cs.CL",
    "cat:",
    "ti:",
    "abs:x",
    "submittedDate:[202601010000 TO *]",
    '"',
    "'",
    "(",
    ")",
    "|",
    "-",
    "*",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123|general>",
    "<https://evil.example|click>",
    "@everyone",
    "@here",
    "<@&123>",
    "<@!456>",
    "<#789>",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u200f",
    "\ufeff",
    "שלום",
    "مرحبا",
    "🙂",
    "👩\u200d🔬",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\n",
    "\t",
    "&",
    "&amp;",
    "&lt;",
    "**bold**",
    "`code`",
    "||spoiler||",
    "x" * (MAX_LENGTH + 1),
]
TEXT = st.one_of(
    st.text(max_size=150),
    st.lists(st.sampled_from(PIECES), max_size=10).map(" ".join),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=10).map("".join),
)
LONG = ["x" * 10_000, "<!channel> " * 1_000, "🙂" * 10_000, "reward " * 1_500]
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
UNSAFE_SLACK = re.compile(r"<(?!https?://)")
"""In mrkdwn, `<` opens a mention (`<!channel>`, `<@U1>`) or a link: only links are ours."""
DISCORD_MENTION = re.compile(r"@everyone|@here|<@[!&]?\d+>|<#\d+>")


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 7)]
    papers.append(make_paper(20, title="Yoshua Bengio on cats", authors=["Yoshua Bengio"]))
    with FakeArxiv(papers) as fake:
        yield fake


@pytest.fixture
def store(redis_store: RedisStore) -> RedisStore:
    """The shared test Redis with a fixed clock: per-minute budgets don't reset mid-test."""
    return RedisStore(redis_store._r, prefix="abuse", clock=lambda: NOW)


class GuardedBot(Bot):
    """test_slack_app's bot, with the replay guard `jobs.py` gives it (shared through Redis)
    or, by default, the one `serve` makes (this process only)."""

    def __init__(self, *args: Any, first_use: Claim | None = None) -> None:
        super().__init__(*args)
        self.first_use = first_use

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(
            serve_slack(self.settings, self.commands, first_use=self.first_use)
        )
        await self._until_listening()


StartSlack = Callable[..., Awaitable[GuardedBot]]


@pytest.fixture
async def start_slack(
    slack: FakeSlack, arxiv: FakeArxiv, store: RedisStore
) -> AsyncIterator[StartSlack]:
    bots: list[GuardedBot] = []

    async def start(
        commands: CommandSettings | None = None,
        *,
        first_use: Claim | None = None,
        **slack_options: Any,
    ) -> GuardedBot:
        settings = make_settings(slack, arxiv, **slack_options)
        settings.commands = commands or CommandSettings(per_user_per_minute=1000)
        bot = GuardedBot(settings, store, slack, first_use=first_use)
        bots.append(bot)
        await bot.start()
        return bot

    yield start
    for bot in bots:
        await bot.stop()


@pytest.fixture
async def slack_bot(start_slack: StartSlack) -> GuardedBot:
    """One bot for all the examples of a property."""
    return await start_slack()


async def chat_keywords(store: RedisStore, channel: Channel) -> list[str]:
    return [s.keyword for s in await store.subscriptions(channel)]


def assert_queries_well_formed(arxiv: FakeArxiv) -> None:
    for request in arxiv.requests:
        parse_query(request.params["search_query"])  # the fake arXiv's own parser


# -- any text, Slack ---------------------------------------------------------------------------


def as_slack_sends(text: str, escaped: bool) -> str:
    """Slack escapes &, < and > in what the user typed; real mentions arrive as <...>."""
    return slack_escape(text) if escaped else text


@HYPOTHESIS
@given(verb=st.sampled_from(["add ", "remove ", "recent ", "set ", "", "ADD  "]), text=TEXT)
@example(verb="add ", text="")
@example(verb="", text="")
@example(verb="add ", text="<!channel> @everyone <@U123> <@&123>")
@example(verb="add ", text='au:"Yoshua Bengio"')
@example(verb="add ", text="R&D")
@example(verb="recent ", text="cat:cs.CL")
@example(verb="set ", text="revisions on")
async def test_any_slack_command_text_gets_a_safe_answer_or_a_round_tripping_keyword(
    slack_bot: GuardedBot, arxiv: FakeArxiv, verb: str, text: str
) -> None:
    for escaped in (True, False):
        await slack_once(slack_bot, arxiv, verb + text, escaped)


async def test_ten_thousand_characters_on_slack(slack_bot: GuardedBot, arxiv: FakeArxiv) -> None:
    for text in LONG:
        for verb in ("add ", "remove ", "recent ", ""):
            await slack_once(slack_bot, arxiv, verb + text, escaped=True)


async def slack_once(bot: Bot, arxiv: FakeArxiv, text: str, escaped: bool) -> None:
    before = await chat_keywords(bot.store, HERE_SLACK)
    ack, response = await bot.run(as_slack_sends(text, escaped))
    assert ack.status == 200 and ack.body in ("", WORKING)
    assert response.body["response_type"] == "ephemeral"  # nobody else sees it
    shown = [response.text, *(str(b.get("text", {}).get("text", "")) for b in response.blocks)]
    for line in shown:
        assert not UNSAFE_SLACK.search(line), line  # no mention, no forged link
    assert "Something went wrong" not in response.text  # no exception behind the answer
    added = [k for k in await chat_keywords(bot.store, HERE_SLACK) if k not in before]
    if added:
        (keyword,) = added
        assert clean(keyword) == keyword  # stored as shown, and it parses back to itself
        assert f"Added “{slack_escape(keyword)}”" in shown[1]
        _, listing = await bot.run("list")
        assert f"• {slack_escape(keyword)}" in listing.blocks[0]["text"]["text"].splitlines()
        await bot.store.remove_subscription(HERE_SLACK, keyword)
    assert_queries_well_formed(arxiv)


# -- any text, Discord -------------------------------------------------------------------------


@pytest.fixture
async def discord_bot(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, store: RedisStore
) -> AsyncIterator[DiscordBot]:
    settings = discord_settings(
        discord_fake, arxiv, commands=CommandSettings(per_user_per_minute=1000)
    )
    async with running(discord_fake, settings, store) as bot:
        yield bot


@HYPOTHESIS
@given(subcommand=st.sampled_from(["add", "remove", "recent"]), text=TEXT)
@example(subcommand="add", text="")
@example(subcommand="add", text="@everyone <@&123> <@!456> <#789> @here")
@example(subcommand="add", text="reward model")
@example(subcommand="remove", text="@everyone")
async def test_any_discord_option_text_gets_a_safe_answer_or_a_round_tripping_keyword(
    discord_bot: DiscordBot, arxiv: FakeArxiv, subcommand: str, text: str
) -> None:
    await discord_once(discord_bot, arxiv, subcommand, text)


async def test_ten_thousand_characters_on_discord(
    discord_bot: DiscordBot, arxiv: FakeArxiv
) -> None:
    for text in LONG:
        for subcommand in ("add", "remove", "recent"):
            await discord_once(discord_bot, arxiv, subcommand, text)


async def discord_once(bot: DiscordBot, arxiv: FakeArxiv, subcommand: str, text: str) -> None:
    here = Channel("discord", str(bot.fake.channel_ids[0]))
    before = await chat_keywords(bot.store, here)
    answers = await bot.answers(await bot.send(subcommand, keyword=text))
    for answer in answers:
        assert_no_discord_mention(answer)
        assert answer.ephemeral
        assert FAILED not in answer.text()
    added = [k for k in await chat_keywords(bot.store, here) if k not in before]
    if added:
        (keyword,) = added
        assert clean(keyword) == keyword
        assert answers[0].content.startswith("Added “")
        await bot.store.remove_subscription(here, keyword)
    assert_queries_well_formed(arxiv)


def assert_no_discord_mention(message: Posted) -> None:
    assert message.allowed_mentions == {"parse": []}  # Discord would ping nobody anyway
    assert not message.would_ping()
    assert not DISCORD_MENTION.search(message.text()), message.text()  # and none shows


# -- Slack HTTP: replays -----------------------------------------------------------------------


async def test_a_replayed_slack_request_gets_401_and_changes_nothing(
    slack_bot: GuardedBot, arxiv: FakeArxiv
) -> None:
    bot = slack_bot
    command = bot.slash("add reward model")
    body = urlencode(command.fields())
    timestamp = str(int(time.time()))
    signature = sign(timestamp, body)
    first = await bot.post(body, timestamp=timestamp, signature=signature)
    assert first.status == 200
    await bot.slack.wait_for_response("cmd1")
    state = (await chat_keywords(bot.store, HERE_SLACK), len(arxiv.requests))
    assert state == (["reward model"], 1)

    await bot.store.remove_subscription(HERE_SLACK, "reward model")
    again = await bot.post(body, timestamp=timestamp, signature=signature)
    assert again.status == 401
    assert await chat_keywords(bot.store, HERE_SLACK) == []  # not added back
    assert len(arxiv.requests) == 1
    assert [r.key for r in bot.slack.responses] == ["cmd1"]
    (_, listing) = await bot.run("list")  # a fresh, signed request still works
    assert "follows no keywords yet" in listing.text


async def test_replicas_sharing_redis_refuse_a_request_replayed_to_another(
    start_slack: StartSlack, slack: FakeSlack, arxiv: FakeArxiv, store: RedisStore
) -> None:
    first_use = signature_claims(store)  # what `papers-bot run` wires in
    first, second = [await start_slack(first_use=first_use) for _ in range(2)]
    body = urlencode(first.slash("add reward model").fields())
    timestamp = str(int(time.time()))
    signature = sign(timestamp, body)
    assert (await first.post(body, timestamp=timestamp, signature=signature)).status == 200
    assert (await second.post(body, timestamp=timestamp, signature=signature)).status == 401
    await slack.wait_for_response("cmd1")
    assert len(arxiv.requests) == 1 and len(slack.responses) == 1


async def test_remembered_signatures_expire_after_the_window() -> None:
    now = [0.0]
    seen = RecentSignatures(ttl=360, clock=lambda: now[0])
    assert await seen("v0=a") and not await seen("v0=a")
    now[0] = 200
    assert await seen("v0=b")
    now[0] = 361  # a's timestamp is stale now: Slack's 5-minute check refuses it anyway
    assert await seen("v0=a") and not await seen("v0=b")
    assert list(seen._until) == ["v0=b", "v0=a"]  # nothing kept past its window


# -- who may change subscriptions --------------------------------------------------------------


async def test_a_forged_slack_user_cannot_change_keywords(
    start_slack: StartSlack, arxiv: FakeArxiv, slack: FakeSlack
) -> None:
    bot = await start_slack(allowed_users=["U0BOSS"])
    boss = bot.slash("add reward model", user="U0BOSS")
    body = urlencode(boss.fields())
    # Claiming to be the boss, without Slack's signature or with another secret: 401.
    assert (await bot.post(body, signed=False)).status == 401
    timestamp = str(int(time.time()))
    material = f"v0:{timestamp}:{body}".encode()
    forged = "v0=" + hmac.new(b"not-the-signing-secret", material, hashlib.sha256).hexdigest()
    assert (await bot.post(body, timestamp=timestamp, signature=forged)).status == 401
    # Correctly signed (Slack sent it) for a user who isn't listed: the user id decides.
    for text in ("add reward model", "remove diffusion", "set revisions on", "set quiet on"):
        _, answer = await bot.run(text, user="U0MALLORY")
        assert answer.text.startswith(":warning: You can't change this channel's keywords")
    assert await bot.store.channel_options(HERE_SLACK) == {}
    assert await chat_keywords(bot.store, HERE_SLACK) == []
    assert arxiv.requests == [] and len(slack.responses) == 4
    _, added = await bot.run("add reward model", user="U0BOSS")
    assert added.text.startswith("Added")


async def test_a_discord_member_who_may_not_change_keywords_cannot_set_or_remove(
    discord_bot: DiscordBot, arxiv: FakeArxiv
) -> None:
    assert (await discord_bot.text("add", keyword="reward model")).startswith("Added")
    member = {"permissions": MEMBER_PERMISSIONS}
    refused = "You can't change this channel's keywords: you need the Manage Channels permission"
    assert await discord_bot.text("set", option="revisions", state="on", **member) == refused
    assert await discord_bot.text("remove", keyword="reward model", **member) == refused
    assert await discord_bot.text("add", keyword="diffusion", **member) == refused
    listing = await discord_bot.text("list", **member)
    assert "• reward model" in listing and "posting new versions off" in listing
    assert len(arxiv.requests) == 1


# -- caps: one user cannot make the bot hammer arXiv -------------------------------------------


async def test_one_user_cannot_make_the_bot_hammer_arxiv(
    start_slack: StartSlack, arxiv: FakeArxiv
) -> None:
    caps = CommandSettings(
        per_user_per_minute=5,
        arxiv_per_user_per_minute=3,
        max_keywords_per_channel=3,
        max_channels=2,
    )
    bot = await start_slack(caps)
    topics = [f"topic {n}" for n in range(25)]  # never fetched: the store has no papers
    bot.settings.subscriptions.append(
        SubscriptionSettings(platform="slack", channel="CMANY", keywords=topics)
    )
    assert bot.settings.arxiv.batch_size == 20

    # /papers recent in a channel of 25 keywords: one query per 20 keywords, not one each,
    # kept for the next ones (finding 3); after 5 commands a minute the user is told to slow
    # down, at no cost.
    answers = [await bot.say("recent", channel="CMANY", user="U0ALICE") for _ in range(12)]
    assert [a.startswith(":warning: Slow down") for a in answers] == [False] * 5 + [True] * 7
    assert len(arxiv.requests) == 2
    arxiv.clear_requests()

    # A different keyword each time: one query a command, 3 a minute (finding 3: the
    # member's arXiv requests are counted, not their commands); `list` still answers.
    answers = [await bot.say(f"recent subject {c}", user="U0BOB") for c in "abcd"]
    assert [a.startswith(":warning: Slow down: your commands asked arXiv") for a in answers] == [
        False
    ] * 3 + [True]
    assert "follows no keywords" in await bot.say("list", user="U0BOB")
    assert len(arxiv.requests) == 3
    arxiv.clear_requests()

    # Keywords beyond a channel's cap, channels beyond the platform's cap: refused first.
    for n in range(3):
        assert (await bot.say(f"add kw {n}", user="U0CAROL")).startswith("Added")
    assert "most allowed" in await bot.say("add kw 3", user="U0CAROL")
    assert (await bot.say("add kw 0", channel="C2", user="U0DAN")).startswith("Added")
    assert "max_channels" in await bot.say("add kw 0", channel="C3", user="U0DAN")
    assert len(arxiv.requests) == 4
    assert_queries_well_formed(arxiv)


async def test_a_replay_check_that_cannot_reach_redis_lets_the_command_answer(
    start_slack: StartSlack,
) -> None:
    """Without Redis every command fails anyway: the user gets that answer, not a bare 401."""

    async def unreachable(signature: str) -> bool:
        raise ConnectionError("Redis is down")

    bot = await start_slack(first_use=unreachable)
    assert "/papers add" in await bot.say("help")
