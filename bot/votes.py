"""The team's answers to posted papers, for every platform: 👍 votes, 👎 less like this,
🔖 saves, `/papers top` and `/papers saved`. Adapters turn a button press into `press` with
the button's action id and value (the version-less arXiv id)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import bibtex
from bot.arxiv_queue import Caller
from bot.arxiv_source import ArxivError, ArxivSource
from bot.command_budget import ArxivBudget
from bot.models import Paper, split_version
from bot.replies import Attachment, CommandContext, Reply, UserError
from bot.settings import Settings
from bot.state import Store, Tally, top
from bot.state.limits import MAX_SAVED

log = logging.getLogger(__name__)

VOTE = "papers_vote"
"""👍 Relevant: one vote per user per paper and channel; pressed again, taken back."""
LESS = "papers_less"
"""👎 Less like this: a vote against, which the channel's ranking learns from."""
SAVE = "papers_save"
"""🔖 Save: to the presser's own list (`/papers saved`); pressed again, taken back."""
UNSAVE = "papers_unsave"
"""Remove, in `/papers saved`."""
ACTIONS = (VOTE, LESS, SAVE, UNSAVE)

TOP_DAYS = 7
MAX_TOP_DAYS = 365
TOP_USAGE = f"Use: top [days], with days between 1 and {MAX_TOP_DAYS}."
TOP_PAPERS = 10

_PAPER_ID = re.compile(r"^(\d{4}\.\d{4,5}|[a-z][a-z-]*(\.[A-Z]{2})?/\d{7})(v\d+)?$")


@dataclass(frozen=True, slots=True)
class Pressed:
    """What a button press did: a private answer for the presser (None when the updated
    message says it all), and the paper's votes after a vote."""

    paper_id: str
    reply: Reply | None = None
    tally: Tally | None = None
    replacement: Reply | None = None
    """What takes the place of the message the button was on (the saved list again, after
    a Remove), shown instead of `reply`."""


def paper_id(raw: str) -> str:
    """The version-less arXiv id in a button's value or a command; UserError otherwise."""
    value = raw.strip()
    if not _PAPER_ID.match(value):
        raise UserError("That is not an arXiv id (like 2504.12345).")
    return split_version(value)[0]


def vote_label(count: int) -> str:
    return f"👍 Relevant · {count}" if count else "👍 Relevant"


class Votes:
    def __init__(
        self, settings: Settings, store: Store, source: ArxivSource, clock: Callable[[], datetime]
    ) -> None:
        self._settings = settings
        self._store = store
        self._source = source
        self._clock = clock
        self._budget = ArxivBudget(settings, store, clock)

    async def press(self, ctx: CommandContext, action: str, value: str) -> Pressed:
        if action not in ACTIONS:
            raise UserError("That button is not one of papers-bot's.")
        pid = paper_id(value)
        who = ctx.member
        if action == UNSAVE:
            return Pressed(pid, await self.unsave(ctx, pid))
        paper = await self._paper(pid, self._budget.caller(ctx))
        if action == SAVE:
            saved = await self._store.signals.toggle_saved(who, paper)
            if saved:
                await self._store.alerts.follow(who, paper)
            else:
                await self._store.alerts.unfollow(who, pid)
            # Counted in the channel's weekly post (a paper of its week only).
            await self._store.signals.note_saver(ctx.channel, pid, ctx.user, saved)
            log.info("paper_saved channel=%s user=%s saved=%s", ctx.channel, ctx.user, saved)
            if saved:
                text = f"Saved “{paper.title}”. /papers saved lists your saved papers."
            else:
                text = f"Removed “{paper.title}” from your saved papers."
            return Pressed(pid, Reply(text))
        tally = await self._store.signals.vote(ctx.channel, paper, ctx.user, up=action == VOTE)
        log.info("paper_voted channel=%s user=%s vote=%d", ctx.channel, ctx.user, tally.mine)
        return Pressed(pid, None, tally)

    async def _paper(self, pid: str, caller: Caller) -> Paper:
        """A posted paper from the store; arXiv is asked only for one the store has
        forgotten (a button on a message older than `PAPER_KEPT`)."""
        paper = await self._store.signals.paper(pid)
        if paper is not None:
            return paper
        try:
            found = (await self._source.details([pid], caller=caller)).get(pid)
        except ArxivError as err:
            log.warning("paper_lookup_failed id=%s error=%r", pid, str(err))
            raise UserError("arXiv didn't answer. Please press again in a few minutes.") from None
        if found is None:
            raise UserError(f"arXiv doesn't know the paper {pid}.")
        await self._store.signals.remember([found])
        return found

    async def top(self, ctx: CommandContext, days: int = TOP_DAYS) -> Reply:
        """The channel's most voted papers of the last `days` (1 to `MAX_TOP_DAYS`)."""
        if not 1 <= days <= MAX_TOP_DAYS:
            raise UserError(TOP_USAGE)
        period = "day" if days == 1 else f"{days} days"
        since = self._clock() - timedelta(days=days)
        best = top(await self._store.signals.voted(ctx.channel, since), TOP_PAPERS)
        if not best:
            return Reply(
                f"No votes in this channel in the last {period}. "
                "Press 👍 Relevant under a paper to vote for it."
            )
        return Reply(
            f"Most voted in this channel, the last {period}:",
            papers=tuple(v.paper for v in best),
            labels=tuple(f"👍 {v.up}" for v in best),
        )

    async def saved(self, ctx: CommandContext) -> Reply:
        """The user's latest saved papers, each with a Remove button."""
        n = self._settings.commands.recent_max
        papers = await self._store.signals.saved(ctx.member, n)
        if not papers:
            return Reply("You have no saved papers. Press 🔖 Save under a paper to keep it.")
        return Reply(
            f"Your saved papers, newest first (the latest {n} at most):",
            papers=tuple(papers),
            removable=True,
        )

    async def saved_bibtex(self, ctx: CommandContext) -> Reply:
        """All the user's saved papers (up to `MAX_SAVED`) as a BibTeX file."""
        papers = await self._store.signals.saved(ctx.member, MAX_SAVED)
        if not papers:
            return Reply("You have no saved papers. Press 🔖 Save under a paper to keep it.")
        log.info("saved_bibtex channel=%s user=%s papers=%d", ctx.channel, ctx.user, len(papers))
        count = "1 saved paper" if len(papers) == 1 else f"{len(papers)} saved papers"
        return Reply(
            f"Your {count} as BibTeX ({bibtex.FILENAME}), newest first.",
            attachment=Attachment(bibtex.FILENAME, bibtex.document(papers)),
        )

    async def unsave(self, ctx: CommandContext, raw: str) -> Reply:
        pid = paper_id(raw) if raw.strip() else ""
        if not pid:
            raise UserError("Give the id of the paper to remove, like: unsave 2504.12345")
        if not await self._store.signals.unsave(ctx.member, pid):
            raise UserError(f"{pid} is not among your saved papers.")
        await self._store.alerts.unfollow(ctx.member, pid)
        log.info("paper_unsaved channel=%s user=%s", ctx.channel, ctx.user)
        return Reply(f"Removed {pid} from your saved papers.")
