"""Slack: the buttons under each posted paper (👍 Relevant, 🔖 Save, 👎 Less like this) and
the Remove buttons of `/papers saved`, answered by the same bolt app as `/papers`.

A press is acked at once (bolt verifies its signature and timestamp like a command's), then
`Commands.press` counts it; a vote updates the message's count with `chat.update`, which
keeps the message's metadata key; a save or a refusal is said privately to the presser.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.commands import CommandContext, Commands, Reply
from bot.models import Channel, Paper
from bot.votes import LESS, SAVE, UNSAVE, VOTE, Pressed, vote_label

if TYPE_CHECKING:
    from slack_bolt.app.async_app import AsyncApp
    from slack_bolt.context.ack.async_ack import AsyncAck
    from slack_bolt.context.respond.async_respond import AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

Block = dict[str, Any]
Answer = Callable[["AsyncRespond", Reply, bool], Awaitable[None]]
"""Sends a reply at a response URL; True replaces the message the button was on."""

ACTION_IDS = re.compile(r"^papers_(vote|less|save|unsave)$")
PLATFORM = "slack"


def button(action_id: str, label: str, value: str, *, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": value,
    }
    if style is not None:
        element["style"] = style
    return element


def paper_actions(paper: Paper, up: int = 0) -> Block:
    """The buttons under a digest's paper (its vote count `up`). `action_id`s are unique
    within the block, and the block id names the paper, so one message may carry many."""
    return {
        "type": "actions",
        "block_id": f"papers:{paper.id}",
        "elements": [
            button(VOTE, vote_label(up), paper.id),
            button(SAVE, "🔖 Save", paper.id),
            button(LESS, "👎 Less like this", paper.id),
        ],
    }


def remove_action(paper: Paper) -> Block:
    return {
        "type": "actions",
        "block_id": f"papers:{paper.id}",
        "elements": [button(UNSAVE, "Remove", paper.id, style="danger")],
    }


def with_vote_count(blocks: Sequence[Block], paper_id: str, up: int) -> list[Block]:
    """The message's blocks with the paper's vote button showing `up`."""
    updated: list[Block] = []
    for block in blocks:
        if block.get("type") == "actions":
            block = {
                **block,
                "elements": [
                    button(VOTE, vote_label(up), paper_id)
                    if e.get("action_id") == VOTE and e.get("value") == paper_id
                    else e
                    for e in block.get("elements", [])
                ],
            }
        updated.append(block)
    return updated


def register(app: AsyncApp, commands: Commands, answer: Answer) -> None:
    async def on_button(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        container = body.get("container") or {}
        channel_id = str((body.get("channel") or {}).get("id") or container.get("channel_id"))
        user = str((body.get("user") or {}).get("id") or "")
        ctx = CommandContext(Channel(PLATFORM, channel_id), user)
        action_id = str(action.get("action_id") or "")
        pressed = await commands.press(ctx, action_id, str(action.get("value") or ""))
        log.info(
            "slack_button channel=%s user=%s action=%s ok=%s",
            ctx.channel,
            user,
            action_id,
            pressed.reply is None or pressed.reply.ok,
        )
        if pressed.tally is not None:
            await _show_votes(client, body, pressed)
        if pressed.reply is None:
            return
        if pressed.replacement is not None:
            await answer(respond, pressed.replacement, True)
        else:
            await answer(respond, pressed.reply, False)

    app.action(ACTION_IDS)(on_button)


async def _show_votes(client: AsyncWebClient, body: Mapping[str, Any], pressed: Pressed) -> None:
    container = body.get("container") or {}
    message = body.get("message")
    if not isinstance(message, Mapping) or container.get("is_ephemeral") or pressed.tally is None:
        return
    try:
        await client.chat_update(
            channel=str(container.get("channel_id")),
            ts=str(container.get("message_ts")),
            text=str(message.get("text") or ""),
            blocks=with_vote_count(message.get("blocks") or [], pressed.paper_id, pressed.tally.up),
        )
    except SlackApiError as err:
        log.warning("slack_vote_count_not_shown error=%s", err.response.get("error"))
    except (aiohttp.ClientError, TimeoutError) as err:
        log.warning("slack_vote_count_not_shown error=%s", type(err).__name__)
