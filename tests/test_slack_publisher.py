"""Digests posted to Slack: the real digest runner, `SlackPublisher` and `AsyncWebClient`
against a fake Slack, a fake arXiv and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from adapters.slack.app import (
    EVENT_TYPE,
    SlackPublisher,
    _OrjsonResponse,
    keyed_thread,
    publisher_from_settings,
    top_key,
    web_client,
)
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner, RunReport
from bot.models import Channel, Digest, DigestItem, Paper
from bot.progress import reporting_to
from bot.publishing import DeliveryError, message_key
from bot.settings import (
    ArxivSettings,
    DigestSettings,
    Settings,
    SlackSettings,
    SubscriptionSettings,
)
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, closed_port_url, make_paper
from tests.fakes.slack_api import FakeSlack, SlackCall
from tests.recorded import Recorded
from tests.seed import seed_fake_papers, seed_ids, seed_listing

NOW = datetime(2026, 11, 4, 12, tzinfo=UTC)
INTERVAL = 0.1
THIRTY_FOUR = "arxiv_api_2026_idlist_two_ids_one_missing_34_authors.xml"


def reward(n: int, **changes: Any) -> Any:
    return make_paper(n, title=changes.pop("title", f"Reward model study {n}"), **changes)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(min_interval=INTERVAL * 0.9) as fake:
        yield fake


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv([reward(n) for n in range(1, 7)]) as fake:
        yield fake


class Harness:
    def __init__(self, slack: FakeSlack, arxiv: FakeArxiv, store: RedisStore) -> None:
        self.slack = slack
        self.arxiv = arxiv
        self.store = store
        self.channels: dict[str, list[str]] = {"C1": ["reward model"]}
        self.options: dict[str, dict[str, bool]] = {}
        self.max_papers = 200
        self._publisher: SlackPublisher | None = None

    def settings(self) -> Settings:
        return Settings(
            arxiv=ArxivSettings(
                api_url=self.arxiv.url,
                rss_url=self.arxiv.rss_url,
                oai_url="",
                request_interval=0,
                retry_backoff=0,
                timeout=5,
            ),
            digest=DigestSettings(first_run_papers=100, max_papers_per_channel=self.max_papers),
            slack=SlackSettings(
                bot_token=SecretStr(self.slack.bot_token), api_url=self.slack.api_url
            ),
            subscriptions=[
                SubscriptionSettings(
                    platform="slack",
                    channel=channel,
                    keywords=keywords,
                    **self.options.get(channel, {}),
                )
                for channel, keywords in self.channels.items()
            ],
        )

    def publisher(self) -> SlackPublisher:
        """One for the whole test, as in the service: its pacing spans digests."""
        if self._publisher is None:
            self._publisher = publisher_from_settings(self.settings(), interval=INTERVAL)
        return self._publisher

    async def digest(self, now: datetime = NOW) -> RunReport:
        settings = self.settings()
        source = ArxivSource(settings.arxiv)
        runner = DigestRunner(
            settings, self.store, source, {"slack": self.publisher()}, clock=lambda: now
        )
        return await runner.run()

    def posted_ids(self, channel: str, calls: list[SlackCall] | None = None) -> list[str]:
        """arXiv ids linked from the titles of the thread messages posted to `channel`."""
        ids = []
        for call in calls if calls is not None else self.slack.posts(channel):
            for block in call.blocks:
                text = block.get("text", {}).get("text", "")
                if block["type"] == "section" and text.startswith("*<https://arxiv.org/abs/"):
                    ids.append(text.split("|")[0].removeprefix("*<https://arxiv.org/abs/"))
        return ids

    async def unseen(self, channel: str, ids: list[str]) -> set[str]:
        return await self.store.unseen(Channel("slack", channel), ids)


@pytest.fixture
def harness(slack: FakeSlack, arxiv: FakeArxiv, redis_store: RedisStore) -> Harness:
    return Harness(slack, arxiv, redis_store)


def ids(*numbers: int) -> list[str]:
    return [f"2611.{n:05d}" for n in numbers]


# the layout ----------------------------------------------------------------------------


async def test_top_message_then_papers_in_its_thread(harness: Harness) -> None:
    report = await harness.digest()
    assert report.ok and report.delivered == 6
    top, *thread = harness.slack.posts("C1")
    assert top.thread_ts is None
    assert top.blocks[0]["text"]["text"] == "New on arXiv · Wed 4 Nov 2026"
    assert "*6 new papers*" in top.blocks[1]["text"]["text"]
    assert top.text.startswith("New on arXiv, 2026-11-04: 6 papers")
    assert [m.thread_ts for m in thread] == [top.ts]
    for call in (top, *thread):
        assert call.args["unfurl_links"] is False
        assert call.args["unfurl_media"] is False
        assert call.token == harness.slack.bot_token
    assert harness.posted_ids("C1") == ids(6, 5, 4, 3, 2, 1)
    assert await harness.unseen("C1", ids(1, 2, 3, 4, 5, 6)) == set()


async def test_no_double_post_across_two_digests(harness: Harness) -> None:
    await harness.digest()
    first = len(harness.slack.posts())
    report = await harness.digest()
    assert report.ok and report.delivered == 0
    assert len(harness.slack.posts()) == first
    harness.arxiv.papers.append(reward(7))
    report = await harness.digest()
    assert report.delivered == 1
    assert harness.posted_ids("C1", harness.slack.posts("C1")[first:]) == ids(7)


async def test_only_a_channel_reached_earlier_that_day_has_its_history_read(
    harness: Harness,
) -> None:
    """conversations.history is rate-limited per workspace: the day's first delivery to a
    channel has no earlier top message to look for."""
    harness.channels = {"C1": ["reward model"], "C2": ["reward model"]}
    await harness.digest()
    assert "conversations.history" not in harness.slack.methods()
    harness.arxiv.papers.append(reward(7))
    await harness.digest()  # the same day again: each channel looks for its top message
    assert harness.slack.methods().count("conversations.history") == 2
    assert harness.posted_ids("C1").count("2611.00007") == 1


async def test_add_from_chat_never_floods_the_next_digest(harness: Harness) -> None:
    harness.channels = {}
    settings = harness.settings()
    commands = Commands(settings, harness.store, ArxivSource(settings.arxiv), clock=lambda: NOW)
    ctx = CommandContext(Channel("slack", "C9"), "U0ALICE")
    reply = await commands.handle(ctx, "add reward model")
    assert [p.id for p in reply.papers] == ids(6, 5, 4)
    report = await harness.digest()
    assert report.delivered == 0 and harness.slack.posts() == []
    harness.arxiv.papers += [reward(7), reward(8), make_paper(9, title="Unrelated")]
    report = await harness.digest()
    assert report.delivered == 2
    assert harness.posted_ids("C9") == ids(8, 7)


# failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_one_broken_channel_among_healthy_ones(harness: Harness, error: str) -> None:
    harness.channels = {c: ["reward model"] for c in ("C1", "C2", "C3", "CBROKEN")}
    harness.slack.fail_channel("CBROKEN", error)
    report = await harness.digest()
    errors = {o.channel.id: o.error for o in report.channels}
    assert errors == {"C1": None, "C2": None, "C3": None, "CBROKEN": error}
    for channel in ("C1", "C2", "C3"):
        assert harness.posted_ids(channel) == ids(6, 5, 4, 3, 2, 1)
    assert await harness.unseen("CBROKEN", ids(1, 2, 3, 4, 5, 6)) == set(ids(1, 2, 3, 4, 5, 6))
    # healthy channels were posted side by side, not one after another
    healthy = [harness.slack.posts(c) for c in ("C1", "C2", "C3")]
    assert max(p[0].time for p in healthy) < min(p[1].time for p in healthy)

    harness.slack.heal_channel("CBROKEN")
    before = len(harness.slack.posts())
    report = await harness.digest()
    assert report.ok
    assert {c.channel for c in harness.slack.posts()[before:]} == {"CBROKEN"}
    assert harness.posted_ids("CBROKEN") == ids(6, 5, 4, 3, 2, 1)


async def test_bad_token_fails_every_channel_and_marks_nothing(harness: Harness) -> None:
    harness.channels = {"C1": ["reward model"], "C2": ["reward model"]}
    harness.slack.fail_auth("token_revoked")
    report = await harness.digest()
    reason = "Slack refused the bot token (token_revoked): set a valid [slack] bot_token"
    assert {o.channel.id: o.error for o in report.channels} == {"C1": reason, "C2": reason}
    assert await harness.unseen("C1", ids(1, 6)) == set(ids(1, 6))


async def test_429_waits_for_retry_after_and_loses_nothing(harness: Harness) -> None:
    harness.slack.rate_limit("C1", retry_after=1, times=1)
    report = await harness.digest()
    assert report.ok and report.delivered == 6
    limited, *accepted = harness.slack.posts("C1", ok_only=False)
    assert limited.status == 429
    assert accepted[0].time - limited.time >= 1.0
    assert [c.ok for c in accepted] == [True, True]
    assert harness.posted_ids("C1") == ids(6, 5, 4, 3, 2, 1)


async def test_messages_to_one_channel_are_paced(harness: Harness) -> None:
    harness.arxiv.papers = [reward(n) for n in range(1, 61)]
    report = await harness.digest()
    assert report.ok and report.delivered == 60
    posts = harness.slack.posts("C1", ok_only=False)
    # the top message, then 60 papers of 3 blocks (text, links, buttons), 16 a message
    assert len(posts) == 5 and all(p.ok for p in posts)
    assert harness.slack.spacing_violations == 0
    assert min(b.time - a.time for a, b in itertools.pairwise(posts)) >= INTERVAL * 0.9


async def test_a_crash_mid_digest_loses_nothing_and_doubles_nothing(harness: Harness) -> None:
    harness.arxiv.papers = [reward(n) for n in range(1, 61)]
    harness.slack.fail_channel("C1", "is_archived", after=2)  # the top and one thread message
    report = await harness.digest()
    (outcome,) = report.channels
    assert outcome.error == "is_archived"
    first = harness.posted_ids("C1")
    assert 0 < outcome.delivered == len(first) < 60
    assert await harness.unseen("C1", first) == set()

    harness.slack.heal_channel("C1")
    report = await harness.digest()
    assert report.ok and report.delivered == 60 - len(first)
    everything = harness.posted_ids("C1")
    assert sorted(everything) == sorted(ids(*range(1, 61)))  # each exactly once
    (top,) = [p for p in harness.slack.posts("C1") if p.thread_ts is None]
    assert {p.thread_ts for p in harness.slack.posts("C1")} == {None, top.ts}  # one thread


# keys ---------------------------------------------------------------------------------------


def digest_of(channel: str, day: date, numbers: list[int]) -> Digest:
    items = [DigestItem(paper(n), ("kw",)) for n in numbers]
    return Digest(Channel("slack", channel), day, ("kw",), items)


def test_keys_name_a_channel_and_day_or_a_message_s_papers() -> None:
    day = NOW.date()
    top = top_key(digest_of("C1", day, [1, 2]))
    assert top == top_key(digest_of("C1", day, [3]))  # a re-run the same day: the same top
    others = [
        top_key(digest_of("C2", day, [1, 2])),
        top_key(digest_of("C1", day + timedelta(days=1), [1, 2])),
        top_key(digest_of("C1", day, [])),  # "No new papers today" is another message
    ]
    assert len({top, *others}) == 4
    (message,) = keyed_thread(digest_of("C1", day, [1, 2]))
    assert message.key == message_key(Channel("slack", "C1"), ids(1, 2))  # Discord's nonce
    assert message.metadata() == {
        "event_type": EVENT_TYPE,
        "event_payload": {"key": message.key, "papers": "2611.00001v1 2611.00002v1"},
    }
    (again,) = keyed_thread(digest_of("C1", day + timedelta(days=1), [2, 1]))
    assert again.key == message.key


async def test_every_message_carries_its_key_in_metadata(harness: Harness) -> None:
    await harness.digest()
    top, thread = harness.slack.posts("C1")
    assert top.metadata == {"event_type": EVENT_TYPE, "event_payload": {"key": top.key}}
    assert thread.metadata is not None and thread.metadata["event_type"] == EVENT_TYPE
    assert thread.metadata["event_payload"]["papers"].split() == [
        f"{i}v1" for i in ids(6, 5, 4, 3, 2, 1)
    ]
    history = harness.slack.messages("C1")
    assert [m["metadata"] for m in history] == [top.metadata, thread.metadata]


async def test_a_digest_published_twice_the_same_day_posts_each_paper_once(
    harness: Harness,
) -> None:
    """The first publication was never recorded (a killed process, Redis away): the second
    finds the day's top message and the papers in its thread, counts them as delivered, and
    posts only the new ones, in that thread."""
    publisher = harness.publisher()
    delivered: list[str] = []

    async def mark(paper_ids: Any) -> None:
        delivered.extend(paper_ids)

    await publisher.publish(digest_of("C1", NOW.date(), [1, 2, 3]), mark)
    top, _ = harness.slack.posts("C1")
    delivered.clear()
    await publisher.publish(digest_of("C1", NOW.date(), [1, 2, 3]), mark)
    assert sorted(delivered) == ids(1, 2, 3) and len(harness.slack.posts("C1")) == 2
    delivered.clear()
    await publisher.publish(digest_of("C1", NOW.date(), [4, 3, 2]), mark)
    assert sorted(delivered) == ids(2, 3, 4)
    *_, new = harness.slack.posts("C1")
    assert new.thread_ts == top.ts and harness.posted_ids("C1", [new]) == ids(4)
    assert harness.slack.doubled_keys() == {}


async def test_the_client_never_sends_a_post_again_on_its_own(harness: Harness) -> None:
    """slack_sdk's connection-error handler would send a post again when the connection
    dropped after Slack created the message; ours leaves that to the publisher's lookup."""
    harness.slack.lose_answers("C1", 1)
    client = web_client(harness.settings().slack)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.chat_postMessage(channel="C1", text="hello")
    assert len(harness.slack.messages("C1")) == 1
    assert harness.slack.methods() == ["chat.postMessage"]


async def test_refused_blocks_fall_back_to_text_with_every_link(harness: Harness) -> None:
    harness.slack.reject_blocks("C1")
    report = await harness.digest()
    assert report.ok and report.delivered == 6
    _, thread = harness.slack.posts("C1")
    assert "blocks" not in thread.args or not thread.args["blocks"]
    for paper_id in ids(1, 2, 3, 4, 5, 6):
        assert f"<https://arxiv.org/abs/{paper_id}|Reward model study" in thread.text


async def test_unreachable_slack_is_a_delivery_error(harness: Harness) -> None:
    settings = harness.settings()
    settings.slack.api_url = closed_port_url()
    publisher = publisher_from_settings(settings, interval=0)
    digest = Digest(Channel("slack", "C1"), NOW.date(), ("kw",), [DigestItem(paper(1), ("kw",))])
    delivered: list[str] = []

    async def mark(paper_ids: Any) -> None:
        delivered.extend(paper_ids)

    with pytest.raises(DeliveryError, match="cannot reach Slack"):
        await publisher.publish(digest, mark)
    assert delivered == []


class Relay:
    """A TCP relay in front of the fake Slack that counts the connections made to it."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()

    @property
    def api_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{self.target.path}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(self.target.hostname, self.target.port)
        self._writers += [writer, up_writer]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_a_digest_is_posted_through_one_session_and_connection(harness: Harness) -> None:
    settings = harness.settings()
    papers = [paper(n, summary="words " * 400) for n in range(1, 40)]
    digest = Digest(
        Channel("slack", "C1"), NOW.date(), ("kw",), [DigestItem(p, ("kw",)) for p in papers]
    )
    sessions: list[aiohttp.ClientSession | None] = []

    async def mark(paper_ids: Any) -> None:
        sessions.append(client.session)

    async with Relay(harness.slack.api_url) as relay:
        settings.slack.api_url = relay.api_url
        client = web_client(settings.slack, timeout=7)
        publisher = SlackPublisher(client, interval=INTERVAL)
        assert client.session is None  # nothing is opened outside the loop that posts
        await publisher.publish(digest, mark)
        assert len(harness.slack.posts("C1")) > 3
        assert relay.connections == 1
        session = sessions[0]
        assert session is not None and sessions == [session] * len(sessions)
        assert session.timeout.total == 7
        assert session.closed and client.session is None  # closed once nothing is posted

        await publisher.publish(digest, mark)  # and opened again for the next digest
        assert relay.connections == 2 and sessions[-1] not in (None, session)


async def test_aclose_closes_the_session_of_a_digest_being_posted(harness: Harness) -> None:
    papers = [paper(n, summary="words " * 400) for n in range(1, 40)]
    digest = Digest(
        Channel("slack", "C1"), NOW.date(), ("kw",), [DigestItem(p, ("kw",)) for p in papers]
    )
    client = web_client(harness.settings().slack)
    publisher = SlackPublisher(client, interval=0)
    closed: list[aiohttp.ClientSession] = []

    async def mark(paper_ids: Any) -> None:
        session = client.session
        if session is not None:
            await publisher.aclose()  # while the digest is still being posted
            closed.append(session)

    await publisher.publish(digest, mark)
    assert len(closed) == 1 and closed[0].closed
    assert harness.posted_ids("C1") == [p.id for p in papers]  # the rest one call at a time
    await publisher.aclose()  # twice is harmless


async def test_a_session_given_with_the_client_is_used_and_left_open(harness: Harness) -> None:
    digest = Digest(Channel("slack", "C1"), NOW.date(), ("kw",), [DigestItem(paper(1), ("kw",))])

    async def mark(paper_ids: Any) -> None:
        pass

    async with aiohttp.ClientSession() as session:
        client = web_client(harness.settings().slack)
        client.session = session
        publisher = SlackPublisher(client, interval=0)
        await publisher.publish(digest, mark)
        await publisher.aclose()
        assert client.session is session and not session.closed
    assert len(harness.slack.posts("C1")) == 2


async def test_channel_options_end_to_end(harness: Harness) -> None:
    harness.channels = {"CQUIET": ["reward model"], "CPLAIN": ["reward model"]}
    harness.options = {"CQUIET": {"quiet_days": True, "revisions": True}}
    harness.max_papers = 4
    report = await harness.digest()
    assert report.delivered == 8
    (top,) = [c for c in harness.slack.posts("CQUIET") if c.thread_ts is None]
    assert "…and 2 more: /papers recent" in str(top.blocks)
    assert harness.posted_ids("CQUIET") == ids(6, 5, 4, 3)

    harness.slack.calls.clear()
    harness.arxiv.papers[5] = harness.arxiv.papers[5].new_version()  # paper 6, v2
    report = await harness.digest()
    assert report.ok
    assert harness.posted_ids("CPLAIN") == []
    revised = [str(c.blocks) for c in harness.slack.posts("CQUIET") if c.thread_ts]
    assert len(revised) == 1 and "New version v2: " in revised[0]
    assert "abs/2611.00006|" in revised[0]

    harness.slack.calls.clear()
    report = await harness.digest()  # the same listing: nothing, not even a quiet line
    assert report.ok and report.delivered == 0 and harness.slack.posts() == []
    harness.arxiv.listing = FakeListing(day=date.today() + timedelta(days=1), items=[])
    report = await harness.digest()  # the next day's listing has nothing for it
    assert report.ok and report.delivered == 0
    (quiet,) = harness.slack.posts("CQUIET")
    assert quiet.text == "No new papers today for reward model."
    assert harness.slack.posts("CPLAIN") == []


async def test_no_quiet_line_when_a_keyword_of_the_channel_failed(harness: Harness) -> None:
    harness.channels = {"CQUIET": ["reward model"], "COTHER": ["study"]}
    harness.options = {"CQUIET": {"quiet_days": True}}
    await harness.digest()
    harness.slack.calls.clear()
    # The next listing has nothing, and the channel missed days: its catch-up is refused.
    day = date.today() + timedelta(days=1)
    harness.arxiv.listing = FakeListing(day=day, items=[])
    await harness.store.set_listing_day(Channel("slack", "CQUIET"), day - timedelta(days=7))
    harness.arxiv.pass_next()  # the listing
    harness.arxiv.error_feed_next()
    report = await harness.digest()
    assert list(report.failed_keywords) == ["reward model"]
    assert harness.slack.posts() == []


# content at the limits -------------------------------------------------------------------


def paper(n: int, **changes: Any) -> Paper:
    fake = make_paper(n, **changes)
    return Paper(
        id=fake.id,
        version=fake.version,
        title=fake.title,
        authors=tuple(fake.authors),
        summary=fake.summary,
        comment=fake.comment,
        primary_category=fake.primary_category,
        categories=tuple(fake.categories),
        published=fake.published,
        updated=fake.updated,
    )


async def test_corpus_34_authors_and_huge_fields_split_within_limits(
    harness: Harness, corpus: Path
) -> None:
    settings = harness.settings()
    harness.arxiv.raw_next((corpus / THIRTY_FOUR).read_bytes())
    (captured,) = await ArxivSource(settings.arxiv).latest("mimo", 10)
    assert len(captured.authors) == 34
    huge = paper(
        2,
        title="T" * 400,
        summary=("very long abstract " * 200)[:3000],
        comment="c" * 1000,
        authors=[f"Author {i}" for i in range(500)],
    )
    papers = [captured, huge, *(paper(n, summary="words " * 400) for n in range(10, 80))]
    digest = Digest(
        Channel("slack", "C1"), NOW.date(), ("kw",), [DigestItem(p, ("kw",)) for p in papers]
    )
    delivered: list[list[str]] = []

    async def mark(paper_ids: Any) -> None:
        delivered.append(list(paper_ids))

    await harness.publisher().publish(digest, mark)
    posts = harness.slack.posts("C1", ok_only=False)
    assert all(p.ok and p.blocks for p in posts)  # Slack took every layout as it was
    assert len(posts) > 3
    assert [pid for batch in delivered for pid in batch] == [p.id for p in papers]
    assert harness.posted_ids("C1") == [p.id for p in papers]
    shown = posts[1].blocks[1]["text"]["text"].splitlines()[1]
    assert shown == ", ".join(captured.authors[:3]) + " et al."


async def test_hostile_titles_are_posted_escaped(harness: Harness) -> None:
    harness.arxiv.papers = [
        reward(1, title="Reward model <!channel> <@U0BOSS> & <http://evil.example|arxiv>"),
        reward(2, summary="reward model <!here> abstract"),
    ]
    await harness.digest()
    posts = harness.slack.posts("C1")
    everything = "".join(p.text + str(p.blocks) for p in posts)
    for raw in ("<!channel>", "<@U0BOSS>", "<http://evil.example", "<!here>"):
        assert raw not in everything
    assert "Reward model &lt;!channel&gt; &lt;@U0BOSS&gt; &amp; &lt;http://evil.example" in (
        everything
    )


async def test_every_seed_row_reaches_slack(harness: Harness) -> None:
    harness.arxiv.papers[:] = seed_fake_papers()  # arXiv's real answers, announced as new
    harness.arxiv.listing = seed_listing(NOW.date())
    harness.channels = {"C1": ["reward model", "reasoning"]}
    report = await harness.digest()
    assert report.ok
    assert set(harness.posted_ids("C1")) == set().union(*seed_ids().values())


async def test_answers_decode_as_the_standard_library_would_for_slack_sdk() -> None:
    """The publisher's session decodes with orjson: the same values, and a body that is not
    JSON raises `json.JSONDecodeError`, which slack_sdk turns into a SlackApiError."""
    answers = {
        "/ok": '{"ok": true, "ts": "1.000200", "message": {"text": "caf\\u00e9 \\ud83d\\udcda"}}',
        "/broken": '{"ok": true, "ts": ',
    }

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=answers[request.path], content_type="application/json")

    app = web.Application()
    app.router.add_get("/{name}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(response_class=_OrjsonResponse) as session:
            async with session.get(f"http://127.0.0.1:{port}/ok") as res:
                assert await res.json() == json.loads(answers["/ok"])
            async with session.get(f"http://127.0.0.1:{port}/broken") as res:
                with pytest.raises(json.JSONDecodeError):
                    await res.json()
    finally:
        await runner.cleanup()


async def test_messages_of_another_app_with_our_metadata_do_not_count(harness: Harness) -> None:
    """Issue 22, finding 5: any app can post a message with our event type and the day's
    (predictable) key, and list papers in its thread; a resumed digest must not take that
    thread for its own, nor those papers for delivered."""
    day = NOW.date()
    digest = digest_of("C1", day, [1, 2, 3, 4])
    slack = harness.slack
    forged_top = slack.post_as_other_app(
        "C1", {"event_type": EVENT_TYPE, "event_payload": {"key": top_key(digest)}}
    )
    versions = " ".join(paper(n).version_key for n in (1, 2, 3))
    payload = {"key": "forged", "papers": versions}
    slack.post_as_other_app(
        "C1", {"event_type": EVENT_TYPE, "event_payload": payload}, thread_ts=forged_top
    )
    delivered: list[str] = []

    async def mark(paper_ids: Any) -> None:
        delivered.extend(paper_ids)

    await harness.publisher().publish(digest, mark)  # resumed: it looks for the day's top
    top, *thread = slack.posts("C1")
    assert top.thread_ts is None and top.key == top_key(digest)  # a top message of its own
    assert all(m.thread_ts == top.ts for m in thread)
    assert sorted(harness.posted_ids("C1")) == ids(1, 2, 3, 4) == sorted(delivered)


async def test_a_gone_channel_is_dropped_after_three_days_in_a_row(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 22, finding 7: a channel deleted or archived stops costing every run (and a
    place in the budgets): its chat keywords go after `drop_after_failures` days in a row
    of `channel_not_found` or `is_archived`; a day it works starts the count again."""
    gone = Channel("slack", "C9")
    await harness.store.add_subscription(gone, "reward model", added_by="U1", cap=25)
    slack = harness.slack
    schedule = [  # (day, fails): two runs on day 0 count once; day 2 works
        (0, "channel_not_found"),
        (0, "channel_not_found"),
        (1, "is_archived"),
        (2, None),
        (3, "channel_not_found"),
        (4, "channel_not_found"),
    ]
    for n, (day, error) in enumerate(schedule):
        harness.arxiv.papers.append(reward(10 + n))  # something new to post each run
        if error is None:
            slack.heal_channel("C9")
        else:
            slack.fail_channel("C9", error)
        report = await harness.digest(NOW + timedelta(days=day))
        (outcome,) = [c for c in report.channels if c.channel == gone]
        assert (outcome.error is None) == (error is None)
        assert [s.keyword for s in await harness.store.subscriptions(gone)] == ["reward model"]
    assert not [r for r in caplog.records if r.message.startswith("channel_dropped")]
    await harness.digest(NOW + timedelta(days=5))  # the third day in a row
    assert await harness.store.subscriptions(gone) == []
    assert gone not in await harness.store.subscribed_channels()
    (line,) = [r.message for r in caplog.records if r.message.startswith("channel_dropped")]
    assert "slack:C9" in line and "days=3" in line and "channel_not_found" in line
    tried = len(slack.posts("C9", ok_only=False))
    harness.arxiv.papers.append(reward(30))
    report = await harness.digest(NOW + timedelta(days=6))
    assert len(slack.posts("C9", ok_only=False)) == tried  # not even tried any more
    assert gone not in {c.channel for c in report.channels}


async def test_a_429_wait_is_shown_with_its_reason(harness: Harness) -> None:
    harness.slack.rate_limit("C1", retry_after=1, times=1)
    shown = Recorded()
    with reporting_to(shown):
        assert (await harness.digest()).ok
    assert shown.waits == [("Slack: HTTP 429 (Retry-After)", 1.0)]
    assert shown.totals == [1] and shown.done == [False] and sum(shown.messages) == 6
