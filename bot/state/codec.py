"""What the twins store, read back as value types: shared by the Redis and the memory twin."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from bot.keywords import normalize
from bot.models import Paper
from bot.ranking import Taste, paper_text
from bot.state import ChatSubscription


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def paper_or_none(raw: str | bytes | None) -> Paper | None:
    """A stored paper (JSON); None for none, or for one that no longer reads."""
    if not raw:
        return None
    try:
        return Paper.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None


def holds(
    raw: Mapping[str, str], keywords: Iterable[str], now: datetime
) -> dict[str, frozenset[str]]:
    """The unexpired holds of `keywords` (normalized) among a channel's `raw` ones."""
    found: dict[str, frozenset[str]] = {}
    for name in {normalize(k) for k in keywords} & raw.keys():
        data = json.loads(raw[name])
        if data["until"] > now.timestamp():
            found[name] = frozenset(data["keys"])
    return found


def taste_of_votes(rows: Iterable[tuple[Paper | None, int, int]]) -> Taste:
    """Papers the channel voted up more than down are liked; the other way round, disliked."""
    liked: list[str] = []
    disliked: list[str] = []
    for paper, up, down in rows:
        if paper is None or up == down:
            continue
        (liked if up > down else disliked).append(paper_text(paper))
    return Taste(tuple(liked), tuple(disliked))


def taste_from_script(flat: list[Any]) -> Taste:
    """The taste script's answer (JSON, up voters, down voters, …) as a `Taste`."""
    rows = [
        (paper_or_none(flat[i]), int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)
    ]
    return taste_of_votes(rows)


def subscription(raw: str) -> ChatSubscription:
    data = json.loads(raw)
    return ChatSubscription(
        keyword=data["keyword"],
        added_by=data["added_by"],
        added_at=datetime.fromisoformat(data["added_at"]),
    )


def sorted_subscriptions(subs: Iterable[ChatSubscription]) -> list[ChatSubscription]:
    return sorted(subs, key=lambda s: (s.added_at, s.keyword))


def gone_count(stored: Any) -> int:
    """The count of a `note_gone` record (`2026-11-04 2`); 0 for none."""
    if stored is None:
        return 0
    _, _, count = text(stored).partition(" ")
    return int(count) if count.isdecimal() else 0


def same_day(stored: Any, day: date) -> bool:
    return isinstance(stored, str | bytes) and text(stored) == day.isoformat()


def policy_in(answer: Mapping[Any, Any]) -> str | None:
    """`maxmemory-policy` in CONFIG GET's answer (a cluster client's: one per node)."""
    for name, value in answer.items():
        if isinstance(value, Mapping):
            if (policy := policy_in(value)) is not None:
                return policy
        elif text(name) == "maxmemory-policy":
            return text(value)
    return None
