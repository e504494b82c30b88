"""The test fake Slack (`tests/fakes/slack_api.py`) in a process of its own, so that its work
(parsing and checking every posted message) competes neither for the bot's GIL nor for its
event loop.

Parent side: `RemoteSlack`. Child side: `python -m bench.slack_process MIN_INTERVAL`, which
starts a `FakeSlack(min_interval=MIN_INTERVAL)`, prints its URLs, then answers one JSON
command per line on stdin: `summary` (what it recorded, condensed), `responses` (bodies
posted to response_urls), `clear`, `stop`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.child import Child
from tests.fakes.slack_api import FakeSlack

_PAPER_LINK = re.compile(r"arxiv\.org/abs/([^|>\s]+)")


@dataclass(frozen=True, slots=True)
class ChannelPosts:
    """What one channel received: its accepted posts, in order."""

    tops: int
    """Posts outside any thread (the digest's top message)."""
    orphans: int
    """Thread posts whose `thread_ts` is not a top message of this channel."""
    messages: int
    paper_ids: tuple[str, ...]
    """Every paper link of every accepted post, in order (twice if posted twice)."""
    first: float
    last: float
    """time.monotonic() of the first and last accepted post (the same clock in every
    process on Linux)."""


@dataclass(frozen=True, slots=True)
class Summary:
    posts: int
    """chat.postMessage calls, whatever the answer."""
    accepted: int
    rate_limited: int
    """Calls answered 429."""
    other_errors: Counter[str]
    channels: dict[str, ChannelPosts]
    spacing_violations: int
    other_methods: Counter[str]
    cpu: float
    """CPU seconds the fake's process used since it started."""


class RemoteSlack(Child):
    name = "fake Slack"

    def __init__(self, min_interval: float) -> None:
        super().__init__("bench.slack_process", min_interval)
        self.api_url: str = self.hello["api_url"]
        self.bot_token: str = self.hello["bot_token"]
        self.url: str = self.hello["url"]

    def response_url(self, key: str) -> str:
        return f"{self.url}/respond/{key}"

    def clear(self) -> None:
        """Forget the recorded calls (use new channel ids for the next run: the fake still
        remembers each channel's last post for its spacing rule)."""
        self.call("clear")

    def responses(self) -> list[tuple[str, float, str]]:
        """(key, time.monotonic() of arrival, text) of every body posted to a response_url."""
        return [(r["key"], r["time"], r["text"]) for r in self.call("responses")["responses"]]

    def summary(self) -> Summary:
        raw = self.call("summary")
        return Summary(
            posts=raw["posts"],
            accepted=raw["accepted"],
            rate_limited=raw["rate_limited"],
            other_errors=Counter(raw["other_errors"]),
            channels={k: ChannelPosts(**{**v, "paper_ids": tuple(v["paper_ids"])})
                      for k, v in raw["channels"].items()},
            spacing_violations=raw["spacing_violations"],
            other_methods=Counter(raw["other_methods"]),
            cpu=raw["cpu"],
        )  # fmt: skip


def summarize(fake: FakeSlack) -> dict[str, Any]:
    posts = [c for c in fake.calls if c.method == "chat.postMessage"]
    accepted = [c for c in posts if c.ok]
    by_channel: dict[str, list[Any]] = {}
    for call in accepted:
        by_channel.setdefault(str(call.channel), []).append(call)
    channels: dict[str, dict[str, Any]] = {}
    for channel, calls in by_channel.items():
        tops = {c.ts for c in calls if not c.thread_ts}
        channels[channel] = {
            "tops": len(tops),
            "orphans": sum(1 for c in calls if c.thread_ts and c.thread_ts not in tops),
            "messages": len(calls),
            "paper_ids": [pid for c in calls for pid in _PAPER_LINK.findall(c.text)],
            "first": calls[0].time,
            "last": calls[-1].time,
        }
    return {
        "posts": len(posts),
        "accepted": len(accepted),
        "rate_limited": sum(1 for c in posts if c.status == 429),
        "other_errors": Counter(str(c.error) for c in posts if not c.ok and c.status != 429),
        "channels": channels,
        "spacing_violations": fake.spacing_violations,
        "other_methods": Counter(c.method for c in fake.calls if c.method != "chat.postMessage"),
        "cpu": time.process_time(),
    }


async def serve(min_interval: float) -> None:
    loop = asyncio.get_running_loop()
    async with FakeSlack(min_interval=min_interval) as fake:
        hello = {"api_url": fake.api_url, "bot_token": fake.bot_token, "url": fake.url}
        print(json.dumps(hello), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            op = json.loads(line)["op"]
            answer: dict[str, Any] = {"ok": True}
            try:
                if op == "summary":
                    answer = summarize(fake)
                elif op == "responses":
                    answer = {"responses": [{"key": r.key, "time": r.time, "text": r.text}
                                            for r in fake.responses]}  # fmt: skip
                elif op == "clear":
                    fake.calls.clear()
                    fake.responses.clear()
                    fake.spacing_violations = 0
                elif op == "stop":
                    print(json.dumps(answer), flush=True)
                    return
            except Exception as err:  # report it to the parent, which raises
                answer = {"error": f"{type(err).__name__}: {err}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    asyncio.run(serve(float(sys.argv[1])))
