"""Discord: the buttons under each digest message (👍, 🔖 and 👎 for every paper it carries,
named by the number its embed shows) and the Remove buttons of `/papers saved`.

The buttons are persistent: their `custom_id` (`papers_vote:<arXiv id>`) is all a press needs,
and one `DynamicItem` registered on the gateway client answers them, after any restart.
A press is deferred at once (within Discord's 3 seconds, whatever the core then takes); a
vote then updates the message's buttons (its count), anything else is said privately, and
nothing pings anyone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import discord

from adapters.discord.render import CONTENT_LIMIT, render_reply, shorten
from bot.claims import Claim, answers_here
from bot.commands import CommandContext, Commands, Reply
from bot.models import Channel
from bot.votes import LESS, SAVE, UNSAVE, VOTE, vote_label

log = logging.getLogger(__name__)

PLATFORM = "discord"
NO_MENTIONS = discord.AllowedMentions.none()
TEMPLATE = r"(?P<action>papers_(?:vote|less|save|unsave)):(?P<paper>[\w./-]{1,40})"

Refusal = Callable[[discord.Interaction], str | None]
"""Why this interaction is not served (another server, a DM), or None when it is."""


async def admitted(
    interaction: discord.Interaction, claim: Claim | None, refusal: Refusal | None
) -> bool:
    """Whether this replica answers the interaction (`claim`: exactly one replica does) and
    the bot serves where it comes from; the one replica that claims a refused one says why."""
    failed = f"discord_claim_failed interaction={interaction.id}"
    if claim is not None and not await answers_here(claim(str(interaction.id)), failed):
        return False
    why = refusal(interaction) if refusal is not None else None
    if why is None:
        return True
    log.info(
        "discord_refused guild=%s user=%s reason=%r",
        interaction.guild_id,
        interaction.user.id,
        why,
    )
    if interaction.type is discord.InteractionType.autocomplete:
        await interaction.response.autocomplete([])
    else:
        await interaction.response.send_message(why, ephemeral=True, allowed_mentions=NO_MENTIONS)
    return False


def custom_id(action: str, paper_id: str) -> str:
    return f"{action}:{paper_id}"


def _button(
    action: str, paper_id: str, label: str, style: discord.ButtonStyle
) -> discord.ui.Button[Any]:
    return discord.ui.Button(label=label, custom_id=custom_id(action, paper_id), style=style)


def paper_buttons(
    paper_ids: Sequence[str], numbers: Sequence[int], ups: Sequence[int] = ()
) -> discord.ui.View:
    """👍, 🔖 and 👎 for each paper, labelled with the number its embed shows (and its vote
    count, from `ups`, when given)."""
    view = discord.ui.View(timeout=None)
    counts = ups or (0,) * len(paper_ids)
    for pid, n, up in zip(paper_ids, numbers, counts, strict=True):
        view.add_item(_button(VOTE, pid, f"#{n} {vote_label(up)}", discord.ButtonStyle.secondary))
        view.add_item(_button(SAVE, pid, f"#{n} 🔖", discord.ButtonStyle.secondary))
        view.add_item(_button(LESS, pid, f"#{n} 👎", discord.ButtonStyle.secondary))
    return view


def remove_buttons(paper_ids: Sequence[str], numbers: Sequence[int]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for pid, n in zip(paper_ids, numbers, strict=True):
        view.add_item(_button(UNSAVE, pid, f"Remove #{n}", discord.ButtonStyle.danger))
    return view


def with_vote_count(message: discord.Message, paper_id: str, up: int) -> discord.ui.View:
    """The message's buttons, the paper's vote button showing `up`."""
    view = discord.ui.View.from_message(message, timeout=None)
    wanted = custom_id(VOTE, paper_id)
    for item in view.children:
        if isinstance(item, discord.ui.Button) and item.custom_id == wanted:
            number = (item.label or "").split(" ", 1)[0]
            item.label = f"{number} {vote_label(up)}".strip()
    return view


def button_class(
    commands: Commands, claim: Claim | None = None, refusal: Refusal | None = None
) -> type[discord.ui.DynamicItem[Any]]:
    """The `DynamicItem` that answers every papers-bot button, for `client.add_dynamic_items`."""

    class PaperButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
        def __init__(self, action: str, paper_id: str) -> None:
            super().__init__(discord.ui.Button(custom_id=custom_id(action, paper_id)))
            self.action = action
            self.paper_id = paper_id

        @classmethod
        async def from_custom_id(
            cls,
            interaction: discord.Interaction,
            item: discord.ui.Item[Any],
            match: re.Match[str],
        ) -> PaperButton:
            return cls(match["action"], match["paper"])

        async def interaction_check(self, interaction: discord.Interaction) -> bool:
            return await admitted(interaction, claim, refusal)

        async def callback(self, interaction: discord.Interaction) -> None:
            await press(commands, interaction, self.action, self.paper_id)

    return PaperButton


async def press(
    commands: Commands, interaction: discord.Interaction, action: str, paper_id: str
) -> None:
    """Deferred at once (Discord's 3 seconds: a paper the store forgot is asked of arXiv),
    then the message edited (a vote's count, the saved list) or a private line sent."""
    await interaction.response.defer()
    if interaction.channel_id is None:
        await _say(interaction, "Use the buttons in a server channel.")
        return
    ctx = CommandContext(Channel(PLATFORM, str(interaction.channel_id)), str(interaction.user.id))
    pressed = await commands.press(ctx, action, paper_id)
    log.info(
        "discord_button channel=%s user=%s action=%s ok=%s",
        ctx.channel,
        ctx.user,
        action,
        pressed.reply is None or pressed.reply.ok,
    )
    if pressed.tally is not None and interaction.message is not None:
        view = with_vote_count(interaction.message, pressed.paper_id, pressed.tally.up)
        await interaction.edit_original_response(view=view)
    elif pressed.replacement is not None:
        await _replace(interaction, pressed.replacement)
    elif pressed.reply is not None:
        await _say(interaction, pressed.reply.text)


async def _replace(interaction: discord.Interaction, reply: Reply) -> None:
    """The reply (the saved list again) in place of the message whose button was pressed."""
    (message, *_) = render_reply(reply)
    view = remove_buttons(message.paper_ids, message.numbers) if message.numbers else None
    await interaction.edit_original_response(
        content=message.content, embeds=list(message.embeds), view=view
    )


async def _say(interaction: discord.Interaction, text: str) -> None:
    await interaction.followup.send(
        content=shorten(text, CONTENT_LIMIT), ephemeral=True, allowed_mentions=NO_MENTIONS
    )
