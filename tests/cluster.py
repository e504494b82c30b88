"""A real Redis Cluster on loopback for tests: 3 masters and 3 replicas, each its own
redis-server process with cluster mode on, joined by `redis-cli --cluster create` (the
server and cli of tests/redis_binary.py: Valkey's `valkey-cli` does the same).

    cluster = RedisCluster(tmp_path)
    cluster.start()          # about two seconds; raises ClusterUnsupported when it can't be
    cluster.url(0)           # redis://127.0.0.1:PORT/0 of one node
    cluster.stop()

`ClusterUnsupported` says why this machine can't run one (no redis-cli, or a redis-server
built without cluster support): a fixture skips with that reason.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port
from tests.redis_binary import find_binaries

MASTERS = 3
NODES = 2 * MASTERS  # one replica per master
NODE_TIMEOUT_MS = 2000
MANUAL_FAILOVER_TIMEOUT = 6.0
"""Seconds after which a replica gives up a `CLUSTER FAILOVER` (5 s in redis-server)."""
READY_WITHIN = 30.0
"""Seconds for processes to answer and for the cluster to agree it is whole."""


class ClusterUnsupported(RuntimeError):
    """This machine can't run a Redis Cluster; the message says why."""


@dataclass(frozen=True, slots=True)
class Node:
    port: int
    bus_port: int


class RedisCluster:
    """Six redis-server processes (no persistence) forming one cluster; `stop` ends them."""

    def __init__(self, workdir: Path) -> None:
        binaries = find_binaries()
        if binaries.cli is None:
            raise ClusterUnsupported(f"no redis-cli or valkey-cli to go with {binaries.server}")
        self.server_binary, self.cli_binary = binaries.server, binaries.cli
        self.workdir = workdir
        self.nodes = [Node(free_port(), free_port()) for _ in range(NODES)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def url(self, index: int = 0) -> str:
        return f"redis://127.0.0.1:{self.nodes[index].port}/0"

    def client(self, port: int) -> redis.Redis:
        """A plain (not cluster-aware) synchronous client to one node."""
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        try:
            for node in self.nodes:
                self.processes.append(self._spawn(node))
            for node, process in zip(self.nodes, self.processes, strict=True):
                self._wait_for_ping(node.port, process)
            self._create()
            self.wait_until_ok()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    # -- topology, as the nodes see it -----------------------------------------------------

    def roles(self) -> dict[int, str]:
        """Port → `master` or `slave`, asked of each node itself."""
        roles = {}
        for node in self.nodes:
            with self.client(node.port) as c:
                roles[node.port] = str(c.info("replication")["role"])
        return roles

    def replica_of(self, master_port: int) -> int:
        """The port of a replica whose master listens on `master_port`."""
        for node in self.nodes:
            with self.client(node.port) as c:
                info = c.info("replication")
            if info["role"] == "slave" and int(info["master_port"]) == master_port:
                return node.port
        raise LookupError(f"no replica follows 127.0.0.1:{master_port}")

    def master_of_key(self, key: str) -> int:
        """The port of the master serving `key`'s hash slot now."""
        with self.client(self.nodes[0].port) as c:
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise LookupError(f"slot of {key!r} is not served")

    def fail_over(self, replica_port: int, timeout: float = READY_WITHIN) -> None:
        """`CLUSTER FAILOVER` on the replica at `replica_port`, until it says it is a master.
        Asked again when the manual failover timed out (after 5 s, as when its master had
        not yet learnt of it)."""
        deadline = time.monotonic() + timeout
        with self.client(replica_port) as c:
            while True:
                c.execute_command("CLUSTER", "FAILOVER")
                retry_at = time.monotonic() + MANUAL_FAILOVER_TIMEOUT
                while c.info("replication")["role"] != "master":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"127.0.0.1:{replica_port} did not take over")
                    if time.monotonic() > retry_at:
                        break
                    time.sleep(0.02)
                else:
                    return

    def crash(self, port: int) -> None:
        """SIGKILL the master on `port`, its replica takes over after the node timeout. Writes
        are paused and the replica caught up first, so the crash loses no acknowledged write
        (Redis replicates asynchronously: a real crash may lose the last ones)."""
        replica = self.replica_of(port)
        with self.client(port) as c:
            c.execute_command("CLIENT", "PAUSE", int(READY_WITHIN * 1000), "WRITE")
            written = int(c.info("replication")["master_repl_offset"])
        with self.client(replica) as c:
            while int(c.info("replication")["slave_repl_offset"]) < written:
                time.sleep(0.01)
        index = self._index(port)
        self.processes[index].kill()
        self.processes[index].wait()

    def restart(self, port: int) -> None:
        """Start the node on `port` again; its nodes.conf makes it rejoin (as a replica when
        another node took over its slots)."""
        index = self._index(port)
        self.processes[index] = self._spawn(self.nodes[index])
        self._wait_for_ping(port, self.processes[index])

    def wait_for_master(self, port: int, timeout: float = READY_WITHIN) -> None:
        """Until the node on `port` says it is a master."""
        deadline = time.monotonic() + timeout
        with self.client(port) as c:
            while c.info("replication")["role"] != "master":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"127.0.0.1:{port} did not take over")
                time.sleep(0.02)

    def wait_until_ok(self, timeout: float = READY_WITHIN) -> None:
        """Until every node says `cluster_state:ok`, all six agree on who is whose replica
        and every replica is linked to its master (a manual failover needs all that)."""
        deadline = time.monotonic() + timeout
        while not self._settled():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster did not settle within {timeout:g}s")
            time.sleep(0.05)

    # -- internals -------------------------------------------------------------------------

    def _index(self, port: int) -> int:
        return next(n for n, node in enumerate(self.nodes) if node.port == port)

    def _spawn(self, node: Node) -> subprocess.Popen[bytes]:
        options = {
            "port": node.port,
            "cluster-enabled": "yes",
            "cluster-port": node.bus_port,
            "cluster-config-file": f"nodes-{node.port}.conf",
            "cluster-node-timeout": NODE_TIMEOUT_MS,
            "save": "",
            "appendonly": "no",
            "bind": "127.0.0.1",
            "dir": self.workdir,
            "logfile": f"node-{node.port}.log",  # in `dir`, for when a test fails
            "daemonize": "no",
            # A replica's first sync starts at once, not after the default 5 s wait.
            "repl-diskless-sync-delay": 0,
        }
        arguments = [str(part) for name, value in options.items() for part in (f"--{name}", value)]
        return subprocess.Popen(
            [self.server_binary, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def _wait_for_ping(self, port: int, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_WITHIN
        with redis.Redis(port=port, socket_connect_timeout=0.2) as c:
            while True:
                if process.poll() is not None:  # it refused the options
                    assert process.stderr is not None
                    said = process.stderr.read().decode(errors="replace").strip()
                    raise ClusterUnsupported(f"redis-server won't run a cluster node: {said}")
                try:
                    c.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server on {port} did not start") from None
                    time.sleep(0.01)

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        replicas = ["--cluster-replicas", str(NODES // MASTERS - 1)]
        done = subprocess.run(
            [self.cli_binary, "--cluster", "create", *addresses, *replicas, "--cluster-yes"],
            capture_output=True,
            timeout=READY_WITHIN,
            check=False,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"redis-cli --cluster create failed:\n{output}")

    def _settled(self) -> bool:
        try:
            views = []
            for node in self.nodes:
                with self.client(node.port) as c:
                    info = c.cluster("info")
                    replication = c.info("replication")
                    views.append(_topology(c.execute_command("CLUSTER", "NODES")))
                if info["cluster_state"] != "ok":
                    return False
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
        except redis.RedisError:
            return False
        first = views[0]
        return first is not None and len(first) == NODES and all(v == first for v in views)


def _topology(nodes: str) -> dict[str, tuple[str, str]] | None:
    """`CLUSTER NODES` as node id → (role, its master's id); None while a node is suspected
    failing, handshaking or disconnected in this view."""
    topology = {}
    for line in nodes.splitlines():
        node_id, _, flags, master, *_, link = line.split()[:8]
        flag_set = set(flags.split(","))
        if flag_set & {"fail", "fail?", "handshake", "noaddr"} or link != "connected":
            return None
        topology[node_id] = ("master" if "master" in flag_set else "replica", master)
    return topology


def running_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A module's fixture: `yield from running_cluster(tmp_path_factory)` (skips with the
    reason when this machine can't run a cluster)."""
    try:
        running = RedisCluster(tmp_path_factory.mktemp("cluster"))
        running.start()
    except ClusterUnsupported as err:
        pytest.skip(f"no Redis Cluster on this machine: {err}")
    yield running
    running.stop()
