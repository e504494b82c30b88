"""`/papers` end to end: the real bolt app served by `serve()` in HTTP and Socket Mode,
signed requests, the real `AsyncWebClient` and `respond` against a fake Slack, a fake
arXiv and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from pydantic import SecretStr
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.signature import SignatureVerifier

from adapters.slack.app import (
    IN_DM,
    WORKING,
    _answer,
    create_app,
    publisher_from_settings,
    serve,
    verify,
)
from bot.arxiv_source import ArxivSource
from bot.commands import Commands, Reply
from bot.models import Channel
from bot.settings import (
    ArxivSettings,
    CommandSettings,
    Settings,
    SettingsError,
    SlackSettings,
    SubscriptionSettings,
)
from bot.state.redis import RedisStore
from tests.conftest import free_port
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.slack_api import FakeSlack, Response, SlashCommand

NOW = datetime(2026, 11, 4, 12, tzinfo=UTC)
SECRET = "signing-secret-for-tests"
CHANNEL = "C0PAPERS"
FILE_CHANNEL = "C0FILE"


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 7)]
    papers += [make_paper(100 + n, title=f"Diffusion policy {n}") for n in range(3)]
    with FakeArxiv(papers) as fake:
        yield fake


def make_settings(slack: FakeSlack, arxiv: FakeArxiv, **slack_options: Any) -> Settings:
    options: dict[str, Any] = {
        "bot_token": SecretStr(slack.bot_token),
        "app_token": SecretStr(slack.app_token),
        "signing_secret": SecretStr(SECRET),
        "mode": "http",
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "api_url": slack.api_url,
        **slack_options,
    }
    return Settings(
        arxiv=ArxivSettings(
            api_url=arxiv.url,
            rss_url=arxiv.rss_url,
            oai_url="",
            request_interval=0,
            retry_backoff=0,
            timeout=2,
            max_retries=0,
        ),
        commands=CommandSettings(max_keywords_per_channel=3),
        slack=SlackSettings(**options),
        subscriptions=[
            SubscriptionSettings(platform="slack", channel=FILE_CHANNEL, keywords=["diffusion"]),
            SubscriptionSettings(platform="slack", channel="C111", keywords=["corpus one"]),
            SubscriptionSettings(platform="slack", channel="C2147483705", keywords=["corpus two"]),
        ],
    )


def sign(timestamp: str, body: str) -> str:
    """`v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}`, as Slack signs its requests."""
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return signature


@dataclass
class Ack:
    status: int
    body: str
    seconds: float


class Bot:
    """The app under `serve()`, and a Slack that sends it slash commands."""

    def __init__(self, settings: Settings, store: RedisStore, slack: FakeSlack) -> None:
        self.settings = settings
        self.store = store
        self.slack = slack
        self.source = ArxivSource(settings.arxiv)
        self.commands = Commands(settings, store, self.source, clock=lambda: NOW)
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.slack.http_port}/slack/events"

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(serve(self.settings, self.commands))
        if self.settings.slack.mode == "http":
            await self._until_listening()
        else:
            await self.slack.wait_for_socket()

    async def _until_listening(self) -> None:
        async with asyncio.timeout(5):
            while True:
                assert self._task is not None and not self._task.done(), self._task
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection(
                        "127.0.0.1", self.settings.slack.http_port
                    )
                    writer.close()
                    await writer.wait_closed()
                    return
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()

    async def post(
        self,
        body: str,
        *,
        timestamp: str | None = None,
        signature: str | None = None,
        signed: bool = True,
    ) -> Ack:
        """POST a raw form body to /slack/events, signed as Slack signs it."""
        assert self._http is not None
        timestamp = timestamp or str(int(time.time()))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signed:
            headers["X-Slack-Request-Timestamp"] = timestamp
            headers["X-Slack-Signature"] = signature or sign(timestamp, body)
        started = time.monotonic()
        async with self._http.post(self.url, data=body.encode(), headers=headers) as response:
            text = await response.text()
            return Ack(response.status, text, time.monotonic() - started)

    def slash(self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL) -> SlashCommand:
        self._sent += 1
        key = f"cmd{self._sent}"
        return SlashCommand(text, self.slack.response_url(key), channel, user)

    async def run(
        self, text: str, *, user: str = "U0ALICE", channel: str = CHANNEL
    ) -> tuple[Ack, Response]:
        """Send `/papers text` over HTTP; the ack, then the answer at its response_url."""
        command = self.slash(text, user=user, channel=channel)
        ack = await self.post(urlencode(command.fields()))
        assert ack.status == 200, ack
        return ack, await self.slack.wait_for_response(command.response_url.rsplit("/", 1)[1])

    async def say(self, text: str, **who: str) -> str:
        """The answer's first section text (mrkdwn) after checking it is private."""
        _, response = await self.run(text, **who)
        assert response.body["response_type"] == "ephemeral"
        return str(response.blocks[0]["text"]["text"])


@pytest.fixture
async def make_bot(
    slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore
) -> AsyncIterator[Any]:
    bots: list[Bot] = []

    async def start(**slack_options: Any) -> Bot:
        bot = Bot(make_settings(slack, arxiv, **slack_options), redis_store, slack)
        bots.append(bot)
        await bot.start()
        return bot

    yield start
    for bot in bots:
        await bot.stop()


@pytest.fixture
async def bot(make_bot: Any) -> Bot:
    started: Bot = await make_bot()
    return started


async def chat_keywords(store: RedisStore, channel: str = CHANNEL) -> list[str]:
    return [s.keyword for s in await store.subscriptions(Channel("slack", channel))]


# the command, over HTTP --------------------------------------------------------------


async def test_add_acks_at_once_then_answers_privately_with_a_preview(
    bot: Bot, arxiv: FakeArxiv
) -> None:
    ack, response = await bot.run("add reward model")
    assert ack.body == WORKING
    assert response.body["response_type"] == "ephemeral"
    assert response.body["unfurl_links"] is False
    blocks = response.blocks
    assert blocks[0]["text"]["text"].startswith("Added “reward model”.")
    previews = [b["text"]["text"].split("|")[0] for b in blocks[1:]]
    assert previews == [f"*<https://arxiv.org/abs/2611.{n:05d}" for n in (6, 5, 4)]
    assert "Reward model study 6" in response.text
    assert await chat_keywords(bot.store) == ["reward model"]
    assert len(arxiv.requests) == 1


async def test_text_comes_unescaped_as_the_user_typed_it(bot: Bot) -> None:
    # Slack sends `/papers add R&D` as "add R&amp;D"
    answer = await bot.say("add R&amp;D")
    assert answer.startswith("Added “R&amp;D”.")
    assert await chat_keywords(bot.store) == ["R&D"]
    refused = await bot.say("add &lt;!channel&gt;")
    assert refused.startswith(":warning: A keyword can contain letters")


async def test_list_shows_chat_and_file_keywords(bot: Bot) -> None:
    assert "follows no keywords yet" in await bot.say("list")
    await bot.run("add reward model", channel=FILE_CHANNEL)
    listing = await bot.say("list", channel=FILE_CHANNEL)
    assert listing.splitlines() == [
        "This channel follows:",
        "• diffusion (settings file)",
        "• reward model",
        "Options: posting new versions off, saying when nothing is new off, "
        "posting the week's papers off",
    ]


@pytest.mark.parametrize("text", ["", "help", "HELP"])
async def test_help(bot: Bot, text: str) -> None:
    ack, response = await bot.run(text)
    assert ack.body == ""
    answer = response.blocks[0]["text"]["text"]
    assert answer.startswith("/papers add &lt;keyword&gt;: follow a keyword")


async def test_unknown_subcommand_answers_with_help(bot: Bot) -> None:
    answer = await bot.say("subscribe reward model")
    assert answer.startswith(":warning: Unknown command.\n/papers add &lt;keyword&gt;")


@pytest.mark.parametrize(
    ("keyword", "reason"),
    [
        ("", "Give a keyword"),
        ("   ", "Give a keyword"),
        ("x" * 101, "at most 100 characters"),
        ("reward\x07model", "control or invisible characters"),
        ('reward "model', "A quote is not closed"),
        ("(reward model", "can't contain parentheses"),
        ("reward AND model", "Search operators (AND) aren't supported"),
        ("ti:hinton", "ti: isn't supported"),
        ("<!channel>", "can contain letters, digits"),
    ],
)
async def test_bad_keywords_are_refused_privately_and_change_nothing(
    bot: Bot, arxiv: FakeArxiv, keyword: str, reason: str
) -> None:
    answer = await bot.say(f"add {keyword}")
    assert answer.startswith(":warning: ")
    assert reason in answer
    assert await chat_keywords(bot.store) == []
    assert arxiv.requests == []


async def test_duplicate_and_cap(bot: Bot) -> None:
    await bot.run("add reward model")
    assert "already follows “Reward Models”" in await bot.say("add Reward  Models")
    await bot.run("add diffusion")
    await bot.run("add policy gradient")
    answer = await bot.say("add one more")
    assert "follows 3 keywords, the most allowed" in answer
    assert await chat_keywords(bot.store) == ["reward model", "diffusion", "policy gradient"]


async def test_remove(bot: Bot) -> None:
    await bot.run("add reward model")
    assert await bot.say("remove REWARD model") == "Removed “REWARD model”."
    assert await chat_keywords(bot.store) == []
    missing = await bot.say("remove reward model")
    assert "doesn't follow “reward model”. It follows: none." in missing
    assert "Give the keyword to remove" in await bot.say("remove")
    from_file = await bot.say("remove diffusion", channel=FILE_CHANNEL)
    assert "comes from the bot's settings file" in from_file


async def test_recent(bot: Bot) -> None:
    ack, response = await bot.run("recent reward model 2")
    assert ack.body == WORKING
    assert response.blocks[0]["text"]["text"] == "Latest papers for “reward model”:"
    assert [b["text"]["text"][:41] for b in response.blocks[1:]] == [
        "*<https://arxiv.org/abs/2611.00006|Reward",
        "*<https://arxiv.org/abs/2611.00005|Reward",
    ]
    assert "follows no keywords yet" in await bot.say("recent")
    assert "between 1 and 20" in await bot.say("recent reward model 21")


async def test_set_turns_channel_options_on_and_off(make_bot: Any) -> None:
    bot: Bot = await make_bot(allowed_users=["U0BOSS"])
    here = Channel("slack", CHANNEL)
    on = await bot.say("set quiet on", user="U0BOSS")
    assert on == "Saying when nothing is new is now on for this channel."
    assert (await bot.store.channel_options(here)) == {"quiet_days": True}
    assert "Use: set revisions|quiet|weekly on|off" in await bot.say("set loud on", user="U0BOSS")
    refused = await bot.say("set quiet off")
    assert refused.startswith(":warning: You can't change this channel's keywords: only")
    assert (await bot.store.channel_options(here)) == {"quiet_days": True}
    assert (await bot.say("add reward model", user="U0BOSS")).startswith("Added")
    listing = await bot.say("list")
    assert "Options: posting new versions off, saying when nothing is new on" in listing


async def test_only_allowed_users_may_change_keywords(make_bot: Any) -> None:
    bot: Bot = await make_bot(allowed_users=["U0BOSS"])
    ack, response = await bot.run("add reward model")
    assert ack.body == ""  # no "Searching arXiv…" for a request that will be refused
    refusal = response.blocks[0]["text"]["text"]
    assert refusal.startswith(":warning: You can't change this channel's keywords: only")
    assert "Removed" not in await bot.say("remove diffusion", channel=FILE_CHANNEL)
    assert "follows no keywords yet" in await bot.say("list")
    assert (await bot.say("add reward model", user="U0BOSS")).startswith("Added")
    assert await chat_keywords(bot.store) == ["reward model"]


# the 3-second rule -------------------------------------------------------------------


async def test_ack_comes_before_a_hanging_arxiv(bot: Bot, arxiv: FakeArxiv) -> None:
    arxiv.hang_next()
    command = bot.slash("add reward model")
    ack = await bot.post(urlencode(command.fields()))
    acked_at = time.monotonic()
    assert ack.status == 200 and ack.seconds < 1.0
    assert ack.body == WORKING
    response = await bot.slack.wait_for_response(command.response_url.rsplit("/", 1)[1])
    assert response.time - acked_at > 1.5  # arXiv's timeout (2 s) ran out after the ack
    assert "arXiv didn't answer, so nothing was added" in response.blocks[0]["text"]["text"]
    assert await chat_keywords(bot.store) == []


async def test_slow_arxiv_answer_arrives_later_at_the_response_url(
    bot: Bot, arxiv: FakeArxiv
) -> None:
    arxiv.latency = 1.0
    command = bot.slash("add reward model")
    ack = await bot.post(urlencode(command.fields()))
    acked_at = time.monotonic()
    assert ack.status == 200 and ack.seconds < 1.0
    response = await bot.slack.wait_for_response(command.response_url.rsplit("/", 1)[1])
    assert response.time - acked_at > 0.8
    assert response.blocks[0]["text"]["text"].startswith("Added “reward model”.")


# signatures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options"),
    [
        {"signed": False},
        {"signature": "v0=" + "0" * 64},
        {"timestamp": str(int(time.time()) - 10 * 60)},
    ],
    ids=["unsigned", "wrong-signature", "stale"],
)
async def test_requests_not_signed_by_slack_get_401(
    bot: Bot, arxiv: FakeArxiv, options: dict[str, Any]
) -> None:
    command = bot.slash("add reward model")
    ack = await bot.post(urlencode(command.fields()), **options)
    assert ack.status == 401
    await bot.run("list")  # a signed command behind it: its answer comes alone
    assert [r.key for r in bot.slack.responses] == ["cmd2"]
    assert arxiv.requests == []
    assert await chat_keywords(bot.store) == []


FORGED = "text=x\ntime=2026-11-04 level=ERROR logger=bot.digest digest_failed forged=yes"
"""A body whose newline would start a log line of its own, were the body logged."""


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"signed": False}, "no signature"),
        ({"signature": "v0=" + "0" * 64}, "bad signature"),
        ({"timestamp": str(int(time.time()) - 10 * 60)}, "stale timestamp"),
        ({"timestamp": "soon"}, "bad timestamp"),
        ({"timestamp": "1" * 40}, "bad timestamp"),
    ],
)
async def test_a_refused_request_is_one_line_of_ours_without_its_body(
    bot: Bot, caplog: pytest.LogCaptureFixture, options: dict[str, Any], reason: str
) -> None:
    """Issue 22, finding 9: bolt logged every refused body at INFO (its loggers escape the
    quieting), so a newline in a body forged log lines; a timestamp that is not a number
    gave HTTP 500 and a traceback."""
    caplog.clear()
    ack = await bot.post(FORGED, **options)
    assert ack.status == 401
    assert [r.getMessage() for r in caplog.records] == [f"slack_request_refused reason='{reason}'"]
    assert caplog.records[0].name == "adapters.slack.acks"
    assert "forged" not in caplog.text


async def test_bolt_itself_follows_the_quieting_of_its_logger(
    slack: FakeSlack,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `bot.logs.configure` does to "slack_bolt" reaches bolt's request verification,
    for a request that comes to bolt some other way than `serve`'s middleware."""
    from slack_bolt.request.async_request import AsyncBoltRequest

    monkeypatch.setattr(logging.getLogger("slack_bolt"), "level", logging.WARNING)
    settings = make_settings(slack, arxiv)
    app = create_app(settings, Commands(settings, redis_store, ArxivSource(settings.arxiv)))
    caplog.clear()
    response = await app.async_dispatch(AsyncBoltRequest(body=FORGED, headers={}))
    assert response.status == 401
    assert "forged" not in caplog.text


async def test_a_body_changed_after_signing_gets_401(bot: Bot) -> None:
    fields = bot.slash("list").fields()
    timestamp = str(int(time.time()))
    signature = sign(timestamp, urlencode(fields))
    fields["user_id"] = "U0BOSS"
    ack = await bot.post(urlencode(fields), timestamp=timestamp, signature=signature)
    assert ack.status == 401


# real captures -----------------------------------------------------------------------


def corpus_body(path: Path, response_url: str, text: str | None) -> str:
    """The capture's fields as a form body, with its response_url pointed at the fake."""
    raw = path.read_text(encoding="utf-8").strip()
    pairs = parse_qsl(raw.replace("\n", "&"), keep_blank_values=True, strict_parsing=True)
    fields = dict(pairs)
    fields["response_url"] = response_url
    if text is not None:
        fields["text"] = text
    return urlencode(fields)


@pytest.mark.parametrize(
    ("capture", "channel_keyword"),
    [
        ("slack_slash_command_slackdocs_weather_form_urlencoded.txt", "corpus two"),
        ("slack_slash_command_slackapidocs_2016_weather_keyvalue_lines.txt", "corpus two"),
        ("slack_slash_command_boltpython_enterprise_form_urlencoded.txt", "corpus one"),
    ],
)
async def test_corpus_slash_command_bodies(
    bot: Bot, corpus: Path, capture: str, channel_keyword: str
) -> None:
    # as captured (another command name, text "94070"/"Hi"): unknown, so help
    url = bot.slack.response_url(f"{capture}-as-is")
    ack = await bot.post(corpus_body(corpus / capture, url, None))
    assert ack.status == 200
    response = await bot.slack.wait_for_response(f"{capture}-as-is")
    assert response.blocks[0]["text"]["text"].startswith(":warning: Unknown command.")
    # the same body asking for `list`: the capture's channel_id reaches the core
    url = bot.slack.response_url(f"{capture}-list")
    ack = await bot.post(corpus_body(corpus / capture, url, "list"))
    assert ack.status == 200
    response = await bot.slack.wait_for_response(f"{capture}-list")
    assert f"• {channel_keyword} (settings file)" in response.blocks[0]["text"]["text"]


# socket mode -------------------------------------------------------------------------


async def test_socket_mode_acks_over_the_socket_and_answers_at_the_response_url(
    make_bot: Any, slack: FakeSlack
) -> None:
    bot: Bot = await make_bot(mode="socket", signing_secret=None)
    opened = [c for c in slack.calls if c.method == "apps.connections.open"]
    assert opened and {c.token for c in opened} == {slack.app_token}
    command = bot.slash("add reward model")
    ack = await slack.send_envelope("slash_commands", command.fields())
    assert set(ack) == {"envelope_id", "payload"}
    assert ack["payload"] == {"text": WORKING}
    response = await slack.wait_for_response("cmd1")
    assert response.blocks[0]["text"]["text"].startswith("Added “reward model”.")
    assert await chat_keywords(bot.store) == ["reward model"]

    command = bot.slash("list")
    ack = await slack.send_envelope("slash_commands", command.fields())
    assert "payload" not in ack
    listing = await slack.wait_for_response("cmd2")
    assert listing.blocks[0]["text"]["text"].startswith("This channel follows:\n• reward model\n")
    assert "auth.test" in slack.methods()


# wiring ------------------------------------------------------------------------------


async def test_in_channel_replies_are_posted_as_such(slack: FakeSlack) -> None:
    respond = AsyncRespond(response_url=slack.response_url("public"))
    await _answer(respond, Reply("Everyone sees this", ephemeral=False))
    response = await slack.wait_for_response("public")
    assert response.body["response_type"] == "in_channel"


def test_missing_secrets_are_reported_by_name(slack: FakeSlack, arxiv: FakeArxiv) -> None:
    settings = make_settings(slack, arxiv, bot_token=None)
    with pytest.raises(SettingsError, match=r"\[slack\] bot_token .*PAPERS_BOT_SLACK__BOT_TOKEN"):
        publisher_from_settings(settings)
    settings = make_settings(slack, arxiv, signing_secret=None)
    store: Any = None
    commands = Commands(settings, store, ArxivSource(settings.arxiv))
    with pytest.raises(SettingsError, match="signing_secret"):
        create_app(settings, commands)


async def test_verify_names_the_workspace(slack: FakeSlack, arxiv: FakeArxiv) -> None:
    assert await verify(make_settings(slack, arxiv)) == "workspace='Fake Team' bot=@papers-bot"


@pytest.mark.parametrize(
    ("mode", "token"), [("http", "bot_token"), ("socket", "bot_token"), ("socket", "app_token")]
)
async def test_a_refused_token_stops_serve_at_once_with_its_name(
    slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore, mode: str, token: str
) -> None:
    settings = make_settings(slack, arxiv, mode=mode, **{token: SecretStr("xox-wrong")})
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv))
    with pytest.raises(SettingsError, match=rf"Slack refused \[slack\] {token}: invalid_auth"):
        async with asyncio.timeout(5):
            await serve(settings, commands)


async def test_tokens_never_reach_the_logs(
    make_bot: Any, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot: Bot = await make_bot(mode="socket")
    await slack.send_envelope("slash_commands", bot.slash("add reward model").fields())
    await slack.wait_for_response("cmd1")
    assert "slack_command channel=slack:C0PAPERS user=U0ALICE verb=add ok=True" in caplog.text
    for secret in (slack.bot_token, slack.app_token, SECRET):
        assert secret not in caplog.text


async def test_add_in_a_direct_message_is_refused_in_one_line(bot: Bot) -> None:
    """Issue 22, finding 7: a DM between members is no place the bot can post a digest to,
    nor one that should take a place in the channel budgets."""
    text = await bot.say("add reward model", channel="D0ALICEBOB")
    assert text == f":warning: {IN_DM}" and "\n" not in text
    assert await chat_keywords(bot.store, "D0ALICEBOB") == []
    assert (await bot.say("list", channel="D0ALICEBOB")).startswith("This channel follows no")
