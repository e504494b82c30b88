"""The event loop and the garbage collector's settings that every `papers-bot` command runs
with: uvloop where it is installed (it is a dependency except on Windows), asyncio's own
loop otherwise, or when `PAPERS_BOT_EVENT_LOOP=asyncio` asks for it.

Measured in BENCHMARKS.md (figures 2 and 3): the bot's CPU is mostly Python-level library
code (slack_sdk, aiohttp, redis-py), of which the loop is a small part; with the collector's
default thresholds (700 allocations) a digest to 1000 channels spent a fifth to a quarter of
its CPU in collections of the tasks, futures and buffers it holds while messages are in
flight (`gc.callbacks`, 2026-12-02).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Coroutine
from importlib import import_module
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "PAPERS_BOT_EVENT_LOOP"
"""`asyncio` forces asyncio's own loop; anything else (or unset) prefers uvloop."""

GC_THRESHOLDS = (20_000, 20, 20)
"""Allocations before a young collection, and young (then middle) collections before the
next older one. Python's defaults (700, 10, 10) collect the young generation after every
700 allocations, which a burst of 200 commands or a digest to 1000 channels reaches every
few hundred microseconds."""

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(choice: str | None = None) -> tuple[str, LoopFactory]:
    """The loop to run on and its name (`uvloop 0.21.0`, `asyncio`): uvloop when it can be
    imported and `choice` (default: the `PAPERS_BOT_EVENT_LOOP` variable) isn't `asyncio`."""
    choice = os.environ.get(ENV, "") if choice is None else choice
    if choice.strip().lower() != "asyncio":
        try:
            uvloop = import_module("uvloop")
        except ImportError:
            pass
        else:
            factory: LoopFactory = uvloop.new_event_loop
            return f"uvloop {getattr(uvloop, '__version__', '?')}", factory
    return "asyncio", asyncio.new_event_loop


def loop_name() -> str:
    """What `run` will run on (`papers-bot check` says it)."""
    return loop_factory()[0]


def running_loop_name() -> str:
    """What the running loop is (`papers-bot run` logs it at start-up)."""
    module = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    if module == "uvloop":
        return f"uvloop {getattr(import_module('uvloop'), '__version__', '?')}"
    return "asyncio" if module == "asyncio" else module


_frozen = False


def tune_gc() -> None:
    """Objects made so far (modules, settings) move to the collector's permanent generation,
    once a process, and collections come less often; reference counting frees most objects
    anyway, the collector is only for cycles."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
    gc.set_threshold(*GC_THRESHOLDS)


def run(main: Coroutine[Any, Any, T], *, choice: str | None = None) -> T:
    """`asyncio.run(main)` on the chosen loop, with the collector tuned."""
    _, factory = loop_factory(choice)
    tune_gc()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
