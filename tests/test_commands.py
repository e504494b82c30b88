"""The platform-neutral /papers commands: real Redis, the fake arXiv."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from bot.arxiv_queue import DIGEST, Caller
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands, UserError, parse_recent
from bot.digest import DigestRunner
from bot.models import Channel, Digest, Paper, utcnow
from bot.options import channel_options
from bot.publishing import Delivered
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.fakes.arxiv_server import FakeArxiv, make_paper

HERE = Channel("slack", "C1")


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model {n}") for n in range(1, 5)]
    papers.append(make_paper(9, title="RLHF without a reward", categories=("cs.LG",)))
    with FakeArxiv(papers) as fake:
        yield fake


def commands_for(
    arxiv: FakeArxiv, store: RedisStore, *, clock: Callable[[], datetime] = utcnow, **limits: int
) -> Commands:
    settings = Settings.model_validate(
        {
            "arxiv": {
                "api_url": arxiv.url,
                "oai_url": "",
                "rss_url": arxiv.rss_url,
                "request_interval": 0,
                "max_retries": 0,
            },
            "commands": limits,
        }
    )
    return Commands(settings, store, ArxivSource(settings.arxiv), clock=clock)


def ctx(user: str = "U1", channel: Channel = HERE) -> CommandContext:
    return CommandContext(channel=channel, user=user)


async def test_add_takes_the_syntax_and_lists_it_normalized(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    commands = commands_for(arxiv, redis_store)
    reply = await commands.handle(ctx(), "add RLHF|reward model  cat:cs.CL")
    assert reply.ok and reply.text.startswith("Added “RLHF | reward model cat:cs.CL”")
    assert [p.id for p in reply.papers] == ["2611.00004", "2611.00003", "2611.00002"]
    listing = await commands.handle(ctx(), "list")
    assert "• RLHF | reward model cat:cs.CL" in listing.text
    again = await commands.handle(ctx(), "add cat:cs.CL reward models | rlhf")
    assert not again.ok and "already follows" in again.text


async def test_a_failed_arxiv_call_adds_nothing(arxiv: FakeArxiv, redis_store: RedisStore) -> None:
    arxiv.fail_next(503)
    reply = await commands_for(arxiv, redis_store).handle(ctx(), "add reward model")
    assert not reply.ok and "nothing was added" in reply.text
    assert await redis_store.subscriptions(HERE) == []
    assert await redis_store.unseen(HERE, ["2611.00001"]) == {"2611.00001"}


async def test_options_are_set_per_channel(arxiv: FakeArxiv, redis_store: RedisStore) -> None:
    commands = commands_for(arxiv, redis_store)
    assert (await commands.handle(ctx(), "set revisions on")).ok
    assert (await commands.handle(ctx(), "set quiet on")).ok
    assert (await commands.handle(ctx(), "set quiet off")).ok
    options = await channel_options(Settings(), redis_store, HERE)
    assert options.revisions and not options.quiet_days
    wrong = await commands.handle(ctx(), "set loud on")
    assert not wrong.ok
    assert wrong.text == "Use: set revisions|quiet|weekly on|off, or set alerts on|off"
    denied = await commands.handle(
        CommandContext(HERE, "U2", denied="not in the list"), "set quiet on"
    )
    assert not denied.ok and "not in the list" in denied.text


async def test_each_user_has_a_command_budget_per_minute(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    commands = commands_for(arxiv, redis_store, per_user_per_minute=3)
    answers = [await commands.handle(ctx(), "help") for _ in range(4)]
    assert [a.ok for a in answers] == [True, True, True, False]
    assert answers[-1].text == "Slow down: at most 3 commands a minute."
    assert (await commands.handle(ctx("U2"), "help")).ok


async def test_the_bot_serves_a_bounded_number_of_channels(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    commands = commands_for(arxiv, redis_store, max_channels=1)
    assert (await commands.handle(ctx(), "add reward model")).ok
    refused = await commands.handle(ctx(channel=Channel("slack", "C2")), "add reward model")
    assert not refused.ok and "max_channels" in refused.text
    assert (await commands.handle(ctx(), "add rlhf")).ok
    assert (await commands.handle(ctx(channel=Channel("discord", "9")), "add rlhf")).ok


NOW = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)


def settings_with(arxiv: FakeArxiv, **arxiv_settings: int) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": {
                "api_url": arxiv.url,
                "oai_url": "",
                "rss_url": arxiv.rss_url,
                "request_interval": 0,
                "max_retries": 0,
                **arxiv_settings,
            }
        }
    )


class Everything:
    """An output that takes every digest and remembers the papers it was handed."""

    platform = "slack"
    needs_recent = False

    def __init__(self) -> None:
        self.posted: list[str] = []

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        ids = [item.paper.id for item in digest.items]
        self.posted += ids
        await delivered(ids)


async def next_digest(settings: Settings, store: RedisStore) -> list[str]:
    out = Everything()
    runner = DigestRunner(
        settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=lambda: NOW
    )
    assert (await runner.run()).ok
    return out.posted


async def test_adding_a_keyword_counts_what_is_visible_now_as_seen(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = settings_with(arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=lambda: NOW)
    assert (await commands.handle(ctx(), "add reward model")).ok
    assert await next_digest(settings, redis_store) == []


async def test_a_revised_paper_visible_when_added_is_not_posted_as_a_new_version(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    arxiv.papers[0] = arxiv.papers[0].new_version()
    settings = settings_with(arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=lambda: NOW)
    assert (await commands.handle(ctx(), "set revisions on")).ok
    assert (await commands.handle(ctx(), "add reward model")).ok
    assert await next_digest(settings, redis_store) == []


async def test_recent_does_not_ask_arxiv_again_for_a_keyword_it_just_fetched(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    settings = settings_with(arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=lambda: NOW)
    assert (await commands.handle(ctx(), "add quantum gravity")).ok  # no paper answers it
    asked = len(arxiv.requests)
    reply = await commands.handle(ctx(), "recent")
    assert reply.text == "No papers found for “quantum gravity”."
    assert len(arxiv.requests) == asked
    later = Commands(
        settings, redis_store, ArxivSource(settings.arxiv), clock=lambda: NOW + timedelta(days=8)
    )
    await later.handle(ctx(), "recent")
    assert len(arxiv.requests) == asked + 1  # outside the window: asked again


# -- issue 22, finding 7: channel budgets ------------------------------------------------------


def in_space(user: str, channel: str, space: str = "T1") -> CommandContext:
    return CommandContext(channel=Channel("slack", channel), user=user, space=space)


async def test_one_member_cannot_fill_the_channel_pool(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    commands = commands_for(arxiv, redis_store, max_channels_per_member=2)
    for channel in ("C1", "C2"):
        assert (await commands.handle(in_space("U1", channel), "add reward model")).ok
    refused = await commands.handle(in_space("U1", "C3"), "add reward model")
    assert not refused.ok and "max_channels_per_member" in refused.text
    assert (
        "\n" not in refused.text and await redis_store.subscriptions(Channel("slack", "C3")) == []
    )
    # Another keyword in a channel the bot serves, and another member, are not held back.
    assert (await commands.handle(in_space("U1", "C1"), "add rlhf")).ok
    assert (await commands.handle(in_space("U2", "C3"), "add reward model")).ok
    # A channel whose keywords are all removed frees its place in the budget.
    assert (await commands.handle(in_space("U1", "C2"), "remove reward model")).ok
    assert (await commands.handle(in_space("U1", "C4"), "add reward model")).ok


async def test_one_workspace_has_a_budget_of_its_own(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    commands = commands_for(arxiv, redis_store, max_channels_per_space=2)
    assert (await commands.handle(in_space("U1", "C1"), "add reward model")).ok
    assert (await commands.handle(in_space("U2", "C2"), "add reward model")).ok
    refused = await commands.handle(in_space("U3", "C3"), "add reward model")
    assert not refused.ok and "max_channels_per_space" in refused.text
    assert (await commands.handle(in_space("U3", "C3", space="T2"), "add reward model")).ok


async def test_add_is_refused_where_digests_cannot_go(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    commands = commands_for(arxiv, redis_store)
    dm = CommandContext(Channel("slack", "D1"), "U1", unpostable="Digests go to channels.")
    reply = await commands.handle(dm, "add reward model")
    assert not reply.ok and reply.text == "Digests go to channels."
    assert await redis_store.subscriptions(Channel("slack", "D1")) == []


# -- issue 22, finding 1: an add holds back for its keyword alone ------------------------


BOTH = make_paper(10, title="A reward model trained with RLHF")


async def follows_reward_model(store: RedisStore) -> None:
    """The channel followed "reward model" before today (its first run is done)."""
    await store.add_subscription(HERE, "reward model", added_by="U0", cap=25)
    await store.set_baselined(HERE, ["reward model"])


async def test_add_then_remove_of_a_keyword_leaves_the_other_keywords_papers_to_post(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    arxiv.papers.append(BOTH)
    await follows_reward_model(redis_store)
    settings = settings_with(arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=lambda: NOW)
    assert (await commands.handle(ctx("U2"), "add RLHF")).ok
    assert (await commands.handle(ctx("U2"), "remove RLHF")).ok
    posted = await next_digest(settings, redis_store)
    assert BOTH.id in posted


async def test_an_added_keyword_holds_back_its_preview_for_itself_alone(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    arxiv.papers.append(BOTH)
    await follows_reward_model(redis_store)
    settings = settings_with(arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=lambda: NOW)
    assert (await commands.handle(ctx("U2"), "add RLHF")).ok
    posted = await next_digest(settings, redis_store)
    assert BOTH.id in posted  # "reward model" matches it too
    assert "2611.00009" not in posted  # "RLHF without a reward": RLHF's backlog, held
    assert await next_digest(settings, redis_store) == []  # and nothing comes later


class ConcurrentAdd(ArxivSource):
    """Another member's add lands while this add's search is in flight (fills the cap)."""

    def __init__(self, settings: Settings, store: RedisStore) -> None:
        super().__init__(settings.arxiv)
        self.store = store

    async def latest(self, keyword: str, n: int, *, caller: Caller = DIGEST) -> list[Paper]:
        found = await super().latest(keyword, n, caller=caller)
        await follows_reward_model(self.store)
        return list(found)


async def test_an_add_refused_by_its_final_check_holds_nothing_back(
    arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    arxiv.papers.append(BOTH)
    settings = settings_with(arxiv)
    settings.commands.max_keywords_per_channel = 1
    commands = Commands(settings, redis_store, ConcurrentAdd(settings, redis_store))
    reply = await commands.handle(ctx("U2"), "add RLHF")
    assert not reply.ok and "the most allowed" in reply.text
    assert await redis_store.unseen(HERE, [BOTH.id]) == {BOTH.id}
    assert await redis_store.last_fetched(["RLHF"]) == {"RLHF": None}
    assert BOTH.id in await next_digest(settings, redis_store)


async def test_an_add_and_remove_leave_nothing_behind_in_redis(
    arxiv: FakeArxiv, redis_store: RedisStore, redis_client: aioredis.Redis
) -> None:
    settings = settings_with(arxiv)
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv), clock=lambda: NOW)
    for _ in range(3):
        assert (await commands.handle(ctx("U2"), "add reward model")).ok
        assert (await commands.handle(ctx("U2"), "remove reward model")).ok
    left = [k for k in await redis_client.keys("test:*") if not k.startswith("test:rate:")]
    assert left == []


@pytest.mark.parametrize(
    ("rest", "parsed"),
    [
        ("reward model 5", ("reward model", 5)),
        ("7", (None, 7)),
        ("", (None, None)),
        ("reward model", ("reward model", None)),
        ("gpt 4o", ("gpt 4o", None)),
        ("reward model 0", ("reward model", 0)),  # refused by `recent` with the range
    ],
)
def test_parse_recent(rest: str, parsed: tuple[str | None, int | None]) -> None:
    assert parse_recent(rest) == parsed


@pytest.mark.parametrize("count", ["05", "0000000000005", "99999", "100000000000000000000"])
def test_parse_recent_refuses_a_count_written_oddly_or_too_long(count: str) -> None:
    """Issue 22, finding 11: one strict helper reads numbers (`bot.replies.whole_number`)."""
    with pytest.raises(UserError, match=r"^Ask for between 1 and a few dozen papers\.$"):
        parse_recent(f"reward model {count}")
