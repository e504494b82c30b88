"""`papers-bot digest` and `check` against the fake Slack and Discord: the whole path from
settings to messages, and no token in any output."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import RedisServer
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, TOKEN, FakeDiscord
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    now = datetime.now(UTC)
    papers = [
        make_paper(
            n, title=f"Reward model <!channel> @everyone {n}", published=now - timedelta(hours=n)
        )
        for n in range(1, 4)
    ]
    with FakeArxiv(papers) as fake:
        yield fake


@pytest.fixture(autouse=True)
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    arxiv: FakeArxiv,
    redis_server: RedisServer,
    slack: FakeSlack,
    discord_fake: FakeDiscord,
) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PAPERS_BOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    values = {
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": f"chat-{tmp_path.name}",
        "ARXIV__API_URL": arxiv.url,
        "ARXIV__RSS_URL": arxiv.rss_url,
        "ARXIV__REQUEST_INTERVAL": "0",
        "SLACK__BOT_TOKEN": slack.bot_token,
        "SLACK__APP_TOKEN": slack.app_token,
        "SLACK__API_URL": slack.api_url,
        "DISCORD__TOKEN": TOKEN,
        "DISCORD__API_URL": discord_fake.api_url,
        "DISCORD__GATEWAY_URL": discord_fake.gateway_url,
    }
    for key, value in values.items():
        monkeypatch.setenv(f"PAPERS_BOT_{key}", value)
    (tmp_path / "settings.toml").write_text(
        '[[subscriptions]]\nplatform = "slack"\nchannel = "C0PAPERS"\nkeywords = ["reward model"]\n'
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL_ID}"\n'
        'keywords = ["reward model"]\n'
    )


async def run_cli(*argv: str) -> int:
    # main() runs its own event loop; the fakes serve from this one.
    return await asyncio.to_thread(main, list(argv))


async def test_one_digest_reaches_both_platforms_once(
    slack: FakeSlack, discord_fake: FakeDiscord, capfd: pytest.CaptureFixture[str]
) -> None:
    assert await run_cli("digest") == 0
    assert await run_cli("digest") == 0
    posts = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert len(posts) == 2  # the top message, then one thread message with the papers
    assert posts[1].thread_ts == posts[0].ts
    assert "<!channel>" not in str(posts[1].blocks) and "&lt;!channel&gt;" in str(posts[1].blocks)
    embeds = [e for m in discord_fake.posted(CHANNEL_ID) for e in m.embeds]
    assert len(embeds) == 3
    assert all(m.allowed_mentions == {"parse": []} for m in discord_fake.posted(CHANNEL_ID))
    out, err = capfd.readouterr()
    assert slack.bot_token not in out + err and TOKEN not in out + err


async def test_check_verifies_both_tokens_without_printing_them(
    capfd: pytest.CaptureFixture[str], slack: FakeSlack
) -> None:
    assert await run_cli("check") == 0
    out, err = capfd.readouterr()
    assert "slack: ok (socket mode" in out
    assert "discord: ok (logged in as" in out and "discord: invite https://" in out
    for secret in (slack.bot_token, slack.app_token, TOKEN):
        assert secret not in out + err


async def test_check_reports_a_refused_slack_token(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAPERS_BOT_SLACK__BOT_TOKEN", "xoxb-wrong-one")
    assert await run_cli("check") == 1
    out, err = capfd.readouterr()
    assert "slack: FAILED" in out and "xoxb-wrong-one" not in out + err


async def test_run_refuses_a_half_configured_slack(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PAPERS_BOT_SLACK__APP_TOKEN")
    assert await run_cli("run") == 2
    err = capfd.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "papers-bot: slack.bot_token is set but slack.app_token is missing (needed in socket mode)"
    )
