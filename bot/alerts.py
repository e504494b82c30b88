"""Saved papers followed: when the day's listing (or a catch-up) carries a new version of a
paper someone saved, or its journal reference or DOI appears, the saver is told once,
privately, with what changed. `/papers set alerts off` stops it for one user.

What each saver knows of a paper (`bot.state.Known`) is kept by `Store.alerts` (the twins in
`bot.state.redis_signals` and `bot.state.memory`; keys `savers` and `alerts_off` in
`bot.state.keys`): written by 🔖 Save, taken back by Remove or `/papers unsave`. A run reads
one such key per listed paper, whatever the users.

An alert is claimed by replacing what its saver knew with what the listing says, in one
script that checks the old value first: another replica, or a run again, finds the value
changed and sends nothing. A send that fails for a reason that may pass (the platform away)
puts the old value back, so the paper's next listing tries again; a user who can't be
messaged (Discord DMs closed) is not tried again for that change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.models import Paper
from bot.replies import CommandContext, Reply
from bot.state import Known, Store
from bot.state.limits import MAX_SAVED

log = logging.getLogger(__name__)

MAX_ALERTS_PER_RUN = 1000
"""Alerts one digest run sends at most (a bound, not a pace): the rest go out only if a later
listing carries their papers again."""
STOP_LINE = "/papers set alerts off stops these messages."
ALERTS_USAGE = "Use: set alerts on|off"


@dataclass(frozen=True, slots=True)
class Alert:
    user: str
    """`platform:user`, as saved lists name users."""
    paper: Paper
    """The paper as the listing carries it."""
    changes: tuple[str, ...]

    @property
    def platform(self) -> str:
        return self.user.partition(":")[0]

    @property
    def member(self) -> str:
        """The platform's own id of the user."""
        return self.user.partition(":")[2]

    def reply(self) -> Reply:
        """The message: plain text (adapters escape it) and the paper, as replies show one."""
        lines = ["A paper you saved has news:", *(f"• {c}" for c in self.changes), STOP_LINE]
        return Reply("\n".join(lines), papers=(self.paper,))


@runtime_checkable
class Notifier(Protocol):
    """What an output that can reach a user privately adds to `Publisher` (Slack, Discord)."""

    async def notify(self, user: str, reply: Reply) -> str | None:
        """Send `reply` to the platform's user `user`, privately. None once sent; the reason
        when this user can't be messaged (DMs closed, unknown user), not tried again.
        Raises for what may pass (the platform away): tried again at the next listing."""
        ...


# commands ------------------------------------------------------------------------------


async def set_alerts(store: Store, ctx: CommandContext, on: bool) -> Reply:
    """`/papers set alerts on|off`: the user's own, whoever may change the channel."""
    await store.alerts.set_enabled(ctx.member, on)
    log.info(
        "alerts_set channel=%s user=%s alerts=%s", ctx.channel, ctx.user, "on" if on else "off"
    )
    if on:
        return Reply(
            "Alerts are on: when a paper you saved gets a new version, a journal reference "
            "or a DOI, the bot tells you privately."
        )
    return Reply("Alerts are off: the bot no longer tells you about papers you saved.")


# the digest's part ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Due:
    alert: Alert
    old: str
    new: str


def newest_versions(papers: Iterable[Paper]) -> dict[str, Paper]:
    found: dict[str, Paper] = {}
    for paper in papers:
        held = found.get(paper.id)
        if held is None or paper.version > held.version:
            found[paper.id] = paper
    return found


async def follow_saved(
    store: Store,
    notifiers: Mapping[str, object],
    papers: Iterable[Paper],
    *,
    limit: int = MAX_ALERTS_PER_RUN,
) -> int:
    """Tell the savers of `papers` (a listing's, a catch-up's) what changed since they
    saved them, on the outputs in `notifiers` (by platform) that are `Notifier`s. The number
    of alerts sent."""
    listed = newest_versions(papers)
    due = _due(await store.alerts.savers(list(listed)), listed, notifiers)
    if not due:
        return 0
    users = list(dict.fromkeys(d.alert.user for d in due))
    off = await store.alerts.disabled(users)
    saved: dict[str, set[str]] = {}
    sent = 0
    for item in due:
        alert = item.alert
        if alert.user in off:
            continue
        if sent >= limit:
            log.warning(
                "alerts_capped sent=%d due=%d: the rest are not sent (MAX_ALERTS_PER_RUN)",
                sent,
                len(due),
            )
            break
        if alert.user not in saved:
            saved[alert.user] = {p.id for p in await store.signals.saved(alert.user, MAX_SAVED)}
        if alert.paper.id not in saved[alert.user]:  # trimmed or expired from the list
            await store.alerts.unfollow(alert.user, alert.paper.id)
            continue
        if not await store.alerts.claim(alert.paper.id, alert.user, item.old, item.new):
            continue  # told already, by another replica or an earlier run
        # `/papers saved` and its BibTeX show the paper as it is now.
        await store.signals.refresh_saved(alert.user, alert.paper)
        notifier = notifiers[alert.platform]
        assert isinstance(notifier, Notifier)
        sent += await _send(store, notifier, item)
    log.info("alerts_done due=%d sent=%d", len(due), sent)
    return sent


def _due(
    savers: Mapping[str, Mapping[str, str]],
    listed: Mapping[str, Paper],
    notifiers: Mapping[str, object],
) -> list[_Due]:
    due: list[_Due] = []
    for pid, users in savers.items():
        paper = listed[pid]
        for user, raw in users.items():
            known = Known.loads(raw)
            if known is None:
                continue
            alert = Alert(user, paper, known.changes(paper))
            if alert.changes and isinstance(notifiers.get(alert.platform), Notifier):
                due.append(_Due(alert, raw, known.after(paper).dumps()))
    return due


async def _send(store: Store, notifier: Notifier, item: _Due) -> int:
    alert = item.alert
    try:
        problem = await notifier.notify(alert.member, alert.reply())
    except Exception as err:
        # Not told: the claim is given back, for the paper's next listing.
        await store.alerts.claim(alert.paper.id, alert.user, item.new, item.old)
        log.warning(
            "alert_failed platform=%s user=%s paper=%s error=%r",
            alert.platform,
            alert.member,
            alert.paper.id,
            f"{type(err).__name__}: {err}",
        )
        return 0
    if problem is not None:
        log.info(
            "alert_undeliverable platform=%s user=%s paper=%s reason=%r",
            alert.platform,
            alert.member,
            alert.paper.id,
            problem,
        )
        return 0
    log.info(
        "alert_sent platform=%s user=%s paper=%s changes=%d",
        alert.platform,
        alert.member,
        alert.paper.id,
        len(alert.changes),
    )
    return 1
