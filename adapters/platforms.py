"""The platforms papers-bot ships, as registered in pyproject.toml under the entry-point
group `papers_bot.platforms`. Light on purpose: each factory imports its adapter (and its
chat library) only when called, so finding the platforms imports neither slack-bolt nor
discord.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.platforms import Platform
from bot.publishing import Publisher
from bot.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.commands import Commands
    from bot.service import Server
    from bot.state import Store


def _console(settings: Settings) -> Publisher:
    from adapters.console import ConsolePublisher

    return ConsolePublisher()


def _markdown(settings: Settings) -> Publisher:
    from adapters.markdown import MarkdownPublisher

    return MarkdownPublisher(kept=settings.arxiv.max_results)


def _webhook(settings: Settings) -> Publisher:
    from adapters.webhook import WebhookPublisher

    return WebhookPublisher(settings.webhook)


def _slack(settings: Settings) -> Publisher:
    if settings.slack.bot_token is None:
        raise SettingsError("slack.bot_token is missing (the other Slack settings are set)")
    from adapters.slack.app import publisher_from_settings

    return publisher_from_settings(settings)


def _slack_configured(settings: Settings) -> bool:
    slack = settings.slack
    return any(v is not None for v in (slack.bot_token, slack.app_token, slack.signing_secret))


def _serve_slack(settings: Settings, store: Store, commands: Commands) -> Server:
    slack = settings.slack
    if slack.bot_token is None:
        raise SettingsError("slack.bot_token is missing (the other Slack settings are set)")
    needed = "app_token" if slack.mode == "socket" else "signing_secret"
    if getattr(slack, needed) is None:
        raise SettingsError(
            f"slack.bot_token is set but slack.{needed} is missing (needed in {slack.mode} mode)"
        )
    from adapters.slack.app import serve, signature_claims

    first_use = signature_claims(store)
    return lambda: serve(settings, commands, first_use=first_use)


async def _check_slack(settings: Settings) -> list[str]:
    if settings.slack.bot_token is None:
        if settings.slack.app_token is not None or settings.slack.signing_secret is not None:
            raise SettingsError("slack.bot_token is missing (the other Slack settings are set)")
        return ["not configured"]
    from adapters.slack.app import verify

    return [f"ok ({settings.slack.mode} mode, {await verify(settings)})"]


def _discord(settings: Settings) -> Publisher:
    from adapters.discord.app import publisher_from_settings

    return publisher_from_settings(settings)


def _discord_configured(settings: Settings) -> bool:
    return settings.discord.token is not None


def _serve_discord(settings: Settings, store: Store, commands: Commands) -> Server:
    from adapters.discord.app import interaction_claims, serve

    claim = interaction_claims(store)
    return lambda: serve(settings, commands, claim=claim)


async def _check_discord(settings: Settings) -> list[str]:
    if settings.discord.token is None:
        lines = ["not configured"]
        if settings.discord.application_id is not None:
            from adapters.discord.app import invite_url

            lines.insert(0, f"invite {invite_url(settings.discord.application_id)}")
        return lines
    from adapters.discord.app import identify

    bot = await identify(settings)
    return [f"ok (logged in as {bot.name})", f"invite {bot.invite_url}"]


CONSOLE = Platform(publisher=_console, keeps_state=False, shows_everything=True)
MARKDOWN = Platform(publisher=_markdown, keeps_state=False, shows_everything=True)
WEBHOOK = Platform(publisher=_webhook)
SLACK = Platform(
    publisher=_slack, configured=_slack_configured, serve=_serve_slack, check=_check_slack
)
DISCORD = Platform(
    publisher=_discord,
    configured=_discord_configured,
    serve=_serve_discord,
    check=_check_discord,
)
