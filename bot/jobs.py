"""What each `papers-bot` command does, once settings are loaded.

With cli.py, the composition root: the only core module that imports adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from adapters.console import ConsolePublisher, format_paper
from adapters.markdown import MarkdownPublisher
from bot.arxiv_source import ArxivError, ArxivSource
from bot.cli import CliError
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner, RunReport, all_subscriptions
from bot.keywords import KeywordError, clean
from bot.models import Channel
from bot.publishing import Publisher
from bot.service import Server, Service
from bot.settings import Settings
from bot.store import MemoryStore, Store, StoreUnavailable, open_store

T = TypeVar("T")
log = logging.getLogger(__name__)
TERMINAL = Channel("console", "terminal")


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


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
            f"cannot reach Redis at {redacted(settings.redis_url)}: start redis-server, "
            'or set redis_url = "memory://" for Markdown and console outputs only '
            "(it remembers nothing)"
        ) from None
    return store


CHAT_PLATFORMS = frozenset({"slack", "discord"})


def _refuse_memory_for_chat(settings: Settings, platforms: Collection[str]) -> None:
    """Chat channels need a store that outlives the process: with `memory://` every run
    would post the same papers again."""
    chat = sorted(CHAT_PLATFORMS.intersection(platforms))
    if settings.redis_url.startswith("memory://") and chat:
        raise CliError(
            f'redis_url = "memory://" remembers nothing, so every run would post the same '
            f"papers to {' and '.join(chat)} again: set redis_url to a Redis server"
        )


async def store_or_memory(settings: Settings) -> Store:
    try:
        return await connect_store(settings)
    except CliError as err:
        print(f"papers-bot: {err}; using an in-memory store for this run", file=sys.stderr)
        return _memory_store(settings)


def publishers(settings: Settings, platforms: set[str], *, dry_run: bool) -> dict[str, Publisher]:
    if dry_run:
        return {p: ConsolePublisher(platform=p) for p in platforms}
    made: dict[str, Publisher] = {
        "console": ConsolePublisher(),
        "markdown": MarkdownPublisher(kept=settings.arxiv.max_results),
    }
    if "slack" in platforms and settings.slack.bot_token is not None:
        from adapters.slack_app import publisher_from_settings as slack_publisher

        made["slack"] = slack_publisher(settings)
    if "discord" in platforms and settings.discord.token is not None:
        from adapters.discord_app import publisher_from_settings as discord_publisher

        made["discord"] = discord_publisher(settings)
    return made


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    print(
        f"\rarXiv [{'#' * filled}{'.' * (width - filled)}] {done}/{total} queries",
        end=end,
        file=sys.stderr,
        flush=True,
    )


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
    progress = _progress if sys.stdout.isatty() else None
    if args.keyword:
        try:
            keywords = [clean(k) for k in args.keyword]
        except KeywordError as err:
            raise CliError(str(err)) from None
        store: Store = _memory_store(settings)
        channels: Mapping[Channel, list[str]] = {TERMINAL: keywords}
        outputs: dict[str, Publisher] = {"console": ConsolePublisher()}
    else:
        if not args.dry_run:
            _refuse_memory_for_chat(settings, {sub.platform for sub in settings.subscriptions})
        store = await (store_or_memory(settings) if args.dry_run else connect_store(settings))
        channels = await all_subscriptions(settings, store)
        if not channels:
            await store.close()
            print(
                "papers-bot: no subscriptions yet: add [[subscriptions]] to the settings "
                "file or /papers add in a channel",
                file=sys.stderr,
            )
            return 0
        outputs = publishers(settings, {c.platform for c in channels}, dry_run=args.dry_run)
    source = ArxivSource(settings.arxiv, shared=store)  # with `run`'s replicas, if any
    runner = DigestRunner(settings, store, source, outputs, progress=progress)
    try:
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


async def markdown(args: argparse.Namespace, settings: Settings) -> int:
    try:
        keywords = [clean(k) for k in args.keyword]
    except KeywordError as err:
        raise CliError(str(err)) from None
    store = await connect_store(settings)
    outputs: dict[str, Publisher] = {"markdown": MarkdownPublisher(kept=settings.arxiv.max_results)}
    progress = _progress if sys.stdout.isatty() else None
    runner = DigestRunner(settings, store, ArxivSource(settings.arxiv), outputs, progress=progress)
    channel = Channel("markdown", str(args.output))
    report = await _closing(store, lambda: runner.run({channel: keywords}))
    if report.ok:
        print(f"papers-bot: wrote {args.output}", file=sys.stderr)
    return _report_exit(report)


async def check(args: argparse.Namespace, settings: Settings) -> int:
    problems = 0
    print(f"settings: ok ({len(settings.subscriptions)} subscription(s) in the file)")
    try:
        store = await connect_store(settings)
    except CliError as err:
        print(f"redis: FAILED: {err}")
        problems += 1
    else:
        print(f"redis: ok ({redacted(settings.redis_url)})")
        await store.close()
    source = ArxivSource(settings.arxiv)
    try:
        await source.search('ti:"electron"', 1, ["check"])
        print(f"arxiv: ok ({settings.arxiv.api_url})")
    except ArxivError as err:
        print(f"arxiv: FAILED: {err}")
        problems += 1
    try:
        listing = await source.listing()
        print(f"arxiv listing: ok ({listing.day}, {len(listing.items)} papers announced)")
    except ArxivError as err:
        print(f"arxiv listing: FAILED: {err}")
        problems += 1
    problems += await _check_slack(settings)
    problems += await _check_discord(settings)
    return 1 if problems else 0


async def _check_slack(settings: Settings) -> int:
    if settings.slack.bot_token is None:
        print("slack: not configured")
        return 0
    from adapters.slack_app import verify

    try:
        print(f"slack: ok ({settings.slack.mode} mode, {await verify(settings)})")
    except Exception as err:
        print(f"slack: FAILED: {err}")
        return 1
    return 0


async def _check_discord(settings: Settings) -> int:
    if settings.discord.token is None:
        if settings.discord.application_id is not None:
            from adapters.discord_app import invite_url

            print(f"discord invite: {invite_url(settings.discord.application_id)}")
        print("discord: not configured")
        return 0
    from adapters.discord_app import identify

    try:
        bot = await identify(settings)
    except Exception as err:
        print(f"discord: FAILED: {err}")
        return 1
    print(f"discord: ok (logged in as {bot.name})")
    print(f"discord invite: {bot.invite_url}")
    return 0


def chat_servers(settings: Settings, store: Store, commands: Commands) -> dict[str, Server]:
    """The chat adapters whose settings are present; a half-configured one is an error."""
    slack, discord = settings.slack, settings.discord
    servers: dict[str, Server] = {}
    if slack.bot_token is not None:
        needed = "app_token" if slack.mode == "socket" else "signing_secret"
        if getattr(slack, needed) is None:
            raise CliError(
                f"slack.bot_token is set but slack.{needed} is missing "
                f"(needed in {slack.mode} mode)"
            )
        from adapters.slack_app import serve as serve_slack
        from adapters.slack_app import signature_claims

        first_use = signature_claims(store)
        servers["slack"] = lambda: serve_slack(settings, commands, first_use=first_use)
    elif slack.app_token is not None or slack.signing_secret is not None:
        raise CliError("slack.bot_token is missing (the other Slack settings are set)")
    if discord.token is not None:
        from adapters.discord_app import interaction_claims
        from adapters.discord_app import serve as serve_discord

        claim = interaction_claims(store)
        servers["discord"] = lambda: serve_discord(settings, commands, claim=claim)
    return servers


async def run(args: argparse.Namespace, settings: Settings) -> int:
    platforms: set[str] = {sub.platform for sub in settings.subscriptions}
    if settings.slack.bot_token is not None:
        platforms.add("slack")
    if settings.discord.token is not None:
        platforms.add("discord")
    _refuse_memory_for_chat(settings, platforms)
    store = await connect_store(settings)
    source = ArxivSource(settings.arxiv, shared=store)  # replicas share arXiv's interval
    commands = Commands(settings, store, source)
    try:
        servers = chat_servers(settings, store, commands)
    except CliError:
        await store.close()
        raise
    if not servers:
        log.warning(
            "no Slack or Discord settings: only the schedule runs "
            "(Markdown and console subscriptions)"
        )
    outputs = publishers(settings, {"slack", "discord"}, dry_run=False)
    runner = DigestRunner(settings, store, source, outputs)
    service = Service(settings, store, runner, servers)
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
        close = getattr(output, "aclose", None) or getattr(output, "close", None)
        if close is not None:
            await close()


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    jobs: dict[str, Callable[[argparse.Namespace, Settings], Awaitable[int]]] = {
        "digest": digest,
        "recent": recent,
        "markdown": markdown,
        "check": check,
        "run": run,
    }
    return await jobs[args.command](args, settings)
