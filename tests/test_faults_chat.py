"""Slack and Discord failing while a digest posts: the real `DigestRunner`, the real
publishers and client libraries against the fake platforms, the fake arXiv and a real Redis.
A failing channel must not stop the healthy ones, must keep its papers for the next run, and
a refused token must be said once, not once per channel or message, and never loop.
Unknown, archived and forbidden channels are proven in test_slack_publisher.py and
test_discord_app.py; docs/reliability.md lists every row."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import discord
import discord.http
import pytest
from pydantic import SecretStr

from adapters.discord.app import DiscordPublisher
from adapters.slack.app import RATE_LIMIT_RETRIES, SlackPublisher, publisher_from_settings
from adapters.slack.app import serve as serve_slack
from bot.arxiv_source import ArxivSource
from bot.commands import Commands
from bot.digest import DigestRunner, RunReport
from bot.models import Channel
from bot.service import Service
from bot.settings import (
    ArxivSettings,
    DigestSettings,
    ServiceSettings,
    Settings,
    SlackSettings,
    SubscriptionSettings,
)
from bot.state.redis import RedisStore
from tests.conftest import free_port
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, OTHER_CHANNEL_ID, TOKEN, FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.test_discord_app import make_settings as discord_settings
from tests.test_discord_app import outcome, run_digest

NOW = datetime(2026, 11, 4, 12, tzinfo=UTC)
IDS = [f"2611.{n:05d}" for n in range(6, 0, -1)]


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv([make_paper(n, title=f"Reward model study {n}") for n in range(1, 7)]) as fake:
        yield fake


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def until(condition: Callable[[], object], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.01)


# -- Slack -------------------------------------------------------------------------------------


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk waits Retry-After plus up to a second of jitter: no jitter in tests."""
    monkeypatch.setattr(random, "random", lambda: 0.0)


class SlackBot:
    """Digests to Slack channels; one publisher for the whole test, as in the service."""

    TIMEOUT = 1  # seconds a Web API call may take (HTTP_TIMEOUT in production)

    def __init__(self, slack: FakeSlack, arxiv: FakeArxiv, store: RedisStore) -> None:
        self.slack = slack
        self.arxiv = arxiv
        self.store = store
        self.channels = ["C1", "C2"]
        self.publisher: SlackPublisher | None = None

    def settings(self) -> Settings:
        return Settings(
            arxiv=ArxivSettings(
                api_url=self.arxiv.url,
                rss_url=self.arxiv.rss_url,
                oai_url="",
                request_interval=0,
                retry_backoff=0,
            ),
            digest=DigestSettings(first_run_papers=100),
            slack=SlackSettings(
                bot_token=SecretStr(self.slack.bot_token), api_url=self.slack.api_url
            ),
            subscriptions=[
                SubscriptionSettings(platform="slack", channel=c, keywords=["reward model"])
                for c in self.channels
            ],
        )

    async def digest(self) -> RunReport:
        settings = self.settings()
        if self.publisher is None:
            self.publisher = publisher_from_settings(settings, interval=0, timeout=self.TIMEOUT)
        runner = DigestRunner(
            settings,
            self.store,
            ArxivSource(settings.arxiv),
            {"slack": self.publisher},
            clock=lambda: NOW,
        )
        return await runner.run()

    def ids(self, channel: str) -> list[str]:
        """Paper ids linked from the thread messages Slack accepted in `channel`."""
        found = []
        for call in self.slack.posts(channel):
            for block in call.blocks:
                text = block.get("text", {}).get("text", "")
                if block["type"] == "section" and text.startswith("*<https://arxiv.org/abs/"):
                    found.append(text.split("|")[0].removeprefix("*<https://arxiv.org/abs/"))
        return found

    def errors_of(self, report: RunReport) -> dict[str, str | None]:
        return {o.channel.id: o.error for o in report.channels}


@pytest.fixture
def slack_bot(slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore) -> SlackBot:
    return SlackBot(slack, arxiv, redis_store)


@pytest.mark.usefixtures("no_jitter")
async def test_slack_429_burst_within_the_retry_budget_is_waited_out(slack_bot: SlackBot) -> None:
    slack_bot.slack.rate_limit("C2", retry_after=0, times=RATE_LIMIT_RETRIES - 1)
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 12
    assert slack_bot.ids("C1") == slack_bot.ids("C2") == IDS
    refused = [c for c in slack_bot.slack.posts("C2", ok_only=False) if c.status == 429]
    assert len(refused) == RATE_LIMIT_RETRIES - 1


@pytest.mark.usefixtures("no_jitter")
async def test_slack_429_burst_beyond_the_budget_fails_that_channel_until_next_run(
    slack_bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    slack_bot.slack.rate_limit("C2", retry_after=0, times=RATE_LIMIT_RETRIES + 1)
    report = await slack_bot.digest()
    assert slack_bot.errors_of(report) == {"C1": None, "C2": "ratelimited"}
    assert slack_bot.ids("C1") == IDS and slack_bot.ids("C2") == []
    attempts = slack_bot.slack.posts("C2", ok_only=False)
    assert len(attempts) == RATE_LIMIT_RETRIES + 1  # bounded
    (line,) = errors(caplog)
    assert line.getMessage() == "channel_failed channel=slack:C2 reason='ratelimited'"

    report = await slack_bot.digest()
    assert report.ok
    assert slack_bot.ids("C1") == slack_bot.ids("C2") == IDS  # each exactly once


async def test_slack_500_fails_that_channel_until_next_run(
    slack_bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    slack_bot.slack.server_error("C2", status=500, times=1)
    report = await slack_bot.digest()
    assert slack_bot.errors_of(report) == {"C1": None, "C2": "HTTP 500"}
    (line,) = errors(caplog)
    assert line.getMessage() == "channel_failed channel=slack:C2 reason='HTTP 500'"
    assert await slack_bot.store.unseen(Channel("slack", "C2"), IDS) == set(IDS)
    report = await slack_bot.digest()
    assert report.ok and slack_bot.ids("C2") == IDS and slack_bot.ids("C1") == IDS


async def test_slack_too_slow_to_accept_times_out_and_loses_nothing(slack_bot: SlackBot) -> None:
    slack_bot.slack.slow("C2", before=SlackBot.TIMEOUT + 0.5)
    report = await slack_bot.digest()
    assert slack_bot.errors_of(report) == {"C1": None, "C2": "cannot reach Slack: TimeoutError"}
    assert slack_bot.ids("C1") == IDS and slack_bot.slack.posts("C2") == []
    slack_bot.slack.heal_channel("C2")
    report = await slack_bot.digest()
    assert report.ok and slack_bot.ids("C2") == IDS
    assert len(slack_bot.slack.posts("C2")) == 2  # the top message and one thread message


async def test_slack_answer_lost_after_accepting_is_found_and_not_posted_again(
    slack_bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack created the thread message but its answer never came (the call timed out): the
    bot finds the message by the key in its metadata and counts it as posted. Before,
    nothing recorded it and the next run posted those papers again."""
    slack_bot.slack.slow("C2", after=SlackBot.TIMEOUT + 0.5, skip=1)  # the top message passes
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 12
    assert slack_bot.ids("C2") == IDS
    (found,) = [r for r in caplog.records if r.getMessage().startswith("slack_answer_lost")]
    assert "the message is there" in found.getMessage()
    slack_bot.slack.heal_channel("C2")
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 0
    assert slack_bot.ids("C2") == slack_bot.ids("C1") == IDS  # once each, nothing lost
    assert slack_bot.slack.doubled_keys() == {}


FIFTY = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 51)]
"""A full digest (max_papers_per_channel): a top message and four thread messages (16
papers of three blocks each fit Slack's 50)."""


@pytest.mark.parametrize("position", [1, 2, 5], ids=["top", "first-reply", "last-reply"])
async def test_slack_connection_dropped_after_posting_doubles_nothing(
    slack_bot: SlackBot, position: int
) -> None:
    """Slack created the message, then the connection dropped before its answer (a network
    blip, a proxy giving up). Neither slack_sdk nor the bot sends it blindly again: the
    bot finds it by its key and goes on under it."""
    slack_bot.arxiv.papers = list(FIFTY)
    slack_bot.channels = ["C1"]
    slack_bot.slack.lose_answers("C1", position)
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 50
    assert len(slack_bot.slack.posts("C1", ok_only=False)) == 5  # each message sent once
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 0
    assert sorted(slack_bot.ids("C1")) == sorted(p.id for p in FIFTY)
    assert slack_bot.slack.doubled_keys() == {}


async def test_slack_answers_lost_across_channels_and_digests_double_nothing(
    slack_bot: SlackBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: three channels, two digests the same day, answers lost at the top message
    and at thread messages of both digests. Measured before: 23 papers and a top message
    posted twice. Now: every paper once per channel, no message twice."""
    slack_bot.arxiv.papers = list(FIFTY)
    slack_bot.channels = ["C1", "C2", "C3"]
    # Messages 1-5: the first digest (top + 4); 6-7: the second one's thread (30 papers).
    lost = {"C1": (1, 6), "C2": (2, 7), "C3": (3, 5, 6)}
    for channel, positions in lost.items():
        slack_bot.slack.lose_answers(channel, *positions)
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 3 * 50
    slack_bot.arxiv.papers += [
        make_paper(n, title=f"Reward model study {n}") for n in range(51, 81)
    ]
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 3 * 30
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 0

    everything = sorted(p.id for p in slack_bot.arxiv.papers)
    for channel in slack_bot.channels:
        assert sorted(slack_bot.ids(channel)) == everything  # each paper exactly once
        (top,) = [c for c in slack_bot.slack.posts(channel) if c.thread_ts is None]
        assert {c.thread_ts for c in slack_bot.slack.posts(channel)} == {None, top.ts}
    assert slack_bot.slack.doubled_keys() == {}
    found = [r for r in caplog.records if "the message is there" in r.getMessage()]
    assert len(found) == sum(map(len, lost.values()))


async def test_slack_post_that_never_reached_slack_is_sent_again_once(slack_bot: SlackBot) -> None:
    """A kept-alive connection that Slack had closed: the post is lost before Slack reads
    it. The bot does not find it, sends it again once, and stops at a second loss."""
    slack_bot.slack.drop_connections("C1", times=1)
    slack_bot.slack.drop_connections("C2", times=2)
    report = await slack_bot.digest()
    assert slack_bot.errors_of(report) == {
        "C1": None,
        "C2": "cannot reach Slack: ServerDisconnectedError",
    }
    assert slack_bot.ids("C1") == IDS and slack_bot.slack.posts("C2") == []
    report = await slack_bot.digest()
    assert report.ok and slack_bot.ids("C2") == slack_bot.ids("C1") == IDS
    assert slack_bot.slack.doubled_keys() == {}


def without_history_scopes(slack: FakeSlack) -> None:
    slack.scopes -= {"channels:history", "groups:history"}  # an app from the old manifest


def not_invited(slack: FakeSlack) -> None:
    slack.not_member |= {"C1", "C2"}  # posting through chat:write.public


@pytest.mark.parametrize(
    ("unreadable", "reason"),
    [
        (without_history_scopes, "error=missing_scope needed=channels:history"),
        (not_invited, "error=not_in_channel: "),
    ],
    ids=["missing-scope", "not-invited"],
)
async def test_slack_history_unreadable_warns_once_and_posts_as_before(
    slack_bot: SlackBot,
    caplog: pytest.LogCaptureFixture,
    unreadable: Callable[[FakeSlack], None],
    reason: str,
) -> None:
    """When the bot may not read a channel's history it cannot look for its messages: one
    warning a day for the platform, and the behaviour before lookups: a post whose
    connection dropped is sent again (posted twice), each run has a new top message."""
    unreadable(slack_bot.slack)
    slack_bot.slack.lose_answers("C2", 2)
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 12
    assert slack_bot.ids("C1") == IDS and slack_bot.ids("C2") == IDS + IDS  # posted twice
    slack_bot.arxiv.papers.append(make_paper(7, title="Reward model study 7"))
    report = await slack_bot.digest()
    assert report.ok and report.delivered == 2
    for channel in slack_bot.channels:
        assert len([c for c in slack_bot.slack.posts(channel) if c.thread_ts is None]) == 2
    (warning,) = [r for r in caplog.records if r.getMessage().startswith("slack_lookup_refused")]
    assert warning.levelno == logging.WARNING and reason in warning.getMessage()
    assert errors(caplog) == []


@pytest.mark.parametrize("error", ["token_revoked", "invalid_auth", "account_inactive"])
async def test_a_revoked_slack_token_is_reported_once_and_recovers(
    slack_bot: SlackBot, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    slack_bot.channels = ["C1", "C2", "C3", "C4"]
    slack_bot.slack.fail_auth(error)
    for _ in range(2):
        caplog.clear()
        report = await slack_bot.digest()
        reason = f"Slack refused the bot token ({error}): set a valid [slack] bot_token"
        assert set(slack_bot.errors_of(report).values()) == {reason}
        (line,) = errors(caplog)  # once per run, not per channel or per message
        assert line.getMessage().startswith(f"output_failed platform=slack reason='{reason}'")
    # at most one refused call per channel per run: nobody hammers Slack with a dead token
    assert len(slack_bot.slack.posts(ok_only=False)) <= 2 * len(slack_bot.channels)
    for channel in slack_bot.channels:
        assert await slack_bot.store.unseen(Channel("slack", channel), IDS) == set(IDS)

    slack_bot.slack.restore_auth()  # a valid token again
    report = await slack_bot.digest()
    assert report.ok and all(slack_bot.ids(c) == IDS for c in slack_bot.channels)


@contextlib.asynccontextmanager
async def service_with(
    settings: Settings, store: RedisStore, servers: dict[str, Callable[[], Awaitable[None]]]
) -> AsyncIterator[Service]:
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), {})
    service = Service(settings, store, runner, servers)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def adapter_state(service: Service, name: str) -> str:
    _, body = await service.health()
    adapters = body["adapters"]
    assert isinstance(adapters, dict)
    return str(adapters.get(name))


async def test_a_refused_slack_token_at_start_is_one_line_and_no_restart_loop(
    slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        arxiv=ArxivSettings(
            api_url=arxiv.url, rss_url=arxiv.rss_url, oai_url="", request_interval=0
        ),
        slack=SlackSettings(
            bot_token=SecretStr("xoxb-revoked-token"),
            signing_secret=SecretStr("signing-secret-for-tests"),
            mode="http",
            http_host="127.0.0.1",
            http_port=free_port(),
            api_url=slack.api_url,
        ),
        service=ServiceSettings(health_host="127.0.0.1", health_port=free_port()),
    )
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv))
    servers = {"slack": lambda: serve_slack(settings, commands)}
    async with service_with(settings, redis_store, servers) as service:
        await until(lambda: "slack" in service._adapters and service._adapters["slack"].done())
        await asyncio.sleep(0.3)  # time for a restart, if one were coming
        assert await adapter_state(service, "slack") == "failed: SettingsError"
        status, _ = await service.health()
        assert status == 200  # the rest of the bot runs on
    assert [c.method for c in slack.calls] == ["auth.test"]
    (line,) = errors(caplog)
    assert line.getMessage() == (
        "adapter_failed adapter=slack error='Slack refused [slack] bot_token: invalid_auth'"
    )
    assert line.exc_info is None  # one line, no traceback


# -- Discord -----------------------------------------------------------------------------------


class _QuickBackoff:
    """asyncio as discord.py's HTTP client sees it, with its back-off sleeps (1 s, 3 s, 5 s...
    after a 5xx) cut to 10 ms; everything else is asyncio itself."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(seconds: float, result: Any = None) -> Any:
        return await asyncio.sleep(min(seconds, 0.01), result)


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http, "asyncio", _QuickBackoff())


BOTH = {CHANNEL_ID: ["reward model"], OTHER_CHANNEL_ID: ["reward model"]}
UNCAPPED = DigestSettings(first_run_papers=100)


def discord_ids(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [e["url"].rsplit("/", 1)[-1] for m in fake.posted(channel_id) for e in m.embeds]


def posts_to(fake: FakeDiscord, channel_id: int) -> int:
    path = f"/api/v10/channels/{channel_id}/messages"
    return sum(1 for method, p in fake.requests if method == "POST" and p == path)


@pytest.mark.usefixtures("quick_backoff")
async def test_discord_429_burst_is_waited_out_or_fails_that_channel_until_next_run(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = discord_settings(discord_fake, arxiv, subscriptions=BOTH, digest=UNCAPPED)
    discord_fake.fail_channel(OTHER_CHANNEL_ID, 429, times=3)
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == 12
    assert posts_to(discord_fake, OTHER_CHANNEL_ID) == 4

    arxiv.papers.append(make_paper(7, title="Reward model study 7"))
    discord_fake.fail_channel(OTHER_CHANNEL_ID, 429)  # for good: discord.py tries 5 times
    report = await run_digest(settings, redis_store)
    assert outcome(report, CHANNEL_ID) == (1, None)
    assert outcome(report, OTHER_CHANNEL_ID) == (
        0,
        "rate limited by Discord (429), retries exhausted",
    )
    assert posts_to(discord_fake, OTHER_CHANNEL_ID) == 4 + 5
    discord_fake.heal_channel(OTHER_CHANNEL_ID)
    assert (await run_digest(settings, redis_store)).ok
    assert sorted(discord_ids(discord_fake, OTHER_CHANNEL_ID)) == sorted([*IDS, "2611.00007"])


@pytest.mark.usefixtures("quick_backoff")
async def test_discord_500s_are_retried_then_fail_that_channel_until_next_run(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = discord_settings(discord_fake, arxiv, subscriptions=BOTH, digest=UNCAPPED)
    discord_fake.fail_channel(OTHER_CHANNEL_ID, 500, times=2)
    report = await run_digest(settings, redis_store)
    assert report.ok and report.delivered == 12  # discord.py retried
    assert posts_to(discord_fake, OTHER_CHANNEL_ID) == 3

    arxiv.papers.append(make_paper(7, title="Reward model study 7"))
    discord_fake.fail_channel(OTHER_CHANNEL_ID, 503)
    caplog.clear()
    report = await run_digest(settings, redis_store)
    reason = "Discord server error (503), retries exhausted"
    assert outcome(report, OTHER_CHANNEL_ID) == (0, reason)
    assert outcome(report, CHANNEL_ID) == (1, None)
    (line,) = errors(caplog)
    assert (
        line.getMessage() == f"channel_failed channel=discord:{OTHER_CHANNEL_ID} reason={reason!r}"
    )
    discord_fake.heal_channel(OTHER_CHANNEL_ID)
    assert (await run_digest(settings, redis_store)).ok
    assert sorted(discord_ids(discord_fake, OTHER_CHANNEL_ID)) == sorted([*IDS, "2611.00007"])


async def test_discord_answering_late_times_out_and_the_nonce_prevents_a_double(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = discord_settings(discord_fake, arxiv, subscriptions=BOTH, digest=UNCAPPED)
    discord_fake.channel_delays[OTHER_CHANNEL_ID] = 0.8  # created, answered too late
    report = await run_digest(settings, redis_store, timeout=0.3)
    assert outcome(report, CHANNEL_ID) == (6, None)
    assert outcome(report, OTHER_CHANNEL_ID) == (0, "Discord did not answer within 0.3s")
    del discord_fake.channel_delays[OTHER_CHANNEL_ID]
    report = await run_digest(settings, redis_store, timeout=0.3)
    assert report.ok and outcome(report, OTHER_CHANNEL_ID) == (6, None)
    assert discord_fake.deduplicated == 1  # Discord returned the earlier message
    assert discord_ids(discord_fake, OTHER_CHANNEL_ID) == IDS


async def test_discord_down_at_login_fails_this_run_only(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One publisher for several digests, as `papers-bot run` keeps it: a login that failed
    for want of Discord is tried again by the next digest."""
    subscriptions = {CHANNEL_ID: ["reward model"]}
    settings = discord_settings(discord_fake, arxiv, subscriptions=subscriptions, digest=UNCAPPED)
    async with DiscordPublisher(settings.discord, TOKEN) as output:
        runner = DigestRunner(
            settings,
            redis_store,
            ArxivSource(settings.arxiv),
            {"discord": output},
            clock=lambda: NOW,
        )
        discord_fake.unavailable(1)  # the login's GET /users/@me
        report = await runner.run()
        assert [o.error for o in report.channels] == [
            "cannot reach Discord: 503 Service Unavailable (error code: 0): 503 error"
        ]
        (line,) = errors(caplog)
        assert line.getMessage().startswith("output_failed platform=discord")
        report = await runner.run()
        assert report.ok and report.delivered == 6
    assert discord_ids(discord_fake, CHANNEL_ID) == IDS


async def test_a_revoked_discord_token_is_reported_once_and_login_tried_once(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = discord_settings(discord_fake, arxiv, subscriptions=BOTH, digest=UNCAPPED)
    discord_fake.revoke_token()
    report = await run_digest(settings, redis_store)
    reason = "Discord refused the bot token (401): set a valid [discord] token"
    assert {o.error for o in report.channels} == {reason}
    (line,) = errors(caplog)
    assert line.getMessage().startswith(f"output_failed platform=discord reason={reason!r}")
    assert discord_fake.requests == [("GET", "/api/v10/users/@me")]  # no retry loop


async def test_a_discord_token_revoked_mid_run_is_reported_once(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = discord_settings(discord_fake, arxiv, subscriptions=BOTH, digest=UNCAPPED)
    discord_fake.fail_channel(CHANNEL_ID, 401)
    discord_fake.fail_channel(OTHER_CHANNEL_ID, 401)
    report = await run_digest(settings, redis_store)
    assert {o.error for o in report.channels} == {"Discord refused the bot token (401)"}
    assert len(errors(caplog)) == 1


async def test_a_refused_discord_token_at_start_is_one_line_and_no_restart_loop(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from adapters.discord.app import serve as serve_discord

    settings = discord_settings(discord_fake, arxiv)
    settings.service = ServiceSettings(health_host="127.0.0.1", health_port=free_port())
    discord_fake.revoke_token()
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv))
    servers = {"discord": lambda: serve_discord(settings, commands)}
    async with service_with(settings, redis_store, servers) as service:
        await until(lambda: "discord" in service._adapters and service._adapters["discord"].done())
        await asyncio.sleep(0.3)
        assert await adapter_state(service, "discord") == "failed: SettingsError"
    assert discord_fake.requests == [("GET", "/api/v10/users/@me")]
    (line,) = errors(caplog)
    assert line.getMessage() == (
        "adapter_failed adapter=discord error='[discord] token was refused by Discord (401)'"
    )
    assert line.exc_info is None
