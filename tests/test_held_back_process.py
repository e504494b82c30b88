"""Issue 22, finding 1, end to end: a member's `/papers add` then `/papers remove` of a
keyword, before the digest, doesn't swallow the papers of the channel's other keywords
(real `papers-bot run` and `papers-bot digest` processes, real Redis, fake arXiv and Discord)."""

import asyncio
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import RedisServer, free_port
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, FakeDiscord
from tests.processes import bot_env, finished, health, spawn

BOTH = make_paper(1, title="A reward model trained with RLHF")
RLHF_ONLY = make_paper(2, title="RLHF without a reward")


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv([BOTH, RLHF_ONLY]) as fake:
        yield fake


def posted_ids(fake: FakeDiscord) -> list[str]:
    return [e["url"].rsplit("/", 1)[-1] for m in fake.posted(CHANNEL_ID) for e in m.embeds]


async def command(fake: FakeDiscord, subcommand: str, **options: str) -> str:
    token = await fake.send_interaction(fake.slash(subcommand, **options))
    (reply, *_) = await fake.wait_until(lambda: fake.replies(token), within=15)
    return reply.content


async def test_add_then_remove_before_the_digest_leaves_the_other_keywords_paper(
    tmp_path: Path, redis_server: RedisServer, arxiv: FakeArxiv, discord_fake: FakeDiscord
) -> None:
    # The next slot is half an hour away: `run` makes no catch-up run at start-up.
    slot = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%H:%M")
    (tmp_path / "settings.toml").write_text(
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL_ID}"\n'
        f'keywords = ["reward model"]\n[schedule]\ntime = "{slot}"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
    )
    port = free_port()
    env = bot_env(
        redis_server.url,
        arxiv,
        discord_fake,
        KEY_PREFIX=f"held-{uuid.uuid4().hex[:8]}",
        SERVICE__HEALTH_PORT=str(port),
    )
    service = await spawn(tmp_path, env, "run")
    try:
        async with asyncio.timeout(30):
            while not (await health(port) and discord_fake.commands):
                assert service.returncode is None
                await asyncio.sleep(0.1)
        await discord_fake.wait_identified(within=15)
        assert (await command(discord_fake, "add", keyword="RLHF")).startswith("Added “RLHF”")
        assert (await command(discord_fake, "remove", keyword="RLHF")) == "Removed “RLHF”."
    finally:
        service.send_signal(signal.SIGTERM)
        code, err = await finished(service)
    assert code == 0, err[-2000:]
    assert posted_ids(discord_fake) == []  # the preview is private: nothing posted yet

    code, err = await finished(await spawn(tmp_path, env, "digest"))
    assert code == 0, err[-2000:]
    assert posted_ids(discord_fake) == [BOTH.id]
