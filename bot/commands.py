"""`/papers` for every platform: adapters turn a native command into these calls and
render the `Reply` natively."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from bot import keywords as kw
from bot import metrics
from bot.alerts import ALERTS_USAGE, set_alerts
from bot.arxiv_queue import Caller
from bot.arxiv_source import ArxivError, ArxivSource
from bot.command_budget import ArxivBudget
from bot.matching import batches, distinct
from bot.models import Channel, Paper, newest_first, seen_keys, utcnow
from bot.options import OPTION_NAMES, channel_options
from bot.replies import CommandContext as CommandContext
from bot.replies import Reply as Reply
from bot.replies import UserError as UserError
from bot.replies import whole_number
from bot.settings import Settings
from bot.state import AddResult, PreviewHold, Store, write_cache
from bot.votes import MAX_TOP_DAYS, TOP_DAYS, TOP_USAGE, UNSAVE, Pressed, Votes

log = logging.getLogger(__name__)

MAX_RECENT_ASKED = 9999
"""The largest count `parse_recent` reads; `recent` then holds it to `recent_max`."""

SET_USAGE = "Use: set revisions|quiet|weekly on|off, or set alerts on|off"
SET_NAMES = ("revisions", "quiet", "weekly", "alerts")
"""What `set` turns on or off, as platforms offer it (`quiet_days` is read too)."""
SAVED_FORMS = ("list", "bibtex")
"""How `saved` shows the papers: a list, or a BibTeX file."""

USAGE = (
    "/papers add <keyword>: follow a keyword in this channel (searched in titles and abstracts)\n"
    "/papers remove <keyword>: stop following it\n"
    "/papers list: the keywords this channel follows\n"
    "/papers recent [keyword] [n]: the latest papers, for one keyword or all of this channel's\n"
    "/papers set revisions on|off: also post new versions of papers already posted\n"
    "/papers set quiet on|off: say so when a digest finds nothing\n"
    "/papers set weekly on|off: post the week's most voted papers here once a week\n"
    "/papers top [days]: the papers this channel voted for most (7 days unless told)\n"
    "/papers saved: the papers you saved (🔖), only for you\n"
    "/papers saved bibtex: the same as a BibTeX file, for a reference manager\n"
    "/papers set alerts on|off: a private message when a paper you saved gets a new version,"
    " a journal reference or a DOI (on unless you turn it off)\n"
    "/papers unsave <arXiv id>: take a paper out of your saved ones\n"
    "/papers help: this text\n"
    "Keywords: RLHF | reward model (either), diffusion -medical (exclude), "
    'cat:cs.CL (category), au:"Yoshua Bengio" (author)'
)


def quoted(keyword: str) -> str:
    return f"“{keyword}”"


class Commands:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        source: ArxivSource,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._source = source
        self._clock = clock
        self.budget = ArxivBudget(settings, store, clock)
        self.votes = Votes(settings, store, source, clock)

    async def handle(self, ctx: CommandContext, text: str) -> Reply:
        """Answer the text after `/papers`. Never raises: every failure is a Reply."""
        return await self.guarded(ctx, lambda: self._dispatch(ctx, text))

    async def guarded(
        self, ctx: CommandContext, call: Callable[[], Awaitable[Reply]], kind: str = "command"
    ) -> Reply:
        """Run one command method (`kind`: `command`, or `button` for a press); user errors
        and crashes both become a Reply."""
        started = time.monotonic()
        try:
            return await self._guarded(ctx, call)
        finally:
            metrics.command_answered(ctx.channel.platform, kind, time.monotonic() - started)

    async def _guarded(self, ctx: CommandContext, call: Callable[[], Awaitable[Reply]]) -> Reply:
        try:
            limit = self._settings.commands.per_user_per_minute
            if await self._store.hit(ctx.member, 60) > limit:
                return Reply(f"Slow down: at most {limit} commands a minute.", ok=False)
            return await call()
        except UserError as err:
            return Reply(str(err), ok=False)
        except Exception:
            log.exception("command_failed channel=%s", ctx.channel)
            return Reply("Something went wrong on our side. Please try again later.", ok=False)

    async def _dispatch(self, ctx: CommandContext, text: str) -> Reply:
        verb, _, rest = text.strip().partition(" ")
        answer = VERBS.get(verb.lower() or "help")
        if answer is None:
            return Reply(f"Unknown command.\n{USAGE}", ok=False)
        return await answer(self, ctx, rest)

    async def press(self, ctx: CommandContext, action: str, value: str) -> Pressed:
        """A button under a paper (`bot.votes.ACTIONS`); never raises, like `handle`. After
        a Remove, the saved list again, in place of the one whose button was pressed."""
        pressed: Pressed | None = None

        async def call() -> Reply:
            nonlocal pressed
            pressed = await self.votes.press(ctx, action, value)
            return pressed.reply or Reply("")

        reply = await self.guarded(ctx, call, "button")
        if pressed is None:
            return Pressed("", reply)
        if action == UNSAVE and reply.ok:
            return replace(pressed, replacement=await self.handle(ctx, "saved"))
        return pressed

    def help(self) -> Reply:
        return Reply(USAGE)

    async def _file_keywords(self, channel: Channel) -> list[str]:
        found: list[str] = []
        for sub in self._settings.subscriptions:
            if Channel(sub.platform, sub.channel) == channel:
                found.extend(sub.keywords)
        return distinct(found)

    async def keywords(self, channel: Channel) -> list[str]:
        chat = [s.keyword for s in await self._store.subscriptions(channel)]
        return distinct([*await self._file_keywords(channel), *chat])

    def _check_allowed(self, ctx: CommandContext) -> None:
        if ctx.denied is not None:
            raise UserError(f"You can't change this channel's keywords: {ctx.denied}")

    @staticmethod
    def _clean(raw: str) -> str:
        try:
            return kw.clean(raw)
        except kw.KeywordError as err:
            raise UserError(str(err)) from None

    async def add(self, ctx: CommandContext, raw: str) -> Reply:
        self._check_allowed(ctx)
        keyword = self._clean(raw)
        current = await self.keywords(ctx.channel)
        if kw.normalize(keyword) in {kw.normalize(k) for k in current}:
            raise UserError(f"This channel already follows {quoted(keyword)}.")
        cap = self._settings.commands.max_keywords_per_channel
        if len(current) >= cap:
            raise UserError(
                f"This channel follows {cap} keywords, the most allowed. Remove one first."
            )
        await self._check_channel_room(ctx)
        try:  # one search: its latest papers, for the preview and to hold back
            papers = await self._source.latest(
                keyword, self._settings.arxiv.max_results, caller=self.budget.caller(ctx)
            )
        except ArxivError as err:
            log.warning("add_failed channel=%s error=%r", ctx.channel, str(err))
            raise UserError(
                "arXiv didn't answer, so nothing was added. Please try again in a few minutes."
            ) from None
        # What is visible now is held back for this keyword alone, in the same script that
        # adds it: a digest running meanwhile cannot post the backlog, and still posts
        # these papers for the channel's other keywords.
        hold = PreviewHold(seen_keys(papers), timedelta(days=self._settings.arxiv.window_days + 1))
        file_count = len(await self._file_keywords(ctx.channel))
        result = await self._store.add_subscription(
            ctx.channel, keyword, added_by=ctx.user, cap=max(0, cap - file_count), hold=hold
        )
        if result is AddResult.EXISTS:
            raise UserError(f"This channel already follows {quoted(keyword)}.")
        if result is AddResult.FULL:
            raise UserError(
                f"This channel follows {cap} keywords, the most allowed. Remove one first."
            )
        await self._cache_latest(keyword, papers)
        log.info("keyword_added channel=%s user=%s", ctx.channel, ctx.user)
        await self._note_opener(ctx)
        preview = tuple(newest_first(papers)[: self._settings.commands.preview_papers])
        if preview:
            text = (
                f"Added {quoted(keyword)}. New papers will appear in the next digest; "
                f"the latest {len(preview)} so far:"
            )
        else:
            text = f"Added {quoted(keyword)}. No papers match it yet; new ones will appear here."
        return Reply(text, papers=preview)

    async def _check_channel_room(self, ctx: CommandContext) -> None:
        """Refuses an `add` that would bring the bot to a channel beyond a budget: all
        channels of the platform, those one member opened, those of one workspace or server;
        or to a place it can't post in."""
        if ctx.unpostable is not None:
            raise UserError(ctx.unpostable)
        if await self._store.subscriptions(ctx.channel):
            return  # the bot serves this channel already
        await self._check_channel_cap(ctx.channel)
        cfg = self._settings.commands
        openers = (await self._store.openers(ctx.channel.platform)).values()
        mine = sum(o.member == ctx.user for o in openers)
        if mine >= cfg.max_channels_per_member:
            raise UserError(
                f"You have brought the bot to {mine} channels, the most one member may. "
                "Remove the keywords of one of them first, or ask whoever runs the bot to "
                "raise [commands] max_channels_per_member."
            )
        here = sum(o.space == ctx.space for o in openers) if ctx.space else 0
        if here >= cfg.max_channels_per_space:
            raise UserError(
                f"The bot already serves {here} channels in this workspace or server, the most "
                "allowed. Ask whoever runs it to raise [commands] max_channels_per_space."
            )

    async def _note_opener(self, ctx: CommandContext) -> None:
        """The channel's first chat keyword: its member and space count it in their budgets."""
        if len(await self._store.subscriptions(ctx.channel)) == 1:
            await self._store.set_opener(ctx.channel, ctx.user, ctx.space)

    async def _cache_latest(self, keyword: str, papers: Sequence[Paper]) -> None:
        """The search's answer becomes the keyword's recent list: best effort, as the
        keyword is added already (`recent` asks arXiv when it is missing)."""

        async def write() -> None:
            await self._store.save_recent({keyword: papers}, self._settings.arxiv.max_results)
            await self._store.set_fetched([keyword], self._clock())

        await write_cache(self._store, "recent", write)

    async def _check_channel_cap(self, channel: Channel) -> None:
        cap = self._settings.commands.max_channels
        same_platform = [
            c for c in await self._store.subscribed_channels() if c.platform == channel.platform
        ]
        if len(same_platform) >= cap:
            raise UserError(
                f"The bot already serves {cap} channels here, the most allowed. "
                "Ask whoever runs it to raise [commands] max_channels."
            )

    async def _set_text(self, ctx: CommandContext, rest: str) -> Reply:
        """`set <name> on|off`, read; a member who may not change the channel is told so
        before being told how to write it."""
        name, _, value = rest.strip().partition(" ")
        on = {"on": True, "off": False}.get(value.strip().lower())
        if on is not None:
            return await self.set_option(ctx, name, on)
        if name.strip().lower() == "alerts":
            raise UserError(ALERTS_USAGE)
        self._check_allowed(ctx)
        raise UserError(SET_USAGE)

    async def set_option(self, ctx: CommandContext, name: str, on: bool) -> Reply:
        """Turns a channel option (`SET_NAMES`, `quiet_days` too) or the user's alerts on
        or off."""
        if name.strip().lower() == "alerts":  # the user's own, not the channel's
            return await set_alerts(self._store, ctx, on)
        self._check_allowed(ctx)
        option = _OPTIONS.get(name.strip().lower())
        if option is None:
            raise UserError(SET_USAGE)
        state = "on" if on else "off"
        await self._store.set_channel_option(ctx.channel, option, on)
        log.info("option_set channel=%s user=%s %s=%s", ctx.channel, ctx.user, option, state)
        when = f" ({self._weekly_when()})" if option == "weekly" and on else ""
        return Reply(f"{_OPTION_TEXT[option]} is now {state} for this channel{when}.")

    def _weekly_when(self) -> str:
        """`fri at 16:00 UTC`: when the week's papers are posted."""
        cfg = self._settings.schedule
        return f"{_DAY_NAMES[cfg.weekly_day]} at {cfg.weekly_time} {cfg.timezone}"

    async def remove(self, ctx: CommandContext, raw: str) -> Reply:
        self._check_allowed(ctx)
        if not raw.strip():
            raise UserError("Give the keyword to remove, for example: remove reward model")
        keyword = " ".join(raw.split())
        wanted = kw.normalize(keyword)
        if wanted in {kw.normalize(k) for k in await self._file_keywords(ctx.channel)}:
            raise UserError(
                f"{quoted(keyword)} comes from the bot's settings file and can't be removed "
                "from chat. Ask whoever runs the bot."
            )
        if not wanted or not await self._store.remove_subscription(ctx.channel, keyword):
            current = await self.keywords(ctx.channel)
            listing = ", ".join(quoted(k) for k in current) or "none"
            raise UserError(
                f"This channel doesn't follow {quoted(keyword)}. It follows: {listing}."
            )
        log.info("keyword_removed channel=%s user=%s", ctx.channel, ctx.user)
        await self._forget_if_unfollowed(keyword)
        return Reply(f"Removed {quoted(keyword)}.")

    async def _forget_if_unfollowed(self, keyword: str) -> None:
        """A keyword no channel follows any more leaves no cache behind (recent list, last
        fetch): what an add/remove pair leaves in Redis is bounded and goes away."""
        name = kw.normalize(keyword)
        in_file = any(
            name == kw.normalize(k) for s in self._settings.subscriptions for k in s.keywords
        )
        if not in_file and not await self._store.followed(keyword):
            await self._store.forget_keyword(keyword)

    async def list(self, ctx: CommandContext) -> Reply:
        from_file = await self._file_keywords(ctx.channel)
        chat = await self._store.subscriptions(ctx.channel)
        file_norm = {kw.normalize(k) for k in from_file}
        lines = [f"• {k} (settings file)" for k in from_file]
        lines += [f"• {s.keyword}" for s in chat if kw.normalize(s.keyword) not in file_norm]
        if not lines:
            return Reply("This channel follows no keywords yet. Try: /papers add reward model")
        options = await channel_options(self._settings, self._store, ctx.channel)
        states = ", ".join(
            f"{_OPTION_TEXT[name].lower()} {'on' if getattr(options, name) else 'off'}"
            for name in OPTION_NAMES
        )
        return Reply("This channel follows:\n" + "\n".join(lines) + f"\nOptions: {states}")

    async def recent(self, ctx: CommandContext, raw: str | None, n: int | None) -> Reply:
        cfg = self._settings.commands
        count = cfg.recent_default if n is None else n
        if not 1 <= count <= cfg.recent_max:
            raise UserError(f"Ask for between 1 and {cfg.recent_max} papers.")
        if raw is None or not raw.strip():
            keywords = await self.keywords(ctx.channel)
            if not keywords:
                raise UserError(
                    "This channel follows no keywords yet. Try: /papers recent reward model"
                )
        else:
            keywords = [self._clean(raw)]
        found: dict[str, Paper] = {}
        fetched = await self._store.last_fetched(keywords)
        since = self._clock() - timedelta(days=self._settings.arxiv.window_days)
        missing: list[str] = []
        for keyword in keywords:
            # A stored list is whole once a search of the keyword's own filled it (the daily
            # listings add to it); empty after a recent search, arXiv has none either.
            when = fetched[keyword]
            stored = await self._store.recent(keyword, count) if when else []
            if when is None or (not stored and when < since):
                missing.append(keyword)
            for paper in stored:
                found.setdefault(paper.id, paper)
        for paper in await self._latest(missing, count, self.budget.caller(ctx)):
            found.setdefault(paper.id, paper)
        papers = tuple(newest_first(list(found.values()))[:count])
        label = ", ".join(quoted(k) for k in keywords)
        if not papers:
            return Reply(f"No papers found for {label}.")
        return Reply(f"Latest papers for {label}:", papers=papers)

    async def _latest(self, keywords: Sequence[str], n: int, caller: Caller) -> Sequence[Paper]:
        """The n latest papers answering any of `keywords`, one arXiv query per batch: a
        channel's keywords that the store doesn't hold yet cost one request, not one each."""
        found: dict[str, Paper] = {}
        try:
            for batch in batches(keywords, self._settings.arxiv.batch_size):
                found.update((p.id, p) for p in await self._answer(batch, n, caller))
        except ArxivError as err:
            log.warning("recent_failed keywords=%d error=%r", len(keywords), str(err))
            raise UserError("arXiv didn't answer. Please try again in a few minutes.") from None
        return newest_first([*found.values()])

    async def _answer(self, batch: Sequence[str], n: int, caller: Caller) -> Sequence[Paper]:
        """arXiv's latest papers for a batch of keywords the digest doesn't keep, kept
        `cache_minutes` (the `recent_max` latest, so any count is answered): asking again
        meanwhile, in any replica, costs no request."""
        keep = self._settings.commands.cache_minutes * 60
        if keep <= 0:
            return await self._source.latest_any(batch, n, caller=caller)
        kept = await self._store.answer(batch)
        if kept is not None:
            return kept[:n]
        papers = await self._source.latest_any(
            batch, self._settings.commands.recent_max, caller=caller
        )

        async def write() -> None:
            await self._store.keep_answer(batch, papers, keep)

        await write_cache(self._store, "answer", write)
        return papers[:n]


_OPTIONS = {
    "revisions": "revisions",
    "quiet": "quiet_days",
    "quiet_days": "quiet_days",
    "weekly": "weekly",
}
_OPTION_TEXT = {
    "revisions": "Posting new versions",
    "quiet_days": "Saying when nothing is new",
    "weekly": "Posting the week's papers",
}
_DAY_NAMES = {
    "mon": "Mondays",
    "tue": "Tuesdays",
    "wed": "Wednesdays",
    "thu": "Thursdays",
    "fri": "Fridays",
    "sat": "Saturdays",
    "sun": "Sundays",
}


def parse_recent(rest: str) -> tuple[str | None, int | None]:
    """`reward model 5` -> ("reward model", 5); `7` -> (None, 7); `` -> (None, None)."""
    words = rest.split()
    n: int | None = None
    if words and words[-1].isascii() and words[-1].isdecimal():  # meant as a count
        n = whole_number(words.pop(), MAX_RECENT_ASKED)
        if n is None:
            raise UserError("Ask for between 1 and a few dozen papers.")
    return (" ".join(words) or None), n


def parse_days(rest: str) -> int:
    """`top`'s period: `30` -> 30, `` -> `TOP_DAYS`; up to `MAX_TOP_DAYS`."""
    text = rest.strip()
    if not text:
        return TOP_DAYS
    days = whole_number(text, MAX_TOP_DAYS)
    if not days:
        raise UserError(TOP_USAGE)
    return days


async def _saved(commands: Commands, ctx: CommandContext, rest: str) -> Reply:
    form = rest.strip().lower() or "list"
    if form not in SAVED_FORMS:
        raise UserError("Use: saved, or saved bibtex")
    bibtex = form == "bibtex"
    return await (commands.votes.saved_bibtex(ctx) if bibtex else commands.votes.saved(ctx))


async def _help(commands: Commands, ctx: CommandContext, rest: str) -> Reply:
    return commands.help()


async def _recent(commands: Commands, ctx: CommandContext, rest: str) -> Reply:
    return await commands.recent(ctx, *parse_recent(rest))


Answer = Callable[[Commands, CommandContext, str], Awaitable[Reply]]
"""A verb's text (what follows it) read into a call of the typed command method."""

VERBS: Mapping[str, Answer] = {
    "add": lambda c, ctx, rest: c.add(ctx, rest),
    "remove": lambda c, ctx, rest: c.remove(ctx, rest),
    "list": lambda c, ctx, rest: c.list(ctx),
    "recent": _recent,
    "set": lambda c, ctx, rest: c._set_text(ctx, rest),
    "top": lambda c, ctx, rest: c.votes.top(ctx, parse_days(rest)),
    "saved": _saved,
    "unsave": lambda c, ctx, rest: c.votes.unsave(ctx, rest),
    "help": _help,
}
"""Every verb of `/papers`, the one place commands are read from text."""
SLOW_VERBS = frozenset({"add", "recent"})
"""Verbs that may ask arXiv (seconds): where a platform can, it says so at once."""


def verb_of(text: str) -> str:
    """The verb of a command's text for logs and acks: `help` for none, `other` for an
    unknown one."""
    words = text.split(maxsplit=1)
    verb = words[0].lower() if words else "help"
    return verb if verb in VERBS else "other"
