"""`bot.runtime`: the loop `papers-bot` runs on (uvloop where installed, asyncio's otherwise
or when asked) and the collector's settings."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from bot import runtime


@pytest.fixture(autouse=True)
def collector_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`runtime.run` tunes this process's collector: give the test session its own back."""
    before = gc.get_threshold()
    monkeypatch.setattr(runtime, "_frozen", False)
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


async def _running() -> str:
    await asyncio.sleep(0)
    return runtime.running_loop_name()


def test_uvloop_is_chosen_when_installed() -> None:
    pytest.importorskip("uvloop")
    name, _ = runtime.loop_factory("")
    assert name.startswith("uvloop ")
    assert runtime.run(_running()).startswith("uvloop ")


def test_asyncio_loop_when_uvloop_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_uvloop(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(runtime, "import_module", no_uvloop)
    name, factory = runtime.loop_factory("")
    assert name == "asyncio"
    assert factory is asyncio.new_event_loop
    assert runtime.run(_running()) == "asyncio"


def test_asyncio_loop_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.ENV, "asyncio")
    assert runtime.loop_name() == "asyncio"
    assert runtime.run(_running()) == "asyncio"


def test_run_returns_the_result_and_tunes_the_collector() -> None:
    async def answer() -> int:
        return 42

    assert runtime.run(answer()) == 42
    assert gc.get_threshold() == runtime.GC_THRESHOLDS
    assert gc.get_freeze_count() > 0


def test_start_up_objects_are_frozen_once_a_process() -> None:
    runtime.tune_gc()
    frozen = gc.get_freeze_count()
    garbage = [[n] for n in range(1000)]
    runtime.tune_gc()
    assert gc.get_freeze_count() == frozen  # later runs in one process freeze nothing more
    del garbage
