"""Two `papers-bot run` processes on one Redis, or on a Redis Cluster: the scheduled digest is
posted once."""

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.cluster import RedisCluster, running_cluster
from tests.conftest import RedisServer, free_port
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.discord_api import CHANNEL_ID, TOKEN, FakeDiscord

PAPERS = 12


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    now = datetime.now(UTC)
    papers = [
        make_paper(n, title=f"Reward model {n}", published=now - timedelta(hours=n))
        for n in range(1, PAPERS + 1)
    ]
    with FakeArxiv(papers) as fake:
        yield fake


async def healthy(port: int) -> dict[str, object] | None:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return dict(await response.json()) if response.status == 200 else None
    except aiohttp.ClientError:
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    yield from running_cluster(tmp_path_factory)


@pytest.fixture(params=["redis", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """One Redis server, or any node of a Redis Cluster (3 masters, 3 replicas)."""
    if request.param == "cluster":
        return str(request.getfixturevalue("cluster").url(0))
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


async def test_two_replicas_started_together_post_the_digest_once(
    tmp_path: Path, redis_url: str, arxiv: FakeArxiv, discord_fake: FakeDiscord
) -> None:
    # every day, two hours ago: the latest slot is in the past and the next one far enough
    # away, so each replica tries the catch-up run as it starts
    slot = (datetime.now(UTC) - timedelta(hours=2)).strftime("%H:%M")
    (tmp_path / "settings.toml").write_text(
        f'[[subscriptions]]\nplatform = "discord"\nchannel = "{CHANNEL_ID}"\n'
        'keywords = ["reward model"]\n'
        f'[schedule]\ntime = "{slot}"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
    )
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAPERS_BOT_")},
        "PAPERS_BOT_REDIS_URL": redis_url,
        "PAPERS_BOT_KEY_PREFIX": f"replicas-{uuid.uuid4().hex[:8]}",
        "PAPERS_BOT_ARXIV__API_URL": arxiv.url,
        "PAPERS_BOT_ARXIV__RSS_URL": arxiv.rss_url,
        "PAPERS_BOT_ARXIV__REQUEST_INTERVAL": "0",
        "PAPERS_BOT_DIGEST__FIRST_RUN_PAPERS": "100",
        "PAPERS_BOT_DISCORD__TOKEN": TOKEN,
        "PAPERS_BOT_DISCORD__API_URL": discord_fake.api_url,
        "PAPERS_BOT_DISCORD__GATEWAY_URL": discord_fake.gateway_url,
        "PAPERS_BOT_SERVICE__HEALTH_HOST": "127.0.0.1",
    }
    ports = [free_port(), free_port()]
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path,
            env={**base, "PAPERS_BOT_SERVICE__HEALTH_PORT": str(port)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for port in ports
    ]
    try:
        async with asyncio.timeout(30):
            # next_run is set once a replica is past its start-up (catch-up) run
            while True:
                states = [await healthy(port) for port in ports]
                if all(s and s["next_run"] for s in states):
                    break
                assert all(r.returncode is None for r in replicas)
                await asyncio.sleep(0.1)
        assert sum(bool(s and s["last_run"]) for s in states) == 1
        assert all(s and s["adapters"] == {"discord": "running"} for s in states)
        urls = [e["url"] for m in discord_fake.posted(CHANNEL_ID) for e in m.embeds]
        assert len(urls) == len(set(urls)) == PAPERS
    finally:
        for replica in replicas:
            if replica.returncode is None:
                replica.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(r.wait(), 15) for r in replicas]
    assert codes == [0, 0], [(await r.stderr.read()).decode()[-2000:] for r in replicas if r.stderr]
