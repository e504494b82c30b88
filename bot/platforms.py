"""Platforms are plugins: what one gives the bot, and how the bot finds them by name.

A platform (Slack, Discord, Markdown, a webhook, or one a third-party package adds) is a
`Platform` registered under the entry-point group `papers_bot.platforms`, named as the
settings file's subscriptions name it::

    [project.entry-points."papers_bot.platforms"]
    mattermost = "my_package.plugin:PLATFORM"

The core never imports an adapter: `papers-bot` looks platforms up here by name, and
loading one imports only the module its entry point names (keep that module light and
import the chat library inside the factories, as `adapters/platforms.py` does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from bot.publishing import Publisher
from bot.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.commands import Commands
    from bot.service import Server
    from bot.state import Store

GROUP = "papers_bot.platforms"


def _always(settings: Settings) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Platform:
    """What a platform gives the bot. Only `publisher` is required."""

    publisher: Callable[[Settings], Publisher]
    """The digest's output for this platform's channels."""
    configured: Callable[[Settings], bool] = _always
    """Whether the settings enable it (a chat platform without a token is not)."""
    keeps_state: bool = True
    """Its channels need a store that outlives the process: with `memory://` every run
    would post the same papers again. False for outputs that show a full list each time."""
    shows_everything: bool = False
    """Its output shows everything new at once (as its publisher's `shows_everything`
    says): what `--dry-run`'s console stands in for it with."""
    serve: Callable[[Settings, Store, Commands], Server] | None = None
    """Answers `/papers` until cancelled (chat platforms); raises SettingsError when the
    settings are half there."""
    check: Callable[[Settings], Awaitable[list[str]]] | None = None
    """Lines for `papers-bot check` (reaching the platform with its settings); raises
    with the reason when it can't."""


@dataclass(frozen=True, slots=True)
class Installed:
    name: str
    source: str
    """The distribution that registered it (`papers-bot`, or a plugin's package)."""
    entry_point: EntryPoint

    def load(self) -> Platform:
        loaded = self.entry_point.load()
        if not isinstance(loaded, Platform):
            raise SettingsError(
                f"platform {self.name!r} from {self.source} is not a bot.platforms.Platform"
            )
        return loaded


def installed() -> dict[str, Installed]:
    """Every registered platform by name (nothing imported yet); the first wins a name."""
    found: dict[str, Installed] = {}
    for ep in entry_points(group=GROUP):
        source = ep.dist.name if ep.dist is not None else "unknown"
        found.setdefault(ep.name, Installed(ep.name, source, ep))
    return dict(sorted(found.items()))


def load(names: Iterable[str]) -> dict[str, Platform]:
    """The named platforms, loaded; SettingsError naming what is installed otherwise."""
    available = installed()
    wanted = sorted(set(names))
    missing = [n for n in wanted if n not in available]
    if missing:
        raise SettingsError(
            f"no platform named {', '.join(repr(n) for n in missing)} is installed "
            f"(installed: {', '.join(available) or 'none'})"
        )
    return {name: available[name].load() for name in wanted}
