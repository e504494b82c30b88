"""The Slack adapter's hot paths (issue 15). Under a burst of slash commands the acks come
first: every request of the burst gets its ack before any command's work (Redis, arXiv,
rendering, the answer) starts; signatures are claimed together; answers go through one
kept-alive session with the same bodies bolt's `respond` sends; slack_sdk formats no debug
lines unless debug logging is on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from slack_bolt.context.respond.async_respond import AsyncRespond

from adapters.slack import app as slack_app
from adapters.slack.app import WORKING, PendingAcks, RecentSignatures, Responses, _answer
from bot.commands import CommandContext, Reply
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.slack_api import FakeSlack
from tests.test_slack_app import Bot, make_settings, sign

BURST = 30


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv([make_paper(n, title=f"Reward model study {n}") for n in range(1, 7)]) as fake:
        yield fake


class HeldBot(Bot):
    """test_slack_app's bot whose replay check holds the first request of a burst until
    `release` is set: that request awaits its ack while the others get theirs."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.release = asyncio.Event()
        self._seen = RecentSignatures()
        self._first = True

    async def first_use(self, signature: str) -> bool:
        if self._first:
            self._first = False
            await self.release.wait()
        return await self._seen(signature)

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(
            slack_app.serve(self.settings, self.commands, first_use=self.first_use)
        )
        await self._until_listening()


async def test_no_command_works_while_a_request_of_its_burst_awaits_its_ack(
    slack: FakeSlack,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counters: list[PendingAcks] = []

    class Recorded(PendingAcks):
        def __init__(self) -> None:
            super().__init__(limit=60)  # the test releases the held request, not the limit
            counters.append(self)

    monkeypatch.setattr(slack_app, "PendingAcks", Recorded)
    bot = HeldBot(make_settings(slack, arxiv), redis_store, slack)
    await bot.start()
    waiting_at_work: list[int] = []
    handle = bot.commands.handle

    async def recording(ctx: CommandContext, text: str) -> Reply:
        waiting_at_work.append(counters[0].waiting)
        return await handle(ctx, text)

    monkeypatch.setattr(bot.commands, "handle", recording)
    commands = [
        bot.slash("recent reward model" if i % 2 else "help", channel=f"C{i:04d}")
        for i in range(BURST)
    ]
    try:
        sending = asyncio.create_task(burst(bot, [urlencode(c.fields()) for c in commands]))
        async with asyncio.timeout(10):
            while counters[0].waiting != 1:  # every request acked but the held one
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert waiting_at_work == []  # no command's work started meanwhile
        bot.release.set()
        acks = await sending
        answers = [
            await slack.wait_for_response(c.response_url.rsplit("/", 1)[1]) for c in commands
        ]
    finally:
        bot.release.set()
        await bot.stop()
    assert acks == [(200, WORKING if i % 2 else "") for i in range(BURST)]
    assert waiting_at_work == [0] * BURST
    assert all(a.body["response_type"] == "ephemeral" for a in answers)


async def burst(bot: Bot, bodies: list[str]) -> list[tuple[int, str]]:
    """Signed requests on connections opened first, then all written at once: the server
    finds every one of them waiting when it next looks (a real burst, even in one loop)."""
    port = bot.settings.slack.http_port
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in bodies]
    timestamp = str(int(time.time()))
    for (_, writer), body in zip(streams, bodies, strict=True):
        head = (
            f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Slack-Request-Timestamp: {timestamp}\r\n"
            f"X-Slack-Signature: {sign(timestamp, body)}\r\n"
            f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body.encode())
    answers = []
    for reader, writer in streams:
        raw = await reader.read()
        writer.close()
        status_line, _, rest = raw.decode().partition("\r\n")
        answers.append((int(status_line.split()[1]), rest.partition("\r\n\r\n")[2]))
    return answers


async def test_settled_waits_for_open_requests_at_most_its_limit() -> None:
    pending = PendingAcks(limit=0.2)
    await pending.settled()  # nothing open: at once
    pending.enter()
    waiter = asyncio.create_task(pending.settled())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    pending.leave()
    await asyncio.wait_for(waiter, 1)
    pending.enter()  # a request that never gets its response
    await asyncio.wait_for(pending.settled(), 1)
    assert pending.waiting == 1


async def test_answers_through_the_kept_alive_session_equal_bolts(slack: FakeSlack) -> None:
    replies = [
        Reply("Everyone sees this", ephemeral=False),
        Reply("Only you", papers=(paper(1), paper(2))),
        Reply("Refused <!channel> & co", ok=False),
    ]
    responses = Responses()
    try:
        for n, reply in enumerate(replies):
            await _answer(AsyncRespond(response_url=slack.response_url(f"bolt{n}")), reply)
            via = AsyncRespond(response_url=slack.response_url(f"ours{n}"))
            await _answer(via, reply, via=responses)
            await _answer(via, reply, True, via=responses)  # a button's, replacing
    finally:
        await responses.aclose()
    for n in range(len(replies)):
        bolt = (await slack.wait_for_response(f"bolt{n}")).body
        ours = slack.responses_to(f"ours{n}")
        assert [r.body for r in ours] == [bolt, {**bolt, "replace_original": True}]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_slack_sdk_formats_its_debug_lines_only_when_debug_is_on(
    level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("slack_sdk", "slack_sdk.web", "slack_sdk.web.async_base_client"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "level", level)
    settings = Settings.model_validate({"slack": {"bot_token": "xoxb-test"}})
    client = slack_app.web_client(settings.slack)
    # slack_sdk formats a request's whole body for a debug line when `logger.level <= DEBUG`
    assert (client.logger.level <= logging.DEBUG) == (level <= logging.DEBUG)


class CountingStore:
    """The store's claims, counting the round trips they take."""

    def __init__(self, store: RedisStore, *, fail: bool = False) -> None:
        self._store = store
        self.trips = 0
        self.fail = fail

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        self.trips += 1
        if self.fail:
            raise ConnectionError("Redis is away")
        return await self._store.acquire(name, owner, ttl)

    async def acquire_many(self, names: list[str], owner: str, ttl: float) -> list[bool]:
        self.trips += 1
        if self.fail:
            raise ConnectionError("Redis is away")
        return await self._store.acquire_many(names, owner, ttl)


async def test_signatures_claimed_together_answer_as_one_by_one(redis_store: RedisStore) -> None:
    store = CountingStore(redis_store)
    first_use = slack_app.signature_claims(store)  # type: ignore[arg-type]
    signatures = [f"v0={n % 40:064x}" for n in range(100)]  # 40 distinct, each 2-3 times
    firsts = await asyncio.gather(*(first_use(s) for s in signatures))
    assert firsts == [n < 40 for n in range(100)]
    assert store.trips < 10  # not one round trip each
    assert await first_use(signatures[0]) is False  # later, alone: still remembered
    assert await first_use("v0=" + "f" * 64) is True


async def test_claims_fail_together_when_the_store_is_away(redis_store: RedisStore) -> None:
    first_use = slack_app.signature_claims(CountingStore(redis_store, fail=True))  # type: ignore[arg-type]
    outcomes = await asyncio.gather(
        *(first_use(f"v0={n:064x}") for n in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, ConnectionError) for o in outcomes)


async def test_a_command_is_acked_before_bolt_handles_it_and_a_replay_is_refused_once(
    slack: FakeSlack,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bolt's work before a listener (here a middleware of its own that takes a second) no
    longer comes before the ack; the command still runs once, through bolt, after it."""
    create = slack_app.create_app

    def slow_bolt(*args: Any, **kwargs: Any) -> Any:
        app = create(*args, **kwargs)

        @app.middleware
        async def slow(next: Any) -> Any:
            await asyncio.sleep(1)
            return await next()

        return app

    monkeypatch.setattr(slack_app, "create_app", slow_bolt)
    bot = Bot(make_settings(slack, arxiv), redis_store, slack)
    await bot.start()
    try:
        command = bot.slash("recent reward model")
        body = urlencode(command.fields())
        timestamp = str(int(time.time()))
        ack = await bot.post(body, timestamp=timestamp)
        replay = await bot.post(body, timestamp=timestamp)
        answer = await slack.wait_for_response(command.response_url.rsplit("/", 1)[1])
        await asyncio.sleep(1.5)  # a second run of the command would answer by now
        bad = await bot.post(urlencode(bot.slash("help").fields()), signature="v0=bad")
    finally:
        await bot.stop()
    assert (ack.status, ack.body) == (200, WORKING) and ack.seconds < 0.5
    assert replay.status == 401
    assert answer.body["response_type"] == "ephemeral"
    assert len(slack.responses_to(command.response_url.rsplit("/", 1)[1])) == 1
    assert bad.status == 401, "a bad signature is still bolt's to refuse"
