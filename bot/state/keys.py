"""Every Redis key name, built from the `key_prefix` (`P` below); README.md's table lists
them (tests/test_state_keys.py checks that it lists exactly these).

Hash tags: the part of a key in braces is what a Redis Cluster hashes to pick the key's
slot, so keys with the same tag live on one node, and one script or transaction may touch
them together. The tags are a channel (`{platform:channel}`), a user (`{platform:user}`), a
paper (`{arxiv-id}`) or a keyword (`{kwhash}`, see `keyword_tag`). Keys without braces are
each used alone, except `pace` and its `urgent` twin, which tags the whole `pace` key.

The names under `lock:`, `done:`, `rate:` and `pace:` (what `Store.acquire`,
`Store.mark_done`, `Store.hit` and `Store.next_start` are given) are built here too, below
`Keys`: a digest's slot, a channel's lock, a weekly post, a claimed request, a member's
arXiv rate (their commands' rate is named by the member alone) and arXiv's pace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bot.keywords import normalize
from bot.models import Channel


def keyword_tag(keyword: str) -> str:
    """A keyword's hash tag (`kwhash`): the same for every spelling of it."""
    return hashlib.sha1(normalize(keyword).encode()).hexdigest()[:16]


def keywords_tag(keywords: Sequence[str]) -> str:
    """One name for a set of keywords, whatever their order and spelling (`KEYWORDSHASH`)."""
    names = "\n".join(sorted({normalize(k) for k in keywords}))
    return hashlib.sha1(names.encode()).hexdigest()[:16]


class Keys:
    """The key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _of(self, channel: Channel) -> str:
        return f"{{{channel.key}}}"

    # a channel's -----------------------------------------------------------------------
    def seen(self, channel: Channel) -> str:
        """Sorted set: paper id -> time it was delivered to the channel."""
        return f"{self.prefix}:seen:{self._of(channel)}"

    def baseline(self, channel: Channel) -> str:
        """Set: keywords whose first run in the channel is done."""
        return f"{self.prefix}:baseline:{self._of(channel)}"

    def attempt(self, channel: Channel) -> str:
        """String: the day of the last run that read the channel to post there."""
        return f"{self.prefix}:attempt:{self._of(channel)}"

    def day(self, channel: Channel) -> str:
        """String: the last listing day the channel received in full."""
        return f"{self.prefix}:day:{self._of(channel)}"

    def subs(self, channel: Channel) -> str:
        """Hash: keyword -> who added it from chat, and when (JSON)."""
        return f"{self.prefix}:subs:{self._of(channel)}"

    def held(self, channel: Channel) -> str:
        """Hash: keyword -> the papers its `/papers add` preview showed (JSON, `PreviewHold`)."""
        return f"{self.prefix}:held:{self._of(channel)}"

    def options(self, channel: Channel) -> str:
        """Hash: option name -> '1' or '0', set from chat."""
        return f"{self.prefix}:options:{self._of(channel)}"

    def up(self, channel: Channel) -> str:
        """Hash: paper id -> the users who voted it up in the channel."""
        return f"{self.prefix}:up:{self._of(channel)}"

    def down(self, channel: Channel) -> str:
        """Hash: paper id -> the users who asked for less like it."""
        return f"{self.prefix}:down:{self._of(channel)}"

    def voted(self, channel: Channel) -> str:
        """Sorted set: paper id -> time of its first vote in the channel."""
        return f"{self.prefix}:voted:{self._of(channel)}"

    def voted_papers(self, channel: Channel) -> str:
        """Hash: paper id -> the voted paper (JSON)."""
        return f"{self.voted(channel)}:papers"

    def week(self, channel: Channel) -> str:
        """Sorted set: paper id -> time it was posted to the channel (`weekly` on)."""
        return f"{self.prefix}:week:{self._of(channel)}"

    def week_papers(self, channel: Channel) -> str:
        """Hash: paper id -> the posted paper (JSON)."""
        return f"{self.week(channel)}:papers"

    def week_savers(self, channel: Channel) -> str:
        """Hash: paper id -> the users who saved it from the channel."""
        return f"{self.week(channel)}:savers"

    # a user's --------------------------------------------------------------------------
    def saved(self, user: str) -> str:
        """Sorted set: paper id -> time the user (`platform:user`) saved it."""
        return f"{self.prefix}:saved:{{{user}}}"

    def saved_papers(self, user: str) -> str:
        """Hash: paper id -> the saved paper (JSON)."""
        return f"{self.saved(user)}:papers"

    def alerts_off(self, user: str) -> str:
        """String: the user turned alerts off."""
        return f"{self.prefix}:alerts:{{{user}}}"

    # a paper's, a keyword's ------------------------------------------------------------
    def paper(self, paper_id: str) -> str:
        """String: a paper a digest run matched (JSON), for button presses."""
        return f"{self.prefix}:paper:{{{paper_id}}}"

    def savers(self, paper_id: str) -> str:
        """Hash: `platform:user` -> what that saver was last told of the paper (JSON)."""
        return f"{self.prefix}:savers:{{{paper_id}}}"

    def recent(self, keyword: str) -> str:
        """Sorted set: the latest paper ids of one keyword, by submission time."""
        return f"{self.prefix}:recent:{{{keyword_tag(keyword)}}}"

    def recent_papers(self, keyword: str) -> str:
        """Hash: those papers (JSON)."""
        return f"{self.recent(keyword)}:papers"

    def answer(self, keywords: Sequence[str]) -> str:
        """String: arXiv's answer for a set of keywords (JSON), for `/papers recent`."""
        return f"{self.prefix}:answer:{keywords_tag(keywords)}"

    # the bot's -------------------------------------------------------------------------
    @property
    def channels(self) -> str:
        """Set: channels with chat keywords (`platform:channel`)."""
        return f"{self.prefix}:channels"

    @property
    def fetched(self) -> str:
        """Sorted set: keyword -> time a search of its own last filled its recent list."""
        return f"{self.prefix}:fetched"

    @property
    def openers(self) -> str:
        """Hash: channel -> who brought the bot there, and the workspace or server (JSON)."""
        return f"{self.prefix}:openers"

    @property
    def gone(self) -> str:
        """Hash: channel -> the last day it was gone and the days so far (`DAY COUNT`)."""
        return f"{self.prefix}:gone"

    def listing(self, feed: str) -> str:
        """String: the last listing received from a feed (JSON)."""
        return f"{self.prefix}:listing:{feed}"

    def lock(self, name: str) -> str:
        """String: the owner of a lock (`Store.acquire`)."""
        return f"{self.prefix}:lock:{name}"

    def done(self, name: str) -> str:
        """String: a run that was made (`Store.mark_done`)."""
        return f"{self.prefix}:done:{name}"

    def rate(self, name: str, window: int | str) -> str:
        """String: events counted in one fixed window (`Store.hit`), by the window's number."""
        return f"{self.prefix}:rate:{name}:{window}"

    def pace(self, name: str) -> str:
        """String: the earliest start of the next paced request (`Store.next_start`)."""
        return f"{self.prefix}:pace:{name}"

    def urgent(self, name: str) -> str:
        """String: urgent work waits for `pace(name)`'s next slot. `{key}` hashes as `key`
        does: the same cluster slot, as the pacing script needs."""
        return f"{{{self.pace(name)}}}:urgent"


# names given to the store's locks, done marks, rates and paces ----------------------------
SLACK_REQUEST = "slack-request"
"""Claims on Slack request signatures (`slack-request:SIGNATURE`)."""
DISCORD_INTERACTION = "discord-interaction"
"""Claims on Discord interaction ids (`discord-interaction:ID`)."""
ARXIV_PACE = "arxiv"
"""The pace every replica's arXiv requests share."""
ARXIV_COMMANDS = "arxiv:commands"
"""The rate of every member's commands' arXiv requests together."""


def digest_slot(slot: str, reread: int = 0) -> str:
    """A scheduled digest (`digest:SLOT`); the nth re-reading of a stale listing is a slot of
    its own (`digest:SLOT:rereadN`)."""
    return f"digest:{slot}" + (f":reread{reread}" if reread else "")


def channel_lock(channel: Channel) -> str:
    """A channel's delivery lock, under the channel's tag: it rides its state read."""
    return f"channel:{{{channel.key}}}"


def weekly_post(week: str, channel: Channel) -> str:
    """A channel's post of one ISO week (`weekly:2026-W45:platform:channel`)."""
    return f"weekly:{week}:{channel.key}"


def arxiv_rate(member: str) -> str:
    """A member's commands' arXiv requests."""
    return f"arxiv:{member}"
