"""`papers-bot digest` killed with SIGKILL at twenty seeded random points, one process after
another on one Redis, then runs to the end: summed over all of them, nothing is lost on Slack
or Discord, and what is doubled is counted.

- Restarted on the same papers (a supervisor restarting the bot, cron run again the same day;
  here four kills a day, then a restart that finishes): every paper reaches Discord exactly
  once. The restarted run composes the message that was in flight exactly as before, so its
  nonce matches and Discord keeps one copy.
- New papers between the kill and the restart: the message in flight is composed anew, its
  nonce differs, and Discord posts it again (at most one message per kill and channel).
- Slack: every message carries its key in its metadata, and a run finds the day's top
  message and the papers already in its thread. All runs here fall on one calendar day, so
  every paper reaches Slack exactly once either way (a restart on a later day starts a new
  thread and would post the message in flight again: docs/reliability.md, "Doubles").

Processes are forked from a forkserver that has imported the bot already, so twenty kills
cost seconds; each child is a real process running `bot.cli.main(["digest"])`.
test_crash_recovery.py does the same at three points with freshly started interpreters.
The measured rates are in docs/reliability.md; `PAPERS_BOT_TEST_KILLS=200` runs more."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.conftest import RedisServer
from tests.fakes.arxiv_server import FakeArxiv, FakePaper, make_paper
from tests.fakes.discord_api import CHANNEL_ID, TOKEN, FakeDiscord, Posted
from tests.fakes.slack_api import FakeSlack, SlackCall

KILLS = int(os.environ.get("PAPERS_BOT_TEST_KILLS", "20"))
SEED = 6

ANSWER_DELAY = 0.05
"""Seconds each platform takes to answer a created message (a round trip, roughly)."""
PRELOAD = ["bot.cli", "bot.jobs", "adapters.slack.app", "adapters.discord.app", __name__]


def digest_child(config: str, env: dict[str, str], log: str) -> None:
    """Runs in the forked process: `papers-bot --config CONFIG digest`, output to `log`."""
    for name in [n for n in os.environ if n.startswith("PAPERS_BOT_")]:
        del os.environ[name]
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import adapters.slack.app
    from bot.cli import main

    adapters.slack.app.MESSAGE_INTERVAL = 0.0  # the fake Slack has no per-second limit
    raise SystemExit(main(["--config", config, "digest"]))


@dataclass
class Tally:
    kills: int = 0
    finished_before_kill: int = 0
    points: list[str] = field(default_factory=list)
    stranding_kills: Counter[str] = field(default_factory=Counter)
    """Per platform: kills that left a posted message unrecorded (killed in its window)."""
    stranded_papers: Counter[str] = field(default_factory=Counter)
    _read: Counter[str] = field(default_factory=Counter)

    def account(self, platform: str, messages: list[list[str]], seen: set[str]) -> None:
        """After a killed run: the papers of the run's messages that Redis did not record.
        They must all come from one message, the one in flight when the kill came."""
        new = messages[self._read[platform] :]
        self._read[platform] = len(messages)
        stranded = {i for ids in new for i in ids} - seen
        if stranded:
            assert any(stranded <= set(ids) for ids in new), (platform, stranded)
            self.stranding_kills[platform] += 1
            self.stranded_papers[platform] += len(stranded)


def paper(n: int) -> FakePaper:
    return make_paper(
        n, title=f"Reward model {n}", published=datetime.now(UTC) - timedelta(minutes=1)
    )


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv() as fake:
        yield fake


def slack_threads(slack: FakeSlack) -> list[SlackCall]:
    return [c for c in slack.posts("C1") if c.thread_ts is not None]


def slack_ids(call: SlackCall) -> list[str]:
    found = []
    for block in call.blocks:
        text = block.get("text", {}).get("text", "")
        if block["type"] == "section" and text.startswith("*<https://arxiv.org/abs/"):
            found.append(text.split("|")[0].removeprefix("*<https://arxiv.org/abs/"))
    return found


def discord_ids_of(message: Posted) -> list[str]:
    return [e["url"].rsplit("/", 1)[-1] for e in message.embeds]


def discord_ids(fake: FakeDiscord) -> list[str]:
    return [i for m in fake.posted(CHANNEL_ID) for i in discord_ids_of(m)]


@pytest.mark.parametrize(
    ("kills_per_day", "new_per_day"),
    [(4, 60), (1, 24)],  # 60 papers: 6 Discord messages; 24: 3 (and Slack a top + 2 or 5)
    ids=["same-day-restarts", "new-papers-between"],
)
async def test_sigkill_at_random_points_loses_nothing_and_counts_doubles(
    tmp_path: Path,
    redis_server: RedisServer,
    arxiv: FakeArxiv,
    slack: FakeSlack,
    discord_fake: FakeDiscord,
    kills_per_day: int,
    new_per_day: int,
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(
        '[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\nkeywords = ["reward model"]\n'
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL_ID}"\n'
        'keywords = ["reward model"]\n'
    )
    prefix = f"kill-{tmp_path.name}"
    env = {
        "PAPERS_BOT_REDIS_URL": redis_server.url,
        "PAPERS_BOT_KEY_PREFIX": prefix,
        "PAPERS_BOT_ARXIV__API_URL": arxiv.url,
        "PAPERS_BOT_ARXIV__RSS_URL": arxiv.rss_url,
        "PAPERS_BOT_ARXIV__REQUEST_INTERVAL": "0",
        "PAPERS_BOT_DIGEST__FIRST_RUN_PAPERS": "100",
        "PAPERS_BOT_DIGEST__MAX_PAPERS_PER_CHANNEL": "1000",
        "PAPERS_BOT_SLACK__BOT_TOKEN": slack.bot_token,
        "PAPERS_BOT_SLACK__API_URL": slack.api_url,
        "PAPERS_BOT_DISCORD__TOKEN": TOKEN,
        "PAPERS_BOT_DISCORD__API_URL": discord_fake.api_url,
        "PAPERS_BOT_DISCORD__GATEWAY_URL": discord_fake.gateway_url,
    }
    log = str(tmp_path / "digest.log")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    slack.post_delay = discord_fake.post_delay = ANSWER_DELAY
    rng = random.Random(SEED)
    tally = Tally()
    started = datetime.now(UTC).date()  # the digests' day (their top message's key)

    def posts() -> int:
        return len(slack.posts()) + len(discord_fake.messages)

    def run_to_the_end() -> None:
        child = context.Process(target=digest_child, args=(str(config), env, log))
        child.start()
        child.join(30)
        assert child.exitcode == 0, Path(log).read_text()

    try:
        # The bot has been running: the keyword's first run (which posts at most
        # first_run_papers and counts the rest as seen) is behind it.
        await asyncio.to_thread(run_to_the_end)
        for run in range(KILLS):
            if run % kills_per_day == 0:  # a new day
                day = run // kills_per_day
                if kills_per_day == 1:  # a backlog over max_papers_per_channel is cut
                    new_per_day = min(new_per_day, 900 // KILLS)
                arxiv.papers += [paper(day * new_per_day + n) for n in range(1, new_per_day + 1)]
            child = context.Process(target=digest_child, args=(str(config), env, log))
            before = posts()
            child.start()
            if rng.random() < 0.3:  # anywhere: starting, fetching, posting
                point = f"{rng.uniform(0, 0.3):.3f}s"
                await asyncio.sleep(float(point[:-1]))
            else:  # while posting: shortly after the k-th message was created
                k, extra = rng.randint(1, 3), rng.uniform(0, 2 * ANSWER_DELAY)
                point = f"post {k} + {extra:.3f}s"
                async with asyncio.timeout(20):
                    while posts() - before < k and child.exitcode is None:
                        await asyncio.sleep(0.002)
                await asyncio.sleep(extra)
            if child.exitcode is None:
                os.kill(child.pid or 0, signal.SIGKILL)
                tally.kills += 1
                tally.points.append(point)
            else:
                tally.finished_before_kill += 1
            await asyncio.to_thread(child.join, 10)
            assert child.exitcode in (0, -signal.SIGKILL), f"see {log}"
            for platform, channel, messages in (
                ("slack", "C1", [slack_ids(c) for c in slack_threads(slack)]),
                ("discord", CHANNEL_ID, [discord_ids_of(m) for m in discord_fake.posted()]),
            ):
                seen = await redis.zrange(f"{prefix}:seen:{{{platform}:{channel}}}", 0, -1)
                tally.account(platform, messages, set(seen))
            # Fast-forward the dead process's channel locks to their expiry (lock_ttl).
            if locks := await redis.keys(f"{prefix}:lock:*"):
                await redis.delete(*locks)
            if kills_per_day > 1 and run % kills_per_day == kills_per_day - 1:
                await asyncio.to_thread(run_to_the_end)  # the day's last restart finishes

        slack.post_delay = discord_fake.post_delay = 0
        await asyncio.to_thread(run_to_the_end)
        done = posts()
        await asyncio.to_thread(run_to_the_end)  # once more: nothing is left to post
        assert posts() == done
    finally:
        await redis.aclose()

    expected = {p.id for p in arxiv.papers}
    assert tally.kills >= KILLS * 3 // 4, tally  # most points landed inside a run

    output = await asyncio.to_thread(Path(log).read_text)
    assert not [s for s in (slack.bot_token, TOKEN) if s in output]  # the children's logs
    on_discord = Counter(discord_ids(discord_fake))
    on_slack = Counter(i for call in slack_threads(slack) for i in slack_ids(call))
    assert set(on_discord) == set(on_slack) == expected  # nothing lost anywhere
    discord_doubled = sum(n - 1 for n in on_discord.values())
    slack_doubled = sum(n - 1 for n in on_slack.values())
    if kills_per_day > 1:
        assert set(on_discord.values()) == {1}  # Discord: exactly once
    # Only the papers of the messages in flight at a kill may come twice.
    assert discord_doubled <= tally.stranded_papers["discord"]
    assert slack_doubled <= tally.stranded_papers["slack"]
    if started == datetime.now(UTC).date():  # one day's thread, found again by every run
        assert slack_doubled == 0  # Slack: exactly once
    tops = [c for c in slack.posts("C1") if c.thread_ts is None]
    threads = {c.thread_ts for c in slack_threads(slack)}
    print(
        f"\nkills={tally.kills} finished_before_kill={tally.finished_before_kill} "
        f"papers={len(expected)} stranding_kills={dict(tally.stranding_kills)} "
        f"stranded_papers={dict(tally.stranded_papers)} "
        f"discord_nonce_dedupes={discord_fake.deduplicated} "
        f"doubled_papers={{'slack': {slack_doubled}, 'discord': {discord_doubled}}} "
        f"slack_top_messages_without_thread={len({c.ts for c in tops} - threads)}"
        f"\npoints={tally.points}"
    )
