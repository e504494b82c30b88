"""Real `papers-bot` processes for end-to-end tests: the environment that points one at the
fakes and a redis-server, and the commands to start one."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.fakes.arxiv_server import FakeArxiv
from tests.fakes.discord_api import GUILD_ID, TOKEN, FakeDiscord


def bot_env(redis_url: str, arxiv: FakeArxiv, discord: FakeDiscord, **more: str) -> dict[str, str]:
    """The process's environment: nothing of the caller's `PAPERS_BOT_*`, the fakes', and
    `more` (`SERVICE__HEALTH_PORT="8081"` becomes `PAPERS_BOT_SERVICE__HEALTH_PORT`)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("PAPERS_BOT_")},
        "PAPERS_BOT_REDIS_URL": redis_url,
        "PAPERS_BOT_ARXIV__API_URL": arxiv.url,
        "PAPERS_BOT_ARXIV__RSS_URL": arxiv.rss_url,
        "PAPERS_BOT_ARXIV__REQUEST_INTERVAL": "0",
        "PAPERS_BOT_ARXIV__MAX_RETRIES": "0",
        "PAPERS_BOT_DISCORD__TOKEN": TOKEN,
        "PAPERS_BOT_DISCORD__API_URL": discord.api_url,
        "PAPERS_BOT_DISCORD__GATEWAY_URL": discord.gateway_url,
        "PAPERS_BOT_DISCORD__GUILD_IDS": f"[{GUILD_ID}]",
        "PAPERS_BOT_SERVICE__HEALTH_HOST": "127.0.0.1",
        **{f"PAPERS_BOT_{k}": v for k, v in more.items()},
    }


async def spawn(cwd: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """`papers-bot ARGS` in `cwd`; its stderr is piped, its stdout dropped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process, within: float = 30) -> tuple[int, str]:
    """Its exit code and stderr, once it ended (killed after `within` seconds)."""
    assert process.stderr is not None
    reader = asyncio.ensure_future(process.stderr.read())
    try:
        await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
    err = await reader
    assert process.returncode is not None
    return process.returncode, err.decode()


async def health(port: int) -> tuple[int, dict[str, object]] | None:
    """`/healthz`'s status and body, or None while nothing answers."""
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status, dict(await response.json())
    except aiohttp.ClientError:
        return None
