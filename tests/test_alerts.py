"""Saved papers followed (bot/alerts.py), end to end on Slack: a paper saved with a press sent
to the real bolt app, a later listing carrying its v2 and a journal reference, the saver
told once by a direct message that the real `AsyncWebClient` sends to the fake Slack (which
checks `conversations.open` as Slack documents it); real Redis throughout."""

# ruff: noqa: F811  (the fixtures of test_slack_app, imported by name)

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.app import publisher_from_settings
from bot.alerts import follow_saved
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner, RunReport
from bot.models import Channel
from bot.settings import Settings
from bot.state import AlertState, Known
from bot.state.memory import MemoryAlerts
from bot.state.redis import RedisStore
from bot.votes import SAVE
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, FakePaper, make_paper
from tests.fakes.slack_api import OPEN_PER_MINUTE, FakeSlack, block_problems
from tests.test_slack_app import (  # noqa: F401  (arxiv, bot, make_bot: its fixtures)
    CHANNEL,
    Bot,
    arxiv,
    bot,
    make_bot,
)
from tests.test_slack_buttons import post_digest, press

PAPER = "2611.00006"
JOURNAL = "Phys. Rev. B 85, 115117"
ALICE, BOB = "U0ALICE", "U0BOB"


async def save(bot: Bot, message: dict[str, object], user: str) -> None:
    """`user` presses 🔖 Save under PAPER in the digest `message`, and is answered."""
    key = f"save-{user}"
    payload = bot.slack.block_actions(
        CHANNEL, str(message["ts"]), SAVE, PAPER, user=user, response_key=key
    )
    assert await press(bot, payload) == 200
    answer = await bot.slack.wait_for_response(key)
    assert answer.blocks[0]["text"]["text"].startswith("Saved ")


def announce(arxiv: FakeArxiv, days: int, items: list[tuple[FakePaper, str]]) -> None:
    """A listing `days` after the first one (the fake's own listing of today), with three
    unrelated new papers, so that it is never taken for the one before."""
    first = arxiv.everything_today().day
    fresh = [make_paper(500 + 10 * days + n, title=f"Unrelated {days} {n}") for n in range(3)]
    arxiv.listing = FakeListing(
        day=first + timedelta(days=days), items=[*items, *((p, "new") for p in fresh)]
    )


def revise(arxiv: FakeArxiv, **changes: object) -> FakePaper:
    """PAPER's next version, which the API then serves too (the digest asks it for details)."""
    current = max((p for p in arxiv.papers if p.id == PAPER), key=lambda p: p.version)
    revised = current.new_version(**changes)
    arxiv.papers.append(revised)
    return revised


async def digest(bot: Bot) -> RunReport:
    publisher = publisher_from_settings(bot.settings, interval=0)
    source = ArxivSource(bot.settings.arxiv)
    runner = DigestRunner(bot.settings, bot.store, source, {"slack": publisher})
    try:
        report = await runner.run({Channel("slack", CHANNEL): ["reward model"]})
    finally:
        await publisher.aclose()
    assert report.ok, report
    return report


def dm_text(slack: FakeSlack, user: str) -> list[str]:
    """The first section of each direct message `user` got, checked against Block Kit."""
    posts = slack.dm_posts(user)
    assert all(block_problems(p.blocks) == [] for p in posts)
    return [p.blocks[0]["text"]["text"] for p in posts]


async def test_a_saved_paper_whose_v2_and_journal_ref_arrive_tells_its_saver_once(
    bot: Bot, arxiv: FakeArxiv
) -> None:
    (message,) = await post_digest(bot)
    await save(bot, message, ALICE)
    v2 = revise(arxiv, journal_ref=JOURNAL)
    announce(arxiv, 1, [(v2, "replace")])
    await digest(bot)

    (text,) = dm_text(bot.slack, ALICE)
    assert text.splitlines() == [
        "A paper you saved has news:",
        "• New version: v2 (you saved v1)",
        f"• Journal reference: {JOURNAL}",
        "/papers set alerts off stops these messages.",
    ]
    (dm,) = bot.slack.dm_posts(ALICE)
    assert "Reward model study 6" in dm.blocks[1]["text"]["text"]
    assert dm.args["unfurl_links"] in (False, "0", "false")
    assert [c.args["users"] for c in bot.slack.calls if c.method == "conversations.open"] == [ALICE]
    # The saved list, and its BibTeX, show the paper as it is now.
    (kept,) = await bot.store.signals.saved(f"slack:{ALICE}", 10)
    assert (kept.version, kept.journal_ref) == (2, JOURNAL)

    # The same version again (a cross-list, a catch-up), then nothing new: no second message.
    announce(arxiv, 2, [(v2, "replace-cross")])
    await digest(bot)
    assert len(bot.slack.dm_posts(ALICE)) == 1
    # What is news is news once: a DOI later is one more message, with that line alone.
    v2_doi = replace(v2, doi="10.1103/PhysRevB.85.115117")  # added to v2, as arXiv does
    arxiv.papers[arxiv.papers.index(v2)] = v2_doi
    announce(arxiv, 3, [(v2_doi, "replace")])
    await digest(bot)
    assert dm_text(bot.slack, ALICE)[1].splitlines()[1:-1] == ["• DOI: 10.1103/PhysRevB.85.115117"]


async def test_alerts_off_is_one_users_own_and_bad_input_changes_nothing(
    bot: Bot, arxiv: FakeArxiv
) -> None:
    (message,) = await post_digest(bot)
    for user in (ALICE, BOB, "U0CAROL"):
        await save(bot, message, user)
    assert await bot.say("set alerts off", user=BOB) == (
        "Alerts are off: the bot no longer tells you about papers you saved."
    )
    refused = await bot.say("set alerts maybe", user="U0CAROL")
    assert refused == ":warning: Use: set alerts on|off"
    announce(arxiv, 1, [(revise(arxiv), "replace")])
    await digest(bot)
    assert len(dm_text(bot.slack, ALICE)) == 1
    assert dm_text(bot.slack, BOB) == []
    assert len(dm_text(bot.slack, "U0CAROL")) == 1, "a refused `set` left alerts on"

    assert (await bot.say("set alerts on", user=BOB)).startswith("Alerts are on")
    announce(arxiv, 2, [(revise(arxiv), "replace")])
    await digest(bot)
    assert len(dm_text(bot.slack, BOB)) == 1


async def test_a_paper_taken_back_is_not_followed(bot: Bot, arxiv: FakeArxiv) -> None:
    (message,) = await post_digest(bot)
    await save(bot, message, ALICE)
    _, answer = await bot.run(f"unsave {PAPER}")
    assert answer.blocks[0]["text"]["text"] == f"Removed {PAPER} from your saved papers."
    assert await bot.store.alerts.savers([PAPER]) == {}, "who to tell stays bounded"
    announce(arxiv, 1, [(revise(arxiv, journal_ref=JOURNAL), "replace")])
    await digest(bot)
    assert bot.slack.dm_posts(ALICE) == []


async def saved_by_alice(store: RedisStore, title: str) -> None:
    v1 = paper(6, title=title)
    assert await store.signals.toggle_saved(f"slack:{ALICE}", v1)
    await store.alerts.follow(f"slack:{ALICE}", v1)


async def test_two_replicas_send_one_message_and_a_failed_send_is_tried_again(
    bot: Bot,
) -> None:
    await saved_by_alice(bot.store, "<!everyone> & <@U0BOB> read this")
    v2 = paper(6, title="<!everyone> & <@U0BOB> read this", version=2, journal_ref=JOURNAL)
    replicas = [publisher_from_settings(bot.settings, interval=0) for _ in range(2)]
    bot.slack.server_error(f"D{ALICE[1:]}", status=503)  # Slack away for the first send
    try:
        assert await follow_saved(bot.store, {"slack": replicas[0]}, [v2]) == 0
        assert bot.slack.dm_posts(ALICE) == []
        sent = await asyncio.gather(
            *(follow_saved(bot.store, {"slack": p}, [v2]) for p in replicas)
        )
        assert sorted(sent) == [0, 1]
        assert await follow_saved(bot.store, {"slack": replicas[0]}, [v2]) == 0
    finally:
        for p in replicas:
            await p.aclose()
    (dm,) = bot.slack.dm_posts(ALICE)
    shown = dm.blocks[1]["text"]["text"]
    assert "&lt;!everyone&gt; &amp; &lt;@U0BOB&gt;" in shown and "<!everyone>" not in shown


async def test_a_user_slack_does_not_know_is_logged_once_and_not_tried_again(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    await saved_by_alice(bot.store, "A paper")
    bot.slack.missing_users.add(ALICE)
    publisher = publisher_from_settings(bot.settings, interval=0)
    v2 = paper(6, title="A paper", version=2)
    with caplog.at_level(logging.INFO, logger="bot.alerts"):
        assert await follow_saved(bot.store, {"slack": publisher}, [v2]) == 0
    bot.slack.missing_users.clear()
    assert await follow_saved(bot.store, {"slack": publisher}, [v2]) == 0
    await publisher.aclose()
    (line,) = [r.getMessage() for r in caplog.records if "alert_" in r.getMessage()]
    assert line.startswith("alert_undeliverable platform=slack user=U0ALICE paper=2611.00006")
    assert "user_not_found" in line


# what is news ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("known", "listed", "news"),
    [
        (Known(1), paper(1, version=2), ["New version: v2 (you saved v1)"]),
        (Known(2), paper(1, version=2), []),
        (Known(3), paper(1, version=2), []),  # an older version, from a late catch-up
        (Known(1, "J 1"), paper(1, journal_ref="J 1"), []),
        (Known(1, "J 1"), paper(1, journal_ref="J 2"), ["Journal reference: J 2"]),
        (Known(1, "J 1"), paper(1), []),  # the listing leaves it out: nothing new
        (
            Known(1),
            paper(1, version=3, journal_ref="J"),
            ["New version: v3 (you saved v1)", "Journal reference: J"],
        ),
    ],
)
def test_what_a_saver_is_told(known: Known, listed: object, news: list[str]) -> None:
    assert list(known.changes(listed)) == news  # type: ignore[arg-type]
    after = known.after(listed)  # type: ignore[arg-type]
    assert after.changes(listed) == ()  # type: ignore[arg-type]
    assert Known.loads(after.dumps()) == after


async def test_the_twins_claim_each_change_once(redis_store: RedisStore) -> None:
    twins: tuple[AlertState, ...] = (MemoryAlerts(), redis_store.alerts)
    for alerts in twins:
        v1 = paper(1)
        await alerts.follow("slack:U1", v1)
        (raw,) = (await alerts.savers([v1.id, "2611.00002"]))[v1.id].values()
        new = Known(2).dumps()
        assert await alerts.claim(v1.id, "slack:U1", raw, new)
        assert not await alerts.claim(v1.id, "slack:U1", raw, new)
        await alerts.unfollow("slack:U1", v1.id)
        assert await alerts.savers([v1.id]) == {}
        await alerts.set_enabled("slack:U1", False)
        assert await alerts.disabled(["slack:U1", "slack:U2"]) == {"slack:U1"}
        await alerts.set_enabled("slack:U1", True)
        assert await alerts.disabled(["slack:U1"]) == set()


async def test_alerts_are_a_users_own_even_where_they_may_not_change_the_channel(
    redis_store: RedisStore,
) -> None:
    settings = Settings()
    commands = Commands(settings, redis_store, ArxivSource(settings.arxiv))
    ctx = CommandContext(Channel("slack", "C1"), "U1", denied="only the listed people may")
    assert (await commands.handle(ctx, "set alerts off")).ok
    assert await redis_store.alerts.disabled(["slack:U1"]) == {"slack:U1"}
    refused = await commands.handle(ctx, "set quiet on")
    assert not refused.ok and refused.text.startswith("You can't change this channel's")
    assert "/papers set alerts on|off" in (await commands.handle(ctx, "help")).text


async def test_the_fake_slack_opens_direct_messages_as_slack_documents_it() -> None:
    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        first = await client.conversations_open(users=ALICE)
        again = await client.conversations_open(users=ALICE)
        assert first["channel"]["id"] == again["channel"]["id"] and again["already_open"]
        for users, error in [("", "users_list_not_supplied"), ("U0BOT", "cannot_dm_bot")]:
            with pytest.raises(SlackApiError) as refused:
                await client.conversations_open(users=users)
            assert refused.value.response["error"] == error
        with pytest.raises(SlackApiError) as refused:
            await client.conversations_open(users=",".join(f"U0{n}AAA" for n in range(9)))
        assert refused.value.response["error"] == "too_many_users"
        with pytest.raises(SlackApiError) as refused:  # tier 3: 50 a minute
            for _ in range(OPEN_PER_MINUTE):
                await client.conversations_open(users=BOB)
        assert refused.value.response.status_code == 429
        slack.scopes.discard("im:write")
        with pytest.raises(SlackApiError) as refused:
            await client.conversations_open(users=BOB)
        assert refused.value.response["needed"] == "im:write"
