"""Discord: `/papers` application commands over the gateway, digests over REST only.

The commands are the core's (`bot.commands.Commands`); this module only turns an interaction
into a `CommandContext` and a `Reply` into messages. Annotations are evaluated at definition
time here (no `from __future__ import annotations`) because discord.py reads the command
parameters' ranges from them, and `/papers recent n` takes its maximum from the settings.
"""

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
import discord
from discord import app_commands

from adapters.discord.buttons import admitted, button_class, paper_buttons, remove_buttons
from adapters.discord.endpoints import redirect
from adapters.discord.render import (
    DEFAULT_ABSTRACT_CHARS,
    Outgoing,
    render_digest,
    render_reply,
    render_weekly,
)
from bot import keywords as kw
from bot import metrics
from bot.claims import Claim, StoreClaims
from bot.commands import SAVED_FORMS, SET_NAMES, CommandContext, Commands, Reply
from bot.models import Channel, Digest
from bot.progress import reporting
from bot.publishing import Delivered, DeliveryError, message_key
from bot.settings import DiscordSettings, Settings, SettingsError, secret
from bot.state import Store, keys
from bot.votes import MAX_TOP_DAYS, TOP_DAYS
from bot.weekly import WeeklyPost

log = logging.getLogger(__name__)

PLATFORM = "discord"
INVITE_SCOPES = ("bot", "applications.commands")
INVITE_PERMISSIONS = discord.Permissions(
    send_messages=True, embed_links=True, read_message_history=True
)
NO_MENTIONS = discord.AllowedMentions.none()
MAX_CHOICES = 25
FAILED = "Something went wrong on our side. Please try again later."
SEND_TIMEOUT = 30.0
"""Seconds one digest message may take, rate-limit waits included (aiohttp's own is 5 min)."""
STALE = "This command isn't available any more. Try /papers help."
UNKNOWN_CHANNEL = 10003
"""Discord's JSON error code for a channel that does not exist (any more)."""
CANNOT_MESSAGE_USER = 50007
"""Discord's JSON error code for a user whose direct messages are closed to the bot."""


def _rest_client(settings: DiscordSettings) -> discord.Client:
    # Intents only matter on the gateway; `guilds` keeps discord.py from warning about state.
    client = discord.Client(intents=discord.Intents(guilds=True))
    redirect(client, settings)
    return client


def token_of(settings: Settings) -> str:
    return secret(settings.discord.token, "discord", "token")


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with exactly the scopes and permissions it uses."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES
    )


# -- digests: REST only ------------------------------------------------------------------------


class DiscordPublisher:
    """Posts digests with discord.py's REST client, no gateway connection (cron-friendly).

    Use `async with publisher_from_settings(settings) as publisher:` around a digest run, or
    pass the service's connected client to share its session and rate limits.
    """

    def __init__(
        self,
        settings: DiscordSettings,
        token: str,
        *,
        client: discord.Client | None = None,
        abstract_chars: int = DEFAULT_ABSTRACT_CHARS,
        timeout: float = SEND_TIMEOUT,
        buttons: bool = True,
    ) -> None:
        self._settings = settings
        self._buttons = buttons
        self._token = token
        self._timeout = timeout
        self._shared = client is not None
        self._client = client or _rest_client(settings)
        self._abstract_chars = abstract_chars
        self._lock = asyncio.Lock()
        self._started = self._shared
        self._failure: str | None = None

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def needs_recent(self) -> bool:
        return False

    @property
    def shows_everything(self) -> bool:
        return False

    async def start(self) -> None:
        """Log in (once). Raises `discord.LoginFailure` for a refused token; when Discord
        can't be reached, the next call tries again with a fresh client."""
        async with self._lock:
            if self._started:
                return
            try:
                await self._client.login(self._token)
            except discord.LoginFailure:
                self._started = True
                raise
            except BaseException:
                await self._client.close()
                self._client = _rest_client(self._settings)
                raise
            self._started = True

    async def aclose(self) -> None:
        if not self._shared:
            await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        target = await self._messageable(digest.channel)
        messages = render_digest(digest, abstract_chars=self._abstract_chars, buttons=self._buttons)
        for message in messages:
            view = paper_buttons(message.paper_ids, message.numbers) if message.numbers else None
            nonce = message_key(digest.channel, message.paper_ids, message.content)
            await self._send(target, digest.channel, message, nonce, view)
            await delivered(message.paper_ids)

    async def notify(self, user: str, reply: Reply) -> str | None:
        """A direct message (`bot.alerts.Notifier`); nothing when the user's are closed."""
        if not user.isdecimal():
            return f"{user!r} is not a Discord user id"
        await self.start()
        try:
            async with asyncio.timeout(self._timeout):
                channel = await self._client.create_dm(discord.Object(int(user)))
                for message in render_reply(reply, abstract_chars=self._abstract_chars):
                    await channel.send(
                        content=message.content or None,
                        embeds=list(message.embeds),
                        allowed_mentions=NO_MENTIONS,
                    )
        except (discord.Forbidden, discord.NotFound) as err:
            if err.code == CANNOT_MESSAGE_USER:
                return "Discord: the user's direct messages are closed (50007)"
            return f"Discord: {err.status} {err.text}"
        return None

    async def publish_weekly(self, post: WeeklyPost) -> None:
        """The week's papers: a header message whose embeds are the most voted papers, with
        their buttons showing their votes (more messages only past Discord's limits)."""
        target = await self._messageable(post.channel)
        ups = {r.paper.id: r.up for r in post.ranked}
        messages = render_weekly(post, abstract_chars=self._abstract_chars, buttons=self._buttons)
        for n, message in enumerate(messages):
            view = None
            if message.numbers:
                counts = [ups[pid] for pid in message.paper_ids]
                view = paper_buttons(message.paper_ids, message.numbers, counts)
            await self._send(target, post.channel, message, post.key(n), view)

    async def _send(
        self,
        target: discord.PartialMessageable,
        channel: Channel,
        message: Outgoing,
        nonce: str,
        view: discord.ui.View | None,
    ) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await target.send(
                    content=message.content or None,
                    embeds=list(message.embeds),
                    allowed_mentions=NO_MENTIONS,
                    nonce=nonce,
                    view=view if view is not None else discord.utils.MISSING,
                )
        except discord.HTTPException as err:
            raise _delivery_error(channel, err) from err
        except TimeoutError:
            reason = f"Discord did not answer within {self._timeout:g}s"
            raise DeliveryError(channel, reason) from None

    async def _messageable(self, channel: Channel) -> discord.PartialMessageable:
        if not channel.id.isdecimal():
            raise DeliveryError(channel, f"{channel.id!r} is not a Discord channel id")
        if self._failure is None:
            try:
                await self.start()
            except discord.LoginFailure:
                self._failure = "Discord refused the bot token (401): set a valid [discord] token"
            except (discord.HTTPException, aiohttp.ClientError, OSError) as err:
                reason = f"cannot reach Discord: {err}"  # not remembered: next time, again
                raise DeliveryError(channel, reason, everywhere=True) from err
        if self._failure is not None:
            raise DeliveryError(channel, self._failure, everywhere=True)
        return self._client.get_partial_messageable(int(channel.id))


RATE_LIMITED = "We are being rate limited."
"""How discord.py's warnings about a 429 begin: its one sign of a 429 it waits out itself."""


def _rate_limit_seen(record: logging.LogRecord) -> bool:
    """Counts discord.py's 429s for `/metrics` and tells the run's progress display of the
    wait, from its warning ("… responded with 429. Retrying in 1.50 seconds.", the wait its
    last argument). Lets every record through."""
    if isinstance(record.msg, str) and record.msg.startswith(RATE_LIMITED):
        metrics.rate_limited(PLATFORM)
        wait = record.args[-1] if isinstance(record.args, tuple) and record.args else None
        if "Retrying in" in record.msg and isinstance(wait, int | float):
            metrics.retry_after_waited(PLATFORM, float(wait))
            reporting().waiting("Discord: HTTP 429 (retry_after)", float(wait))
    return True


logging.getLogger("discord.http").addFilter(_rate_limit_seen)


def _delivery_error(channel: Channel, err: discord.HTTPException) -> Exception:
    if isinstance(err, discord.Forbidden):
        return DeliveryError(channel, f"missing access or permissions (403): {err.text}")
    if isinstance(err, discord.NotFound):
        gone = err.code == UNKNOWN_CHANNEL
        return DeliveryError(channel, f"unknown channel (404): {err.text}", gone=gone)
    if err.status == 401:
        return DeliveryError(channel, "Discord refused the bot token (401)", everywhere=True)
    if err.status == 429:
        return DeliveryError(channel, "rate limited by Discord (429), retries exhausted")
    if err.status >= 500:
        return DeliveryError(channel, f"Discord server error ({err.status}), retries exhausted")
    return err


def publisher_from_settings(
    settings: Settings, *, client: discord.Client | None = None
) -> DiscordPublisher:
    return DiscordPublisher(
        settings.discord, token_of(settings), client=client, buttons=settings.signals.buttons
    )


@dataclass(frozen=True, slots=True)
class BotIdentity:
    name: str
    user_id: int
    application_id: int
    invite_url: str


async def identify(settings: Settings) -> BotIdentity:
    """Log in over REST to check the token; for `papers-bot check`."""
    token = token_of(settings)
    client = _rest_client(settings.discord)
    try:
        await client.login(token)
    except discord.LoginFailure:
        raise SettingsError("[discord] token was refused by Discord (401)") from None
    finally:
        await client.close()
    if client.user is None or client.application_id is None:
        raise RuntimeError("Discord answered the login without a user or an application")
    return BotIdentity(
        name=str(client.user),
        user_id=client.user.id,
        application_id=client.application_id,
        invite_url=invite_url(client.application_id),
    )


# -- /papers -----------------------------------------------------------------------------------


def channel_of(interaction: discord.Interaction) -> Channel | None:
    if interaction.channel_id is None or interaction.guild_id is None:
        return None
    return Channel(PLATFORM, str(interaction.channel_id))


NOT_HERE = "This bot serves only the servers listed in its settings. Ask whoever runs it."
IN_DMS = "Use /papers in a server channel."


def served_guilds(settings: DiscordSettings) -> frozenset[int] | None:
    """The servers the bot answers in: `allowed_guilds`, else `guild_ids`; None for any
    server (both empty and `any_guild` on)."""
    guilds = frozenset(settings.allowed_guilds or settings.guild_ids)
    return None if not guilds and settings.any_guild else guilds


def guild_refusal(settings: DiscordSettings, interaction: discord.Interaction) -> str | None:
    """Why the bot does not answer this interaction (a DM, another server), or None."""
    if interaction.guild_id is None:
        return IN_DMS
    served = served_guilds(settings)
    if served is not None and interaction.guild_id not in served:
        return NOT_HERE
    return None


def denial(settings: DiscordSettings, interaction: discord.Interaction) -> str | None:
    """Why this member may not add or remove keywords here, or None if they may."""
    if settings.allowed_users or settings.allowed_roles:
        roles = {role.id for role in getattr(interaction.user, "roles", [])}
        if interaction.user.id in settings.allowed_users or roles & set(settings.allowed_roles):
            return None
        return "only the members and roles listed in the bot's settings can"
    if interaction.permissions.manage_channels:
        return None
    return "you need the Manage Channels permission"


def posting_problem(interaction: discord.Interaction) -> str | None:
    """What keeps the bot from posting digests in this channel, from the permissions Discord
    sent with the interaction."""
    perms = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    needed = {
        "View Channel": perms.view_channel,
        "Send Messages": perms.send_messages_in_threads if in_thread else perms.send_messages,
        "Embed Links": perms.embed_links,
    }
    missing = [name for name, granted in needed.items() if not granted]
    if not missing:
        return None
    return (
        f"Note: I can't post here yet (missing {', '.join(missing)}), so digests will fail "
        "until someone with Manage Channels gives me that."
    )


async def send_reply(interaction: discord.Interaction, reply: Reply) -> None:
    """Answer with the reply's messages: the deferred response first, then follow-ups.
    `/papers saved` gets a Remove button per paper; a reply's file is attached to the first
    message (as code blocks when it is larger than the interaction allows)."""
    file = attachment_file(reply, interaction.filesize_limit)
    for n, message in enumerate(render_reply(reply, file_as_text=file is None)):
        view = remove_buttons(message.paper_ids, message.numbers) if reply.removable else None
        extra = {"file": file} if file is not None and n == 0 else {}
        await _send(interaction, message, ephemeral=reply.ephemeral, view=view, **extra)


def attachment_file(reply: Reply, limit: int) -> discord.File | None:
    """The reply's file, when it has one of at most `limit` bytes (the interaction's
    `attachment_size_limit`: 10 MiB in a server without boosts)."""
    if reply.attachment is None:
        return None
    data = reply.attachment.content.encode()
    if len(data) > limit:
        log.warning("discord_file_too_large bytes=%d limit=%d", len(data), limit)
        return None
    return discord.File(io.BytesIO(data), filename=reply.attachment.filename)


async def _send(
    interaction: discord.Interaction,
    message: Outgoing,
    *,
    ephemeral: bool,
    view: discord.ui.View | None = None,
    file: discord.File | None = None,
) -> None:
    extra: dict[str, Any] = {"view": view} if view is not None else {}
    if file is not None:
        extra["file"] = file
    if interaction.response.is_done():
        await interaction.followup.send(
            content=message.content,
            embeds=list(message.embeds),
            ephemeral=ephemeral,
            allowed_mentions=NO_MENTIONS,
            **extra,
        )
    else:
        await interaction.response.send_message(
            content=message.content,
            embeds=list(message.embeds),
            ephemeral=ephemeral,
            allowed_mentions=NO_MENTIONS,
            **extra,
        )


Call = Callable[[CommandContext], Awaitable[Reply]]


class _PapersGroup:
    """The callbacks of `/papers`, sharing the settings and the core commands."""

    def __init__(self, settings: Settings, commands: Commands) -> None:
        self.settings = settings.discord
        self.commands = commands

    async def run(self, interaction: discord.Interaction, call: Call, *, changes: bool) -> None:
        # The core may ask arXiv (seconds): take Discord's 3-second answer window now.
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await self.answer(interaction, call, changes=changes)
        await send_reply(interaction, reply)

    async def answer(self, interaction: discord.Interaction, call: Call, *, changes: bool) -> Reply:
        channel = channel_of(interaction)
        if channel is None:
            return Reply("Use /papers in a server channel.", ok=False)
        denied = denial(self.settings, interaction) if changes else None
        ctx = CommandContext(
            channel=channel,
            user=str(interaction.user.id),
            denied=denied,
            space=str(interaction.guild_id or ""),
        )
        return await self.commands.guarded(ctx, lambda: call(ctx))

    async def suggest(self, interaction: discord.Interaction, current: str) -> list[str]:
        channel = channel_of(interaction)
        if channel is None:
            return []
        try:
            keywords = await self.commands.keywords(channel)
        except Exception:
            log.exception("discord_autocomplete_failed channel=%s", channel)
            return []
        needle = " ".join(current.casefold().split())
        return [k for k in keywords if needle in k.casefold()][:MAX_CHOICES]


def papers_group(settings: Settings, commands: Commands) -> app_commands.Group:
    """`/papers add|remove|list|recent|help`. Hidden from members without Manage Channels
    unless `[discord] allowed_users`/`allowed_roles` name who may change keywords."""
    cfg = settings.discord
    restricted = bool(cfg.allowed_users or cfg.allowed_roles)
    group = app_commands.Group(
        name="papers",
        description="Daily new arXiv papers for keywords this channel follows",
        guild_only=True,
        default_permissions=None if restricted else discord.Permissions(manage_channels=True),
    )
    papers = _PapersGroup(settings, commands)
    recent_default, recent_max = settings.commands.recent_default, settings.commands.recent_max

    @group.command(name="add", description="Follow a keyword in this channel")
    @app_commands.describe(
        keyword="What to follow, for example: reward model (more in /papers help)"
    )
    async def add(
        interaction: discord.Interaction, keyword: app_commands.Range[str, 1, kw.MAX_LENGTH]
    ) -> None:
        async def call(ctx: CommandContext) -> Reply:
            reply = await commands.add(ctx, keyword)
            problem = posting_problem(interaction)
            if problem is None:
                return reply
            return replace(reply, text=f"{reply.text}\n{problem}")

        await papers.run(interaction, call, changes=True)

    @group.command(name="remove", description="Stop following a keyword in this channel")
    @app_commands.describe(keyword="One of the keywords this channel follows")
    async def remove(interaction: discord.Interaction, keyword: str) -> None:
        await papers.run(interaction, lambda ctx: commands.remove(ctx, keyword), changes=True)

    @remove.autocomplete("keyword")
    async def remove_choices(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        found = await papers.suggest(interaction, current)
        return [app_commands.Choice(name=k, value=k) for k in found]

    @group.command(name="list", description="The keywords this channel follows")
    async def list_(interaction: discord.Interaction) -> None:
        await papers.run(interaction, commands.list, changes=False)

    @group.command(name="recent", description="The latest papers, for one keyword or all")
    @app_commands.describe(
        keyword="A keyword (default: all of this channel's)",
        n=f"How many papers (default {recent_default}, at most {recent_max})",
    )
    async def recent(
        interaction: discord.Interaction,
        keyword: app_commands.Range[str, 1, kw.MAX_LENGTH] | None = None,
        n: app_commands.Range[int, 1, recent_max] | None = None,
    ) -> None:
        await papers.run(interaction, lambda ctx: commands.recent(ctx, keyword, n), changes=False)

    @group.command(name="set", description="Turn a channel option on or off")
    @app_commands.choices(option=[app_commands.Choice(name=n, value=n) for n in SET_NAMES])
    @app_commands.describe(
        option="revisions: new versions; quiet: say when nothing is new; weekly: the week's best; "
        "alerts: your saves",
        state="on or off",
    )
    async def set_(
        interaction: discord.Interaction,
        option: str,
        state: Literal["on", "off"],
    ) -> None:
        await papers.run(
            interaction,
            lambda ctx: commands.set_option(ctx, option, state == "on"),
            changes=option != "alerts",  # alerts are the user's own
        )

    @group.command(name="top", description="The papers this channel voted for most")
    @app_commands.describe(days="The period, in days (default 7)")
    async def top(
        interaction: discord.Interaction,
        days: app_commands.Range[int, 1, MAX_TOP_DAYS] | None = None,
    ) -> None:
        period = TOP_DAYS if days is None else days
        await papers.run(interaction, lambda ctx: commands.votes.top(ctx, period), changes=False)

    @group.command(name="saved", description="The papers you saved (only you see them)")
    @app_commands.describe(format="list (default), or bibtex: a .bib file for a reference manager")
    @app_commands.choices(format=[app_commands.Choice(name=f, value=f) for f in SAVED_FORMS])
    async def saved(interaction: discord.Interaction, format: str = "list") -> None:
        votes = commands.votes
        show = votes.saved_bibtex if format == "bibtex" else votes.saved
        await papers.run(interaction, show, changes=False)

    @group.command(name="unsave", description="Take a paper out of your saved papers")
    @app_commands.describe(paper="Its arXiv id, like 2504.12345")
    async def unsave(
        interaction: discord.Interaction, paper: app_commands.Range[str, 1, 40]
    ) -> None:
        await papers.run(interaction, lambda ctx: commands.votes.unsave(ctx, paper), changes=False)

    @group.command(name="help", description="What /papers can do")
    async def help_(interaction: discord.Interaction) -> None:
        await send_reply(interaction, commands.help())

    return group


def interaction_claims(store: Store, ttl: float = 900.0) -> Claim:
    """A `Claim` on interaction ids shared by every replica through the store: Discord sends
    every event to every gateway session, so replicas sharing a token must agree which one
    answers (an interaction's token lives 15 minutes)."""
    return StoreClaims(store, keys.DISCORD_INTERACTION, ttl)


class _PapersTree(app_commands.CommandTree[discord.Client]):
    def __init__(
        self, client: discord.Client, claim: Claim | None, settings: DiscordSettings
    ) -> None:
        super().__init__(client)
        self._claim = claim
        self._settings = settings

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return await admitted(interaction, self._claim, lambda i: guild_refusal(self._settings, i))


class PapersClient(discord.Client):
    """A gateway client that only answers `/papers`; it reads no messages."""

    def __init__(self, settings: Settings, commands: Commands, claim: Claim | None = None) -> None:
        super().__init__(intents=discord.Intents(guilds=True), allowed_mentions=NO_MENTIONS)
        cfg = settings.discord
        redirect(self, cfg)
        self.guild_ids = list(cfg.guild_ids)
        self.served = served_guilds(cfg)
        self.tree = _PapersTree(self, claim, cfg)
        self.tree.add_command(papers_group(settings, commands))
        self.tree.error(_on_command_error)
        self._buttons = button_class(commands, claim, lambda i: guild_refusal(cfg, i))

    async def setup_hook(self) -> None:
        self.add_dynamic_items(self._buttons)
        await sync_commands(self.tree, self.guild_ids)
        if self.served is not None and not self.served:
            log.warning(
                "discord_no_guilds: [discord] allowed_guilds and guild_ids are empty, so every "
                "server's /papers is refused; list the servers, or set any_guild = true"
            )

    async def on_ready(self) -> None:
        log.info("discord_ready user=%s guilds=%d", self.user, len(self.guilds))


async def _on_command_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    if isinstance(error, app_commands.CommandNotFound):
        # A command registered earlier that this version no longer has.
        log.warning("discord_unknown_command name=%r", error.name)
        text = STALE
    else:
        log.error("discord_command_failed command=%s", interaction.command, exc_info=error)
        text = FAILED
    with contextlib.suppress(discord.HTTPException):
        await _send(interaction, Outgoing(text), ephemeral=True)


async def sync_commands(tree: app_commands.CommandTree, guild_ids: list[int]) -> None:
    """Register `/papers` in `guild_ids` (instant) and nowhere else, or globally (Discord
    may take up to an hour to show changes)."""
    if not guild_ids:
        await tree.sync()
        log.info("discord_commands_synced scope=global")
        return
    for guild_id in guild_ids:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        try:
            await tree.sync(guild=guild)
        except discord.Forbidden:
            log.error(
                "discord_commands_refused guild=%d: invite the bot with the applications.commands "
                "scope (papers-bot check prints the URL)",
                guild_id,
            )
        else:
            log.info("discord_commands_synced scope=guild guild=%d", guild_id)
    # Left global, the same commands would show twice in those guilds.
    tree.clear_commands(guild=None)
    await tree.sync()


def create_client(
    settings: Settings, commands: Commands, *, claim: Claim | None = None
) -> PapersClient:
    """The service's client, connecting where `[discord] api_url` and `gateway_url` say."""
    return PapersClient(settings, commands, claim)


async def serve(settings: Settings, commands: Commands, *, claim: Claim | None = None) -> None:
    """Answer `/papers` until cancelled, then close the connection cleanly. With several
    replicas, pass `claim=interaction_claims(store)` so that each command is answered once."""
    token = token_of(settings)
    async with create_client(settings, commands, claim=claim) as client:
        try:
            await client.start(token)
        except discord.LoginFailure:
            raise SettingsError("[discord] token was refused by Discord (401)") from None
