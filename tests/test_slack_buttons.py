"""Buttons under posted papers, end to end: a digest posted by the real `AsyncWebClient` to
the fake Slack, then presses sent as Slack sends them (signed `block_actions` over HTTP, and
over the socket) to the real bolt app served by `serve()`, with a real Redis."""

# ruff: noqa: F811  (the fixtures of test_slack_app, imported by name)

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from adapters.slack.app import publisher_from_settings
from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner
from bot.models import Channel
from bot.settings import DigestSettings, Settings
from bot.votes import LESS, SAVE, UNSAVE, VOTE
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, make_paper
from tests.fakes.slack_api import block_problems
from tests.test_slack_app import (  # noqa: F401  (arxiv, bot, make_bot: its fixtures)
    CHANNEL,
    Bot,
    arxiv,
    bot,
    make_bot,
    sign,
)

PAPER = "2611.00006"


async def post_digest(
    bot: Bot, *, delivered: int = 5, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """The day's digest for `reward model` in CHANNEL (by default its first: the five newest
    papers); the thread messages of the channel."""
    settings = settings or bot.settings
    publisher = publisher_from_settings(settings, interval=0)
    runner = DigestRunner(settings, bot.store, ArxivSource(settings.arxiv), {"slack": publisher})
    try:
        report = await runner.run({Channel("slack", CHANNEL): ["reward model"]})
    finally:
        await publisher.aclose()
    assert report.ok and report.delivered == delivered
    return [m for m in bot.slack.messages(CHANNEL) if m.get("thread_ts", m["ts"]) != m["ts"]]


async def press(bot: Bot, payload: dict[str, Any]) -> int:
    body = urlencode({"payload": json.dumps(payload)})
    ack = await bot.post(body)
    return ack.status


def vote_button(message: dict[str, Any], paper_id: str) -> dict[str, Any]:
    return next(
        e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == VOTE and e["value"] == paper_id
    )


async def test_every_posted_paper_has_its_buttons_within_slacks_limits(bot: Bot) -> None:
    (message,) = await post_digest(bot)
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [b["block_id"] for b in actions] == [f"papers:2611.0000{n}" for n in range(6, 1, -1)]
    for block in actions:
        assert [e["action_id"] for e in block["elements"]] == [VOTE, SAVE, LESS]
        assert {e["value"] for e in block["elements"]} == {block["block_id"][7:]}
    assert block_problems(message["blocks"]) == []


async def test_a_vote_shows_its_count_and_an_undo_takes_it_back(bot: Bot) -> None:
    (message,) = await post_digest(bot)
    key = message["metadata"]
    payload = bot.slack.block_actions(CHANNEL, message["ts"], VOTE, PAPER, user="U1")
    assert await press(bot, payload) == 200
    await bot.slack.wait_until(lambda: "· 1" in vote_button(message, PAPER)["text"]["text"])
    assert vote_button(message, "2611.00005")["text"]["text"] == "👍 Relevant"
    assert message["metadata"] == key, "chat.update keeps the key a rerun looks for"
    await press(bot, bot.slack.block_actions(CHANNEL, message["ts"], VOTE, PAPER, user="U2"))
    await bot.slack.wait_until(lambda: "· 2" in vote_button(message, PAPER)["text"]["text"])
    await press(bot, bot.slack.block_actions(CHANNEL, message["ts"], VOTE, PAPER, user="U1"))
    await bot.slack.wait_until(lambda: "· 1" in vote_button(message, PAPER)["text"]["text"])
    _, top = await bot.run("top")
    assert top.blocks[0]["text"]["text"] == "Most voted in this channel, the last 7 days:"
    assert top.blocks[1]["text"]["text"].startswith("👍 1 *<https://arxiv.org/abs/2611.00006|")
    assert len(bot.slack.responses) == 1, "a vote says nothing privately: the count does"


async def test_save_then_saved_then_remove(bot: Bot) -> None:
    (message,) = await post_digest(bot)
    await press(bot, bot.slack.block_actions(CHANNEL, message["ts"], SAVE, PAPER, response_key="s"))
    saved = await bot.slack.wait_for_response("s")
    assert saved.body["response_type"] == "ephemeral"
    assert saved.body["replace_original"] is False
    assert saved.blocks[0]["text"]["text"].startswith("Saved “Reward model study 6”.")
    _, listing = await bot.run("saved")
    assert listing.body["response_type"] == "ephemeral"
    (remove,) = [b for b in listing.blocks if b["type"] == "actions"]
    assert remove["elements"][0]["action_id"] == UNSAVE
    assert remove["elements"][0]["value"] == PAPER
    assert block_problems(listing.blocks) == []
    pressed = {
        **bot.slack.block_actions(CHANNEL, message["ts"], VOTE, PAPER, response_key="r"),
        "actions": [{**remove["elements"][0], "block_id": remove["block_id"]}],
        "container": {"type": "message", "message_ts": "1.2", "is_ephemeral": True},
    }
    pressed.pop("message")  # an ephemeral message is not sent back with the press
    assert await press(bot, pressed) == 200
    refreshed = await bot.slack.wait_for_response("r")
    assert refreshed.body["replace_original"] is True
    assert refreshed.blocks[0]["text"]["text"].startswith("You have no saved papers.")


async def test_presses_are_verified_like_commands(bot: Bot) -> None:
    (message,) = await post_digest(bot)
    payload = bot.slack.block_actions(CHANNEL, message["ts"], VOTE, PAPER)
    body = urlencode({"payload": json.dumps(payload)})
    assert (await bot.post(body, signed=False)).status == 401
    assert (await bot.post(body, signature="v0=" + "0" * 64)).status == 401
    assert (await bot.post(body, timestamp="1000000000")).status == 401
    timestamp = str(int(time.time()))
    signature = sign(timestamp, body)
    assert (await bot.post(body, timestamp=timestamp, signature=signature)).status == 200
    assert (await bot.post(body, timestamp=timestamp, signature=signature)).status == 401
    await bot.slack.wait_until(lambda: "· 1" in vote_button(message, PAPER)["text"]["text"])
    _, top = await bot.run("top")
    assert top.blocks[1]["text"]["text"].startswith("👍 1 *<https://arxiv.org/abs/2611.00006|")


@pytest.mark.parametrize("value", ["<!everyone>", "2611.00006 <!here>", "x" * 300])
async def test_a_forged_value_gets_one_private_line_and_changes_nothing(
    bot: Bot, value: str
) -> None:
    (message,) = await post_digest(bot)
    payload = bot.slack.block_actions(CHANNEL, message["ts"], VOTE, PAPER, response_key="f")
    payload["actions"][0]["value"] = value
    assert await press(bot, payload) == 200
    answer = await bot.slack.wait_for_response("f")
    text = answer.blocks[0]["text"]["text"]
    assert text == ":warning: That is not an arXiv id (like 2504.12345)."
    assert "<!" not in json.dumps(answer.body)
    assert (await bot.say("top")).startswith("No votes")


async def test_socket_mode_presses_are_acked_over_the_socket(make_bot: Any) -> None:
    bot: Bot = await make_bot(mode="socket", signing_secret=None)
    (message,) = await post_digest(bot)
    payload = bot.slack.block_actions(CHANNEL, message["ts"], VOTE, PAPER)
    ack = await bot.slack.send_envelope("interactive", payload)
    assert "envelope_id" in ack
    await bot.slack.wait_until(lambda: "· 1" in vote_button(message, PAPER)["text"]["text"])


@pytest.mark.parametrize(
    "name",
    [
        "slack_block_actions_boltpython_form_urlencoded_body.txt",
        "slack_block_actions_boltpython_payload.json",
        "slack_block_actions_form_urlencoded_payload_body_acme.txt",
        "slack_block_actions_slackdocs_button_payload.json",
    ],
)
async def test_real_block_actions_payloads_with_our_button(
    bot: Bot, corpus: Path, name: str
) -> None:
    """Each recorded payload, its action made ours: the app takes Slack's real shape."""
    (message,) = await post_digest(bot)
    raw = (corpus / name).read_text()
    if raw.startswith("payload="):
        raw = parse_qs(raw)["payload"][0]
    payload = json.loads(raw)
    payload["actions"][0].update(action_id=VOTE, value=PAPER, type="button")
    payload["channel"] = {"id": CHANNEL, "name": "papers"}
    payload["container"] = {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    payload["message"] = {k: v for k, v in message.items() if k != "metadata"}
    payload["response_url"] = bot.slack.response_url("corpus")
    assert await press(bot, payload) == 200
    await bot.slack.wait_until(lambda: "· 1" in vote_button(message, PAPER)["text"]["text"])


AGENTS = "reward model for language agents trained with preference optimization on web tasks"
ROBOTS = "reward model for robot grasping learned from tactile sensing in cluttered bins"


async def test_the_next_digest_is_ranked_by_a_vote_pressed_in_slack(
    bot: Bot, arxiv: FakeArxiv
) -> None:
    """Day 1: one paper on web agents, one on grasping; the channel votes 👍 on the agents
    paper through the bolt app. Day 2: three of each, the grasping ones newest; with a cap of
    three the channel gets the agents papers, and is told of the other three."""
    today = date.today()
    day1 = [
        make_paper(1, title="Web agents, day 1", summary=AGENTS),
        make_paper(2, title="Grasping, day 1", summary=ROBOTS),
    ]
    arxiv.papers = list(day1)
    arxiv.listing = FakeListing(day=today - timedelta(days=1), items=[(p, "new") for p in day1])
    (message,) = await post_digest(bot, delivered=2)
    await press(bot, bot.slack.block_actions(CHANNEL, message["ts"], VOTE, "2611.00001"))
    await bot.slack.wait_until(lambda: "· 1" in vote_button(message, "2611.00001")["text"]["text"])

    day2 = [make_paper(n, title=f"Web agents {n}", summary=AGENTS) for n in (10, 11, 12)]
    day2 += [make_paper(n, title=f"Grasping {n}", summary=ROBOTS) for n in (13, 14, 15)]
    arxiv.papers += day2
    arxiv.listing = FakeListing(day=today, items=[(p, "new") for p in day2])
    capped = bot.settings.model_copy(
        update={"digest": DigestSettings(first_run_papers=5, max_papers_per_channel=3)}
    )
    thread = await post_digest(bot, delivered=3, settings=capped)
    posted = [m for m in thread if m.get("thread_ts") and m not in (message,)][-1]
    titles = [b["text"]["text"] for b in posted["blocks"] if b["type"] == "section"]
    assert [t.split("|")[1].split(">")[0] for t in titles] == [
        "Web agents 12",
        "Web agents 11",
        "Web agents 10",
    ]
