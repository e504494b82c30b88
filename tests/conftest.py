"""Shared fixtures: a real redis-server on loopback (which binary: tests/redis_binary.py), the
corpus folder, a guard that fails any test which tries to leave 127.0.0.1, and one that fails
any test whose captured output (stdout, stderr, log records at INFO and above) shows a token
or secret."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from bot.state.redis import RedisStore
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.redis_binary import NoRedisServer, find_binaries

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


class NetworkGuardError(AssertionError):
    pass


def _is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback(host):
        raise NetworkGuardError(f"test tried to connect to non-loopback address {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_loopback(name):
        raise NetworkGuardError(f"test tried to resolve non-loopback host {name!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    # Capture what the bot logs in production (INFO), so the secret check below sees it.
    if config.getoption("log_level") is None:
        config.option.log_level = "INFO"


def pytest_report_header() -> str:
    try:
        binaries = find_binaries()
    except NoRedisServer as err:
        return f"redis: {err}"
    return f"redis: {binaries.server} (from {binaries.source}), cli: {binaries.cli}"


KNOWN_SECRETS = (
    "xoxb-fake-bot-token",  # FakeSlack's tokens
    "xapp-fake-app-token",
    "fake-discord-bot-token",  # FakeDiscord's
    "signing-secret-for-tests",
    "xoxb-wrong-one",
    "xox-wrong",
    "xoxb-revoked-token",
    "xoxb-very-secret",
    "hunter2-redis-password",
)
"""Every token, signing secret and password the tests hand the bot."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A test that passes while a secret shows in its captured output fails. Output that a
    test read itself (capsys, capfd) is its own to check; test_cli_chat.py does."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    leaked = sorted(
        {
            f"{secret!r} in {title!r}"
            for title, content in report.sections
            if title.endswith(report.when)  # each phase checks its own output
            for secret in KNOWN_SECRETS
            if secret in content
        }
    )
    if leaked and report.passed:
        report.outcome = "failed"
        report.longrepr = "a secret reached the captured output: " + ", ".join(leaked)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A real redis-server process on a free loopback port; can be stopped and restarted."""

    def __init__(
        self,
        workdir: Path,
        *,
        persist: bool = False,
        binary: str | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.binary = binary or find_binaries().server
        self.workdir = workdir
        self.persist = persist
        """Keep data across stop() and start() (append-only file, as docker-compose.yml)."""
        self.args = tuple(args)
        """More of redis-server's options, e.g. ("--maxmemory", "8mb")."""
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persist else "no",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.01)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def redis_store(redis_client: aioredis.Redis) -> RedisStore:
    return RedisStore(redis_client, prefix="test")


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is absent: {CORPUS} (it sits beside the checkout)")
    return CORPUS


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API on loopback (modules that need other options define their own)."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    """The fake Discord REST API and gateway on loopback."""
    async with FakeDiscord() as fake:
        yield fake
