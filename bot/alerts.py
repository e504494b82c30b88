"""Saved papers followed: when the day's listing (or a catch-up) carries a new version of a
paper someone saved, or its journal reference or DOI appears, the saver is told once,
privately, with what changed. `/papers set alerts off` stops it for one user.

Two twins with one contract, like the store: `RedisAlerts` (reached as `RedisStore.alerts`)
and `MemoryAlerts`. README.md lists the keys:

- `P:savers:{arxiv-id}` (hash: `platform:user` -> what that user knows of the paper, JSON
  `{"v": version, "j": journal reference, "d": DOI}`): written by 🔖 Save, taken back by
  Remove or `/papers unsave`; at most `MAX_SAVERS` users a paper, kept `SAVED_KEPT` after
  the paper's last save. A run reads one such key per listed paper, whatever the users.
- `P:alerts:{platform:user}` (string): the user turned alerts off; kept `SAVED_KEPT`.

An alert is claimed by replacing what its saver knew with what the listing says, in one
script that checks the old value first: another replica, or a run again, finds the value
changed and sends nothing. A send that fails for a reason that may pass (the platform away)
puts the old value back, so the paper's next listing tries again; a user who can't be
messaged (Discord DMs closed) is not tried again for that change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.models import Paper
from bot.replies import CommandContext, Reply
from bot.signals import MAX_SAVED, SAVED_KEPT

if TYPE_CHECKING:
    from bot.store import Client, Store

log = logging.getLogger(__name__)

MAX_SAVERS = 1000
"""Users told about one paper at most: the earliest savers are kept."""
MAX_ALERTS_PER_RUN = 1000
"""Alerts one digest run sends at most (a bound, not a pace): the rest go out only if a later
listing carries their papers again."""
READ_BATCH = 500
"""`P:savers` keys read in one pipeline."""
OFF = "off"
STOP_LINE = "/papers set alerts off stops these messages."
ALERTS_USAGE = "Use: set alerts on|off"


@dataclass(frozen=True, slots=True)
class Known:
    """What a saver knows of a paper: the version, journal reference and DOI last told."""

    version: int
    journal_ref: str | None = None
    doi: str | None = None

    @classmethod
    def of(cls, paper: Paper) -> Known:
        return cls(paper.version, paper.journal_ref, paper.doi)

    def dumps(self) -> str:
        data = {"v": self.version, "j": self.journal_ref, "d": self.doi}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> Known | None:
        try:
            data = json.loads(raw)
            return cls(int(data["v"]), data.get("j") or None, data.get("d") or None)
        except (ValueError, KeyError, TypeError):
            return None

    def changes(self, paper: Paper) -> tuple[str, ...]:
        """What `paper` (as a listing carries it) says that this saver was not told."""
        lines: list[str] = []
        if paper.version > self.version:
            lines.append(f"New version: v{paper.version} (you saved v{self.version})")
        if paper.journal_ref and paper.journal_ref != self.journal_ref:
            lines.append(f"Journal reference: {paper.journal_ref}")
        if paper.doi and paper.doi != self.doi:
            lines.append(f"DOI: {paper.doi}")
        return tuple(lines)

    def after(self, paper: Paper) -> Known:
        """What the saver knows once told about `paper`."""
        return Known(
            max(self.version, paper.version),
            paper.journal_ref or self.journal_ref,
            paper.doi or self.doi,
        )


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


class AlertState(Protocol):
    async def follow(self, user: str, paper: Paper) -> None: ...
    async def unfollow(self, user: str, paper_id: str) -> None: ...
    async def savers(self, paper_ids: Sequence[str]) -> dict[str, dict[str, str]]: ...
    async def claim(self, paper_id: str, user: str, old: str, new: str) -> bool: ...
    async def set_enabled(self, user: str, on: bool) -> None: ...
    async def disabled(self, users: Sequence[str]) -> set[str]: ...


# Adds user ARGV[1] (what they know: ARGV[2]) to the savers of a paper, unless it has
# ARGV[3] savers already. KEYS: the savers hash. ARGV[4]: ttl seconds.
_FOLLOW = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
   and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# What user ARGV[1] knows becomes ARGV[3] if it is still ARGV[2]. KEYS: the savers hash.
_CLAIM = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class RedisAlerts:
    def __init__(self, client: Callable[[], Any], prefix: str) -> None:
        """`client` is the store's coroutine that gives its (single or cluster) client."""
        self._client = client
        self._p = prefix

    async def _redis(self) -> Client:
        client: Client = await self._client()
        return client

    def _savers(self, paper_id: str) -> str:
        return f"{self._p}:savers:{{{paper_id}}}"

    def _off(self, user: str) -> str:
        return f"{self._p}:alerts:{{{user}}}"

    async def follow(self, user: str, paper: Paper) -> None:
        r = await self._redis()
        ttl = int(SAVED_KEPT.total_seconds())
        args = (user, Known.of(paper).dumps(), MAX_SAVERS, ttl)
        await r.eval(_FOLLOW, 1, self._savers(paper.id), *args)

    async def unfollow(self, user: str, paper_id: str) -> None:
        r = await self._redis()
        await r.hdel(self._savers(paper_id), user)

    async def savers(self, paper_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        r = await self._redis()
        found: dict[str, dict[str, str]] = {}
        for start in range(0, len(paper_ids), READ_BATCH):
            batch = paper_ids[start : start + READ_BATCH]
            async with r.pipeline(transaction=False) as pipe:
                for pid in batch:
                    pipe.hgetall(self._savers(pid))
                answers = await pipe.execute()
            for pid, users in zip(batch, answers, strict=True):
                if users:
                    found[pid] = {_text(u): _text(k) for u, k in users.items()}
        return found

    async def claim(self, paper_id: str, user: str, old: str, new: str) -> bool:
        r = await self._redis()
        return bool(await r.eval(_CLAIM, 1, self._savers(paper_id), user, old, new))

    async def set_enabled(self, user: str, on: bool) -> None:
        r = await self._redis()
        if on:
            await r.delete(self._off(user))
        else:
            await r.set(self._off(user), OFF, ex=int(SAVED_KEPT.total_seconds()))

    async def disabled(self, users: Sequence[str]) -> set[str]:
        r = await self._redis()
        async with r.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.exists(self._off(user))
            answers = await pipe.execute()
        return {user for user, off in zip(users, answers, strict=True) if off}


@dataclass
class MemoryAlerts:
    """The in-process twin of RedisAlerts."""

    _savers: dict[str, dict[str, str]] = field(default_factory=dict)
    _off: set[str] = field(default_factory=set)

    async def follow(self, user: str, paper: Paper) -> None:
        savers = self._savers.setdefault(paper.id, {})
        if user in savers or len(savers) < MAX_SAVERS:
            savers[user] = Known.of(paper).dumps()

    async def unfollow(self, user: str, paper_id: str) -> None:
        self._savers.get(paper_id, {}).pop(user, None)

    async def savers(self, paper_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        return {pid: dict(self._savers[pid]) for pid in paper_ids if self._savers.get(pid)}

    async def claim(self, paper_id: str, user: str, old: str, new: str) -> bool:
        savers = self._savers.get(paper_id, {})
        if savers.get(user) != old:
            return False
        savers[user] = new
        return True

    async def set_enabled(self, user: str, on: bool) -> None:
        (self._off.discard if on else self._off.add)(user)

    async def disabled(self, users: Sequence[str]) -> set[str]:
        return {u for u in users if u in self._off}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


# commands ------------------------------------------------------------------------------


def user_key(ctx: CommandContext) -> str:
    """Alerts, like saved lists, are a user's own across the channels of one platform."""
    return f"{ctx.channel.platform}:{ctx.user}"


async def set_alerts(store: Store, ctx: CommandContext, on: bool) -> Reply:
    """`/papers set alerts on|off`: the user's own, whoever may change the channel."""
    await store.alerts.set_enabled(user_key(ctx), on)
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
