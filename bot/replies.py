"""What a command is asked in (`CommandContext`) and answers (`Reply`), for every platform."""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import Channel, Paper


@dataclass(frozen=True, slots=True)
class CommandContext:
    channel: Channel
    user: str
    denied: str | None = None
    """Why this user may not add or remove keywords here; None when they may."""
    space: str = ""
    """The Slack workspace or Discord server the command comes from (channel budgets)."""
    unpostable: str | None = None
    """Why digests can't be posted here (a direct message), so `add` is refused; None."""

    @property
    def member(self) -> str:
        """`platform:user`: the user across the channels of one platform (their saved
        papers, alerts and budgets are theirs wherever they type)."""
        return f"{self.channel.platform}:{self.user}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that goes with a reply (`/papers saved bibtex`): sent as a file where the
    platform can, else as its text in code blocks."""

    filename: str
    content: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A platform-neutral answer. `text` is plain text: adapters escape it for their markup."""

    text: str
    papers: tuple[Paper, ...] = ()
    ephemeral: bool = True
    ok: bool = True
    labels: tuple[str, ...] = ()
    """A short note per paper, in order (`/papers top`: its votes)."""
    removable: bool = False
    """Each paper gets a Remove button (`/papers saved`)."""
    attachment: Attachment | None = None


class UserError(Exception):
    """Raised by the command methods with a message for the user; `handle` turns it into a
    Reply. Adapters calling `add`/`remove`/`list`/`recent` directly catch it the same way."""


def whole_number(text: str, high: int) -> int | None:
    """`text` as a number from 0 to `high`, else None. ASCII digits only, written without
    leading zeros ("07", "+7", "٧" and "7.0" are None: one spelling per number), and never
    longer than `high` written out, so `int()` only ever reads a few digits."""
    if not (0 < len(text) <= len(str(high)) and text.isascii() and text.isdigit()):
        return None
    if text[0] == "0" and len(text) > 1:
        return None
    value = int(text)
    return value if value <= high else None
