"""README.md's Redis key table lists exactly the keys `bot.state.keys` builds: a key added to
the code without a row, or a row left for a key the code no longer builds, fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from bot.models import Channel
from bot.state import keys as keys_module
from bot.state.keys import Keys

README = Path(__file__).resolve().parent.parent / "README.md"
CHANNEL = Channel("platform", "channel")

# What each key is built from, spelled as the README's placeholders. A hashed tag is shown
# by the name of its hash (`kwhash`, `KEYWORDSHASH`).
SAMPLES: dict[str, list[tuple[Any, ...]]] = {
    "seen": [(CHANNEL,)],
    "baseline": [(CHANNEL,)],
    "attempt": [(CHANNEL,)],
    "day": [(CHANNEL,)],
    "subs": [(CHANNEL,)],
    "held": [(CHANNEL,)],
    "options": [(CHANNEL,)],
    "up": [(CHANNEL,)],
    "down": [(CHANNEL,)],
    "voted": [(CHANNEL,)],
    "voted_papers": [(CHANNEL,)],
    "week": [(CHANNEL,)],
    "week_papers": [(CHANNEL,)],
    "week_savers": [(CHANNEL,)],
    "saved": [("platform:user",)],
    "saved_papers": [("platform:user",)],
    "alerts_off": [("platform:user",)],
    "paper": [("arxiv-id",)],
    "savers": [("arxiv-id",)],
    "recent": [("kwhash",)],
    "recent_papers": [("kwhash",)],
    "answer": [(["KEYWORDSHASH"],)],
    "channels": [()],
    "fetched": [()],
    "openers": [()],
    "gone": [()],
    "listing": [("FEED",)],
    "lock": [
        (keys_module.digest_slot("SLOT"),),
        (keys_module.channel_lock(CHANNEL),),
        (f"{keys_module.SLACK_REQUEST}:SIGNATURE",),
        (f"{keys_module.DISCORD_INTERACTION}:ID",),
        (keys_module.weekly_post("WEEK", CHANNEL),),
    ],
    "done": [(keys_module.digest_slot("SLOT"),), (keys_module.weekly_post("WEEK", CHANNEL),)],
    "rate": [
        ("platform:user", "MINUTE"),  # a member's commands: the member is the name
        (keys_module.arxiv_rate("platform:user"), "MINUTE"),
        (keys_module.ARXIV_COMMANDS, "MINUTE"),
    ],
    "pace": [(keys_module.ARXIV_PACE,)],
    "urgent": [(keys_module.ARXIV_PACE,)],
}


def key_names() -> list[str]:
    return [
        name
        for name, _ in inspect.getmembers(Keys)
        if not name.startswith("_") and name != "prefix"
    ]


def built() -> set[str]:
    keys = Keys("P")
    found: set[str] = set()
    for name in key_names():
        member = getattr(keys, name)
        for args in SAMPLES[name]:
            found.add(member(*args) if callable(member) else member)
    return found


def readme_keys() -> set[str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("## State in Redis", 1)[1].split("\n## ", 1)[0]
    found: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            first = line.split(" | ", 1)[0]
            found.update(re.findall(r"`([^`]+)`", first))
    return found


def test_every_key_has_a_sample() -> None:
    assert sorted(key_names()) == sorted(SAMPLES), "a key added to Keys needs a sample here"


def test_the_readme_lists_exactly_the_keys_the_code_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hashes shown by name: the README can't spell a keyword's SHA-1.
    monkeypatch.setattr(keys_module, "keyword_tag", lambda keyword: keyword)
    monkeypatch.setattr(keys_module, "keywords_tag", lambda keywords: keywords[0])
    code = built()
    readme = readme_keys()
    assert sorted(code - readme) == [], "keys the code builds that README.md does not list"
    assert sorted(readme - code) == [], "keys README.md lists that the code does not build"
