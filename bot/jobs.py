"""What each `papers-bot` command does, once settings are loaded: the composition root.

It imports no adapter: platforms are plugins (`bot.platforms`), looked up by the names the
subscriptions and settings use, and loaded only for the commands that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import TypeVar

from bot import bibtex, runtime
from bot import platforms as plugins
from bot.arxiv_source import ArxivError, ArxivSource
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner, RunReport, all_subscriptions
from bot.keywords import KeywordError, clean
from bot.models import Channel, Digest
from bot.platforms import Platform
from bot.progress import QUIET, Progress
from bot.publishing import Delivered, Publisher
from bot.service import Server, Service
from bot.settings import Settings, SettingsError, redacted_url
from bot.state import STORE_ERRORS, Store, StoreUnavailable, open_store
from bot.state.limits import MAX_SAVED
from bot.state.memory import MemoryStore
from bot.terminal import format_paper
from bot.weekly import WeeklyPoster

T = TypeVar("T")
log = logging.getLogger(__name__)
TERMINAL = Channel("console", "terminal")


class CliError(Exception):
    """A one-line reason to exit non-zero."""


def _memory_store(settings: Settings) -> MemoryStore:
    return MemoryStore(seen_retention=timedelta(days=settings.digest.seen_retention_days))


async def connect_store(settings: Settings) -> Store:
    store = open_store(
        settings.redis_url,
        prefix=settings.key_prefix,
        seen_retention=timedelta(days=settings.digest.seen_retention_days),
    )
    try:
        await store.ping()
    except StoreUnavailable:
        await store.close()
        raise CliError(
            f"cannot reach Redis at {redacted_url(settings.redis_url)}: start redis-server, "
            'or set redis_url = "memory://" for Markdown and console outputs only '
            "(it remembers nothing)"
        ) from None
    return store


async def eviction_problem(settings: Settings, store: Store) -> str | None:
    """Why the Redis can't be used as it is (it evicts keys), or None. A server that won't
    say (CONFIG disabled, as on some managed Redis) is logged and accepted."""
    policy = await store.eviction_policy()
    if policy is None:
        log.warning(
            "redis_policy_unknown: the server refuses CONFIG GET maxmemory-policy; make sure "
            "it is noeviction (an evicting Redis forgets what channels received)"
        )
        return None
    if policy == "noeviction" or settings.redis_allow_eviction:
        return None
    return (
        f"Redis evicts keys (maxmemory-policy {policy}): it would forget what channels "
        "received (papers posted again) or follow (no papers); set maxmemory-policy "
        "noeviction, or redis_allow_eviction = true to accept that"
    )


async def connect_checked(settings: Settings) -> Store:
    """`connect_store`, refusing a Redis that evicts keys (`eviction_problem`)."""
    store = await connect_store(settings)
    try:
        problem = await eviction_problem(settings, store)
    except BaseException:
        await store.close()
        raise
    if problem is not None:
        await store.close()
        raise CliError(problem)
    return store


def _refuse_memory_for_stateful(settings: Settings, loaded: Mapping[str, Platform]) -> None:
    """Channels that keep state need a store that outlives the process: with `memory://`
    every run would post the same papers again."""
    stateful = sorted(name for name, platform in loaded.items() if platform.keeps_state)
    if settings.redis_url.startswith("memory://") and stateful:
        raise CliError(
            f'redis_url = "memory://" remembers nothing, so every run would post the same '
            f"papers to {' and '.join(stateful)} again: set redis_url to a Redis server"
        )


def load_platforms(names: Collection[str]) -> dict[str, Platform]:
    """The named platforms; a name no installed plugin has is a CliError."""
    try:
        return plugins.load(names)
    except SettingsError as err:
        raise CliError(str(err)) from None


def installed_platforms(names: Collection[str]) -> dict[str, Platform]:
    """The named platforms that are installed; the others are logged (their channels, from
    chat, fail with "no … output is configured" until the plugin is back)."""
    available = plugins.installed()
    missing = sorted(set(names) - set(available))
    if missing:
        log.warning("platforms_missing names=%s: no installed plugin has them", missing)
    return load_platforms([n for n in names if n in available])


async def store_or_memory(settings: Settings) -> Store:
    try:
        return await connect_store(settings)
    except CliError as err:
        print(f"papers-bot: {err}; using an in-memory store for this run", file=sys.stderr)
        return _memory_store(settings)


class _Preview:
    """The console's output standing in for another platform (`--dry-run`)."""

    needs_recent = False

    def __init__(self, platform: str, console: Publisher, *, shows_everything: bool) -> None:
        self.platform = platform
        self.shows_everything = shows_everything
        self._console = console

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        await self._console.publish(digest, delivered)

    async def aclose(self) -> None:
        await self._console.aclose()


def publishers(
    settings: Settings, loaded: Mapping[str, Platform], *, dry_run: bool
) -> dict[str, Publisher]:
    """An output for every loaded platform that its settings enable (a channel of one that
    isn't gets "no … output is configured"); with `dry_run`, the console for all of them."""
    if dry_run:
        console = load_platforms(["console"])["console"].publisher(settings)
        return {
            name: _Preview(name, console, shows_everything=platform.shows_everything)
            for name, platform in loaded.items()
        }
    return {
        name: platform.publisher(settings)
        for name, platform in loaded.items()
        if platform.configured(settings)
    }


def _progress_shown(source: ArxivSource) -> AbstractContextManager[Progress]:
    """The live display (`bot.live`) when stderr is a terminal; else nothing is shown and
    the output is the log lines alone. Stderr, as the logs: stdout carries the digests
    (`papers-bot digest -k … > papers.txt` from a terminal still shows progress)."""
    if not sys.stderr.isatty():
        return nullcontext(QUIET)
    from bot.live import shown  # rich, only for a terminal

    return shown(lambda: source.request_count)


async def _closing(store: Store, work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    finally:
        await store.close()


def _report_exit(report: RunReport) -> int:
    failed_channels = [c for c in report.channels if c.error]
    print(
        f"papers-bot: {report.delivered} paper(s) delivered to {len(report.channels)} "
        f"channel(s) with {report.arxiv_requests} arXiv request(s)",
        file=sys.stderr,
    )
    if report.ok:
        return 0
    print(
        f"papers-bot: {len(report.failed_keywords)} keyword(s) and {len(failed_channels)} "
        "channel(s) failed; their papers will come next run (details in the log above)",
        file=sys.stderr,
    )
    return 1


async def digest(args: argparse.Namespace, settings: Settings) -> int:
    if args.keyword:
        try:
            keywords = [clean(k) for k in args.keyword]
        except KeywordError as err:
            raise CliError(str(err)) from None
        store: Store = _memory_store(settings)
        channels: Mapping[Channel, list[str]] = {TERMINAL: keywords}
        outputs = publishers(settings, load_platforms(["console"]), dry_run=False)
    else:
        from_file = load_platforms({sub.platform for sub in settings.subscriptions})
        if not args.dry_run:
            _refuse_memory_for_stateful(settings, from_file)
        store = await (store_or_memory(settings) if args.dry_run else connect_checked(settings))
        channels = await all_subscriptions(settings, store)
        if not channels:
            await store.close()
            print(
                "papers-bot: no subscriptions yet: add [[subscriptions]] to the settings "
                "file or /papers add in a channel",
                file=sys.stderr,
            )
            return 0
        loaded = installed_platforms({c.platform for c in channels})
        outputs = publishers(settings, loaded, dry_run=args.dry_run)
    source = ArxivSource(settings.arxiv, shared=store)  # with `run`'s replicas, if any
    try:
        with _progress_shown(source) as progress:
            runner = DigestRunner(settings, store, source, outputs, progress=progress)
            report = await _closing(store, lambda: runner.run(channels, dry_run=args.dry_run))
    finally:
        await _close_outputs(outputs)
    return _report_exit(report)


async def recent(args: argparse.Namespace, settings: Settings) -> int:
    store = await store_or_memory(settings)
    commands = Commands(settings, store, ArxivSource(settings.arxiv))
    ctx = CommandContext(channel=TERMINAL, user="cli")
    reply = await _closing(
        store, lambda: commands.guarded(ctx, lambda: commands.recent(ctx, args.keyword, args.n))
    )
    if not reply.ok:
        print(f"papers-bot: {reply.text}", file=sys.stderr)
        return 1
    print(reply.text)
    for paper in reply.papers:
        print(format_paper(paper))
    return 0


async def saved(args: argparse.Namespace, settings: Settings) -> int:
    """A user's saved papers, newest first, from the store the chat platforms write to;
    with `--bibtex`, as BibTeX on stdout (nothing else goes there)."""
    platform, _, user = args.user.strip().partition(":")
    if not platform or not user or any(c.isspace() for c in args.user.strip()):
        raise CliError("--user is PLATFORM:USER, like slack:U0123ABCD or discord:80351110224")
    store = await connect_store(settings)
    papers = await _closing(store, lambda: store.signals.saved(f"{platform}:{user}", MAX_SAVED))
    if not papers:
        print(f"papers-bot: {platform}:{user} has no saved papers", file=sys.stderr)
        return 0
    if args.bibtex:
        print(bibtex.document(papers), end="")
        return 0
    for paper in papers:
        print(format_paper(paper))
    return 0


async def markdown(args: argparse.Namespace, settings: Settings) -> int:
    """The file keeps its own state (each keyword's latest papers), so without a Redis this
    works from memory, as the seed project's daily job does."""
    try:
        keywords = [clean(k) for k in args.keyword]
    except KeywordError as err:
        raise CliError(str(err)) from None
    store = await store_or_memory(settings)
    outputs = publishers(settings, load_platforms(["markdown"]), dry_run=False)
    source = ArxivSource(settings.arxiv)
    channel = Channel("markdown", str(args.output))
    with _progress_shown(source) as progress:
        runner = DigestRunner(settings, store, source, outputs, progress=progress)
        report = await _closing(store, lambda: runner.run({channel: keywords}))
    if report.ok:
        print(f"papers-bot: wrote {args.output}", file=sys.stderr)
    return _report_exit(report)


async def check(args: argparse.Namespace, settings: Settings) -> int:
    problems = 0
    print(f"settings: ok ({len(settings.subscriptions)} subscription(s) in the file)")
    print(f"event loop: {runtime.running_loop_name()}")
    found = plugins.installed()
    print("platforms: " + ", ".join(f"{n} ({i.source})" for n, i in found.items()))
    missing = {sub.platform for sub in settings.subscriptions} - set(found)
    if missing:
        print(f"platforms: FAILED: subscriptions name {', '.join(sorted(missing))}, not installed")
        problems += 1
    try:
        store = await connect_store(settings)
    except CliError as err:
        print(f"redis: FAILED: {err}")
        problems += 1
    else:
        problems += await _check_redis(settings, store)
        await store.close()
    source = ArxivSource(settings.arxiv)
    try:
        await source.search('ti:"electron"', 1, ["check"])
        print(f"arxiv: ok ({redacted_url(settings.arxiv.api_url)})")
    except ArxivError as err:
        print(f"arxiv: FAILED: {err}")
        problems += 1
    try:
        listing = await source.listing()
        print(f"arxiv listing: ok ({listing.day}, {len(listing.items)} papers announced)")
    except ArxivError as err:
        print(f"arxiv listing: FAILED: {err}")
        problems += 1
    for name, platform in load_platforms(found).items():
        if platform.check is None:
            continue
        try:
            for line in await platform.check(settings):
                print(f"{name}: {line}")
        except Exception as err:
            print(f"{name}: FAILED: {err}")
            problems += 1
    return 1 if problems else 0


async def _check_redis(settings: Settings, store: Store) -> int:
    """`check`'s lines on the Redis it reached: its eviction policy and memory."""
    where = redacted_url(settings.redis_url)
    try:
        problem = await eviction_problem(settings, store)
        policy = await store.eviction_policy()
        memory = await store.memory()
    except STORE_ERRORS as err:
        print(f"redis: FAILED: {err}")
        return 1
    if problem is not None:
        print(f"redis: FAILED: {problem}")
        return 1
    said = "maxmemory-policy unknown (CONFIG is disabled): make sure it is noeviction"
    if policy is not None:
        said = f"maxmemory-policy {policy}"
    limit = f"maxmemory {memory.limit / 1e6:.0f} MB" if memory.limit else "no maxmemory"
    print(f"redis: ok ({where}; {said}; {memory.used / 1e6:.1f} MB used, {limit})")
    if memory.full:
        print("redis: FAILED: out of memory: Redis refuses writes (raise maxmemory)")
        return 1
    return 0


def chat_servers(settings: Settings, store: Store, commands: Commands) -> dict[str, Server]:
    """The command servers of the installed platforms that the settings enable; a
    half-configured one is an error."""
    servers: dict[str, Server] = {}
    for name, platform in load_platforms(plugins.installed()).items():
        if platform.serve is not None and platform.configured(settings):
            try:
                servers[name] = platform.serve(settings, store, commands)
            except SettingsError as err:
                raise CliError(str(err)) from None
    return servers


async def run(args: argparse.Namespace, settings: Settings) -> int:
    every = load_platforms(plugins.installed())
    enabled = {n: p for n, p in every.items() if p.serve is not None and p.configured(settings)}
    from_file = load_platforms({sub.platform for sub in settings.subscriptions})
    _refuse_memory_for_stateful(settings, {**from_file, **enabled})
    store = await connect_checked(settings)
    log.info("event_loop name=%r", runtime.running_loop_name())
    source = ArxivSource(settings.arxiv, shared=store)  # replicas share arXiv's interval
    commands = Commands(settings, store, source)
    try:
        servers = chat_servers(settings, store, commands)
        outputs = publishers(settings, every, dry_run=False)
    except (CliError, SettingsError):
        await store.close()
        raise
    if not servers:
        log.warning(
            "no chat platform is configured: only the schedule runs "
            "(the settings file's subscriptions)"
        )
    runner = DigestRunner(settings, store, source, outputs)
    weekly = WeeklyPoster(settings, store, outputs)
    service = Service(settings, store, runner, servers, weekly=weekly)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await service.run(stop)
    finally:
        await _close_outputs(outputs)
        await store.close()
    return 0


async def _close_outputs(outputs: Mapping[str, Publisher]) -> None:
    for output in outputs.values():
        close = getattr(output, "aclose", None)  # None: a plugin's from before `aclose`
        if close is not None:
            await close()


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    jobs: dict[str, Callable[[argparse.Namespace, Settings], Awaitable[int]]] = {
        "digest": digest,
        "recent": recent,
        "saved": saved,
        "markdown": markdown,
        "check": check,
        "run": run,
    }
    return await jobs[args.command](args, settings)
