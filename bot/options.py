"""A channel's options: the flags of its settings-file subscriptions, overridden by what
chat set (`/papers set`), as the digest, the weekly post and the commands read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.models import Channel
from bot.settings import Settings
from bot.state import Store


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    revisions: bool = False
    """Announce a new version of a paper the channel already received."""
    quiet_days: bool = False
    """Post a one-line "no new papers" when a run finds nothing."""
    weekly: bool = False
    """Post the week's most voted papers once a week (bot/weekly.py)."""


OPTION_NAMES = ("revisions", "quiet_days", "weekly")


async def channel_options(settings: Settings, store: Store, channel: Channel) -> ChannelOptions:
    """The settings file's flags for the channel, overridden by what chat set."""
    return merged_options(settings, channel, await store.channel_options(channel))


def merged_options(
    settings: Settings, channel: Channel, chosen: Mapping[str, bool]
) -> ChannelOptions:
    merged = dict.fromkeys(OPTION_NAMES, False)
    for sub in settings.subscriptions:
        if Channel(sub.platform, sub.channel) == channel:
            merged["revisions"] |= sub.revisions
            merged["quiet_days"] |= sub.quiet_days
            merged["weekly"] |= sub.weekly
    merged.update({k: v for k, v in chosen.items() if k in OPTION_NAMES})
    return ChannelOptions(**merged)
