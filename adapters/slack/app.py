"""Slack: `/papers` through a bolt `AsyncApp`, digests through the Web API.

A thin layer over the core: the command handler turns a slash command into a
`CommandContext` and renders the core's `Reply`; `SlackPublisher` posts a rendered digest.
Tokens are `SecretStr` and are unwrapped only where they are handed to the library.

Slack has no idempotency key, so every digest message carries its own in its `metadata`
(derived from the channel and the day, or from the papers it carries). When the answer to a
post is lost, the publisher looks the key up in the channel before sending again, and a run
that finds the day's top message already posted continues its thread. Only messages this
bot posted (its `bot_id`, from `auth.test`) count: another app can copy the metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack import buttons as slack_buttons
from adapters.slack.acks import ACKED_HERE, AcksFirst
from adapters.slack.files import send_file
from adapters.slack.render import (
    SlackMessage,
    render_reply,
    thread_messages,
    top_message,
    unescape,
    weekly_messages,
)
from bot import metrics
from bot.claims import Claim, StoreClaims, answers_here
from bot.commands import SLOW_VERBS, CommandContext, Commands, Reply, verb_of
from bot.models import Channel, Digest
from bot.progress import reporting
from bot.publishing import ChannelPacer, Delivered, DeliveryError, message_key
from bot.settings import Settings, SettingsError, SlackSettings, secret
from bot.state import Store, keys
from bot.weekly import WeeklyPost

log = logging.getLogger(__name__)

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
MESSAGE_INTERVAL = 1.0
"""Seconds between two messages to one channel: chat.postMessage allows about one a second."""
RATE_LIMIT_RETRIES = 5
CONNECTIONS = 100
"""Kept-alive connections a digest posts through: about 500 posts a second on a 0.2 s round
trip, more than one event loop renders, without a socket per channel being posted to."""
HTTP_TIMEOUT = 30
"""Seconds a Web API call may take (slack_sdk's default, made explicit)."""
REPLAY_WINDOW = 6 * 60.0
"""Seconds a request signature is remembered: Slack's 5-minute timestamp window plus skew."""
ACKS_FIRST = 1.0
"""At most this many seconds a command's work (and its answer) waits for the acks of the
requests that came in with it: under a burst every ack goes out before any command's work
takes the event loop from them."""
LISTEN_BACKLOG = 1024
"""Connections the kernel holds for HTTP mode before the bot accepts them. aiohttp's 128 is
less than a burst of Slack requests: a connection beyond it waits for its SYN to be sent
again, a second later (most likely why two of figure 3's 200-request bursts, in about 70,
had an ack p99 over 1 s)."""
EVENT_TYPE = "papers_bot_message"
"""The `metadata.event_type` of every digest message; its `event_payload` holds the key."""
LOOKBACK = 24 * 3600.0
"""Seconds of a channel's history searched for the day's top message."""
LOOKUP_PAGE = 100
LOOKUP_PAGES = 3
"""At most this many pages of history (or of a thread) are read for one lookup."""
SENDS = 2
"""Tries of one message whose connection dropped and which Slack does not show."""

DENIED = "only the people listed in the bot's settings may. Ask whoever runs the bot."
WORKING = "Searching arXiv…"
_BLOCKS_REFUSED = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long"})
_TOKEN_REFUSED = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
"""Errors that come from the bot token, not the channel: every channel fails the same way."""
_GONE = frozenset({"channel_not_found", "is_archived"})
"""Errors that say the channel is gone (deleted, archived, or never reachable by the bot)."""
_USER_UNREACHABLE = frozenset({"user_not_found", "user_disabled", "cannot_dm_bot"})
"""Errors of `conversations.open` that say this user can't get a direct message."""


# clients -------------------------------------------------------------------------------


def _secret(value: SecretStr | None, name: str) -> str:
    return secret(value, "slack", name)


class ConnectionRetry(AsyncConnectionErrorRetryHandler):
    """Calls again once when the connection failed, like slack_sdk's handler, except a
    `chat.postMessage` that may have reached Slack: sent again blindly, it could post the
    message twice (`SlackPublisher` looks it up first). One that could not even connect is
    sent again."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        posting = request.url.endswith("/chat.postMessage")
        if posting and not isinstance(error, aiohttp.ClientConnectorError):
            return False
        return await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's wait after a 429 (Retry-After): counted for `/metrics`, told to the run's
    progress display."""

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        metrics.rate_limited("slack")
        if response is not None:
            reporting().waiting("Slack: HTTP 429 (Retry-After)", _retry_after(response))
        started = time.monotonic()
        try:
            await super().prepare_for_next_attempt_async(
                state=state, request=request, response=response, error=error
            )
        finally:
            metrics.retry_after_waited("slack", time.monotonic() - started)


def _retry_after(response: HttpResponse) -> float:
    """The whole seconds of Retry-After that slack_sdk waits (and up to one more); 1 when
    absent."""
    for name, value in response.headers.items():
        if name.lower() == "retry-after":
            first = value if isinstance(value, str) else next(iter(value), "")
            return float(first) if first.strip().isdigit() else 1.0
    return 1.0


def web_client(cfg: SlackSettings, *, timeout: int | None = None) -> AsyncWebClient:
    """A Web API client with the bot token that waits out 429s (honouring Retry-After), a 429
    being a call Slack did not take."""
    options: dict[str, Any] = {}
    if cfg.api_url:
        options["base_url"] = cfg.api_url.rstrip("/") + "/"
    return AsyncWebClient(
        token=_secret(cfg.bot_token, "bot_token"),
        timeout=HTTP_TIMEOUT if timeout is None else timeout,
        retry_handlers=[
            ConnectionRetry(),
            RateLimitRetry(max_retry_count=RATE_LIMIT_RETRIES),
        ],
        logger=_sdk_logger(),
        **options,
    )


def _sdk_logger() -> logging.Logger:
    """slack_sdk's client logger, its level pinned to the effective one. slack_sdk decides
    whether to format a debug line from the logger's own level (`logger.level <= DEBUG`),
    which is 0 when unset: it then formatted every request's whole JSON body and every
    answer, for debug lines nobody sees (BENCHMARKS.md, "What the numbers changed")."""
    sdk = logging.getLogger("slack_sdk.web.async_base_client")
    sdk.setLevel(sdk.getEffectiveLevel())
    return sdk


# digests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keyed:
    """A digest message with its key and the papers (`2611.00001v1`) it carries."""

    message: SlackMessage
    key: str
    papers: tuple[str, ...] = ()

    def metadata(self) -> dict[str, Any]:
        payload = {"key": self.key}
        if self.papers:
            payload["papers"] = " ".join(self.papers)
        return {"event_type": EVENT_TYPE, "event_payload": payload}


def top_key(digest: Digest) -> str:
    """The key of a digest's top message: one per channel and day, so that a run repeated on
    the same day finds the day's top message and continues its thread."""
    kind = "top" if digest.items else "quiet"
    return message_key(digest.channel, (), f"{kind} {digest.day.isoformat()}")


def keyed_thread(digest: Digest, *, buttons: bool = False) -> list[Keyed]:
    """The thread messages, each keyed by its papers (as Discord's nonce)."""
    versions = {item.paper.id: item.paper.version_key for item in digest.items}
    return [
        Keyed(m, message_key(digest.channel, m.paper_ids), tuple(versions[i] for i in m.paper_ids))
        for m in thread_messages(digest, buttons=buttons)
    ]


class AnswerLost(Exception):
    """Slack may have created the message but its answer never came: the connection dropped,
    the call timed out, or Slack failed (5xx) after taking it."""

    def __init__(self, reason: str, *, resend: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.resend = resend
        """A dropped connection may never have carried the post: send it again if Slack
        does not show it. A timeout or a 5xx may still be creating it: do not."""


class SlackPublisher:
    """Posts a digest as a top message and its papers in the thread below it, each message
    once: a message whose answer was lost is looked up by its key before it is sent again,
    and a run that finds the day's top message posts the papers not yet in its thread."""

    platform = PLATFORM
    needs_recent = False
    shows_everything = False

    def __init__(
        self, client: AsyncWebClient, *, interval: float = MESSAGE_INTERVAL, buttons: bool = True
    ) -> None:
        self._client = client
        self._buttons = buttons
        self._pacer = ChannelPacer(interval)
        self._session: aiohttp.ClientSession | None = None
        """The session this publisher opened (and so closes)."""
        self._publishing = 0
        self._unreadable: tuple[date, set[str]] = (date.min, set())
        """The digest day, and why Slack refused lookups that day (warned once each)."""
        self._bot_id: str | None = None
        """This bot's `bot_id` (auth.test), asked once: only its messages count as ours."""

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        if self._client.session is session:
            self._client.session = None
        await session.close()

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        """An empty digest (the runner sends one only to a channel that asked for quiet
        days) is its top message alone: "No new papers today for …"."""
        top = Keyed(top_message(digest), top_key(digest))
        async with self._sharing_session():
            # Only a channel an earlier run reached today can hold the day's top message.
            thread_ts = await self._find(digest, top.key) if digest.resumed else None
            posted_top = thread_ts is None
            if thread_ts is None:
                thread_ts = await self._post(digest, top)
            elif digest.items:
                log.info("slack_thread_continued channel=%s ts=%s", digest.channel, thread_ts)
                digest = await self._without_posted(digest, thread_ts, delivered)
            thread = keyed_thread(digest, buttons=self._buttons)
            for message in thread:
                await self._post(digest, message, thread_ts)
                await delivered(message.message.paper_ids)
        log.info(
            "slack_digest_posted channel=%s papers=%d messages=%d",
            digest.channel,
            len(digest.items),
            posted_top + len(thread),
        )

    async def publish_weekly(self, post: WeeklyPost) -> None:
        """The week's papers, in the channel itself (one message unless Slack's limits ask
        for more), each message once: those an earlier try posted are found by their keys."""
        anchor = Digest(post.channel, post.last, ())  # what lookups and their warnings name
        messages = [
            Keyed(m, post.key(n))
            for n, m in enumerate(weekly_messages(post, buttons=self._buttons))
        ]
        async with self._sharing_session():
            there = {_payload(m).get("key") for m in await self._ours(anchor, None)}
            for message in messages:
                if message.key not in there:
                    await self._post(anchor, message)
        log.info("slack_weekly_posted channel=%s messages=%d", post.channel, len(messages))

    async def _without_posted(self, digest: Digest, thread_ts: str, delivered: Delivered) -> Digest:
        """The digest without the papers its thread holds already (an earlier run posted
        them but did not learn it, or was stopped before recording them): those count as
        delivered."""
        there = {
            version
            for message in await self._ours(digest, thread_ts)
            for version in str(_payload(message).get("papers") or "").split()
        }
        posted = [item.paper.id for item in digest.items if item.paper.version_key in there]
        if posted:
            log.info("slack_papers_found channel=%s papers=%d", digest.channel, len(posted))
            await delivered(posted)
        return replace(digest, items=[i for i in digest.items if i.paper.version_key not in there])

    @contextlib.asynccontextmanager
    async def _sharing_session(self) -> AsyncIterator[None]:
        """One aiohttp session (kept-alive connections) for the posts of every digest being
        published, where slack_sdk would open one per call: the client's own if it has one,
        else one opened here, in the running loop, and closed once no digest is."""
        if self._client.session is None:
            timeout = aiohttp.ClientTimeout(total=self._client.timeout)
            connector = aiohttp.TCPConnector(limit=CONNECTIONS)
            session = aiohttp.ClientSession(
                timeout=timeout,
                connector=connector,
                json_serialize=_json,
                response_class=_OrjsonResponse,
            )
            self._session = self._client.session = session
        self._publishing += 1
        try:
            yield
        finally:
            self._publishing -= 1
            if not self._publishing:
                await self.aclose()

    # posting -----------------------------------------------------------------------------

    async def _post(self, digest: Digest, out: Keyed, thread_ts: str | None = None) -> str:
        """The ts of `out`, posted once. When the answer is lost, Slack is asked whether the
        message is there; if not, a dropped connection is tried again (up to SENDS tries),
        a timeout or a 5xx fails the channel for this run (the next run looks again)."""
        reason = ""
        for attempt in range(1, SENDS + 1):
            try:
                return await self._post_or_text(digest.channel, out, thread_ts)
            except AnswerLost as lost:
                reason = lost.reason
                found = await self._find(digest, out.key, thread_ts)
                if found is not None:
                    log.warning(
                        "slack_answer_lost channel=%s error=%r: the message is there (ts=%s)",
                        digest.channel,
                        reason,
                        found,
                    )
                    return found
                if not lost.resend or attempt == SENDS:
                    break
                log.warning(
                    "slack_answer_lost channel=%s error=%r: not found, sending it again",
                    digest.channel,
                    reason,
                )
        raise DeliveryError(digest.channel, reason)

    async def _post_or_text(self, channel: Channel, out: Keyed, thread_ts: str | None) -> str:
        try:
            return await self._send(channel, out, thread_ts, with_blocks=True)
        except SlackApiError as err:
            error = _error_code(err)
            if error not in _BLOCKS_REFUSED:
                raise _refusal(channel, err) from err
        # Slack refused the layout: the plain text still names and links every paper.
        log.warning("slack_blocks_refused channel=%s error=%s: posting text only", channel, error)
        try:
            return await self._send(channel, out, thread_ts, with_blocks=False)
        except SlackApiError as err:
            raise _refusal(channel, err) from err

    async def _send(
        self, channel: Channel, out: Keyed, thread_ts: str | None, *, with_blocks: bool
    ) -> str:
        async with self._pacer.slot(channel.id):
            try:
                response = await self._client.chat_postMessage(
                    channel=channel.id,
                    text=out.message.text,
                    blocks=list(out.message.blocks) if with_blocks else None,
                    thread_ts=thread_ts,
                    metadata=out.metadata(),
                    unfurl_links=False,
                    unfurl_media=False,
                    link_names=False,
                )
            except aiohttp.ClientConnectorError as err:  # never reached Slack
                raise DeliveryError(channel, _unreachable(err)) from err
            except TimeoutError as err:
                raise AnswerLost(_unreachable(err), resend=False) from err
            except aiohttp.ClientError as err:
                raise AnswerLost(_unreachable(err), resend=True) from err
        return str(response["ts"])

    async def notify(self, user: str, reply: Reply) -> str | None:
        """A private message from the bot (`bot.alerts.Notifier`): the direct message
        channel `conversations.open` gives (scope `im:write`), then `chat.postMessage`."""
        async with self._sharing_session():
            try:
                opened = await self._client.conversations_open(users=user)
                channel = str(opened["channel"]["id"])
                for message in render_reply(reply):
                    await self._client.chat_postMessage(
                        channel=channel,
                        text=message.text,
                        blocks=list(message.blocks),
                        unfurl_links=False,
                        unfurl_media=False,
                        link_names=False,
                    )
            except SlackApiError as err:
                error = _error_code(err)
                if error in _USER_UNREACHABLE:
                    return f"Slack: {error}"
                raise RuntimeError(f"Slack refused the direct message: {error}") from err
        return None

    # looking up ----------------------------------------------------------------------------

    async def _find(self, digest: Digest, key: str, thread_ts: str | None = None) -> str | None:
        """The ts of the message with this key: a top message of the last LOOKBACK seconds,
        or a message of the thread `thread_ts`. None if Slack does not show it."""
        for message in await self._ours(digest, thread_ts):
            if _payload(message).get("key") == key:
                return str(message["ts"])
        return None

    async def _ours(self, digest: Digest, thread_ts: str | None) -> list[dict[str, Any]]:
        """This bot's digest messages in the channel's recent history, or in a thread; none
        when Slack refuses to show them (a missing scope: warned once a day)."""
        channel = digest.channel
        try:
            messages = await self._read(channel.id, thread_ts)
        except SlackApiError as err:
            error = _error_code(err)
            if error in _TOKEN_REFUSED:
                raise _bad_token(channel, error) from err
            if _status(err) >= 500:
                raise DeliveryError(channel, error) from err
            self._cannot_read(digest, err)
            return []
        except (aiohttp.ClientError, TimeoutError) as err:
            raise DeliveryError(channel, _unreachable(err)) from err
        # Any app can post a message with our event type and a (predictable) key: only the
        # messages this bot posted count, or a forged one would stand for papers never sent.
        bot_id = await self._own_bot_id(channel)
        return [
            m
            for m in messages
            if (m.get("metadata") or {}).get("event_type") == EVENT_TYPE
            and m.get("bot_id") == bot_id
        ]

    async def _own_bot_id(self, channel: Channel) -> str:
        if self._bot_id is None:
            try:
                identity = await self._client.auth_test()
            except SlackApiError as err:
                error = _error_code(err)
                if error in _TOKEN_REFUSED:
                    raise _bad_token(channel, error) from err
                raise DeliveryError(channel, error) from err
            except (aiohttp.ClientError, TimeoutError) as err:
                raise DeliveryError(channel, _unreachable(err)) from err
            self._bot_id = str(identity.get("bot_id") or "")
            if not self._bot_id:
                raise DeliveryError(channel, "auth.test names no bot_id: use a bot token")
        return self._bot_id

    async def _read(self, channel_id: str, thread_ts: str | None) -> list[dict[str, Any]]:
        """Up to LOOKUP_PAGES pages of the thread, or of the channel's last LOOKBACK seconds."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            options: dict[str, Any] = {
                "channel": channel_id,
                "limit": LOOKUP_PAGE,
                "include_all_metadata": True,
                "cursor": cursor,
            }
            if thread_ts is None:
                oldest = f"{time.time() - LOOKBACK:.6f}"
                response = await self._client.conversations_history(oldest=oldest, **options)
            else:
                response = await self._client.conversations_replies(ts=thread_ts, **options)
            messages += response.get("messages") or []
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return messages

    def _cannot_read(self, digest: Digest, err: SlackApiError) -> None:
        """Warn once a day (a digest run) for each reason Slack gives."""
        error = _error_code(err)
        day, warned = self._unreadable
        if day != digest.day:
            day, warned = self._unreadable = (digest.day, set())
        if error in warned:
            return
        warned.add(error)
        needed = err.response.get("needed") if err.response is not None else None
        log.warning(
            "slack_lookup_refused channel=%s error=%s%s: papers-bot cannot look for its own "
            "messages there, so a message whose answer is lost may be posted twice: %s",
            digest.channel,
            error,
            f" needed={needed}" if needed else "",
            _LOOKUP_FIXES.get(error, "see docs/slack.md"),
        )


_LOOKUP_FIXES = {
    "missing_scope": "add the channels:history and groups:history scopes and reinstall the "
    "app (docs/slack.md)",
    "not_in_channel": "invite the bot to the channel (/invite @papers-bot)",
}


def _payload(message: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = (message.get("metadata") or {}).get("event_payload")
    return payload if isinstance(payload, Mapping) else {}


def _refusal(channel: Channel, err: SlackApiError) -> Exception:
    """What a Slack error means for the channel: the bot token refused (every channel), an
    answer lost (5xx: Slack may have taken the call), or this channel refused (or gone)."""
    error = _error_code(err)
    if error in _TOKEN_REFUSED:
        return _bad_token(channel, error)
    if _status(err) >= 500:
        return AnswerLost(error, resend=False)
    return DeliveryError(channel, error, gone=error in _GONE)


def _bad_token(channel: Channel, error: str) -> DeliveryError:
    reason = f"Slack refused the bot token ({error}): set a valid [slack] bot_token"
    return DeliveryError(channel, reason, everywhere=True)


def _unreachable(err: Exception) -> str:
    return f"cannot reach Slack: {type(err).__name__}"


def _status(err: SlackApiError) -> int:
    return int(getattr(err.response, "status_code", 0) or 0)


def _error_code(err: SlackApiError) -> str:
    response = err.response
    code = response.get("error") if response is not None else None
    return str(code or f"HTTP {getattr(response, 'status_code', '?')}")


def _json(value: Any) -> str:
    """JSON for request bodies (aiohttp's `json_serialize`): orjson, about twice as fast as
    the standard library's for a digest message (BENCHMARKS.md, "What the numbers changed")."""
    return orjson.dumps(value).decode()


class _OrjsonResponse(aiohttp.ClientResponse):
    """Answers decoded by orjson: Slack's answer to a post repeats the whole message, which
    orjson decodes in about half `json.loads`'s time (BENCHMARKS.md, "What the numbers
    changed"). slack_sdk calls `json()` without a decoder of its own."""

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = orjson.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        return await super().json(encoding=encoding, loads=loads, content_type=content_type)


def publisher_from_settings(
    settings: Settings, *, interval: float | None = None, timeout: int | None = None
) -> SlackPublisher:
    """The digest's Slack output: Web API only, no socket needed (works from cron)."""
    client = web_client(settings.slack, timeout=timeout)
    return SlackPublisher(
        client,
        interval=MESSAGE_INTERVAL if interval is None else interval,
        buttons=settings.signals.buttons,
    )


# commands ------------------------------------------------------------------------------


def signature_claims(store: Store, ttl: float = REPLAY_WINDOW) -> Claim:
    """A `Claim` on request signatures shared by every replica through the store."""
    return StoreClaims(store, keys.SLACK_REQUEST, ttl)


class RecentSignatures:
    """A `Claim` on request signatures in this process only, for a single replica without a
    shared store."""

    def __init__(
        self, ttl: float = REPLAY_WINDOW, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._until: dict[str, float] = {}  # insertion order is expiry order

    async def __call__(self, signature: str) -> bool:
        now = self._clock()
        while self._until and next(iter(self._until.values())) <= now:
            del self._until[next(iter(self._until))]
        if signature in self._until:
            return False
        self._until[signature] = now + self._ttl
        return True


class PendingAcks:
    """HTTP requests whose response (for a command, its ack) is not ready yet, counted by an
    aiohttp middleware around bolt. A command's work after its ack waits until none is
    (`settled`), for at most ACKS_FIRST seconds: of 200 commands at once, all are acked
    first, and their Redis reads, rendering and answers come after, instead of interleaved
    with (and delaying) the acks still to come."""

    def __init__(self, limit: float = ACKS_FIRST) -> None:
        self._limit = limit
        self._open = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self._open += 1
        self._idle.clear()

    def leave(self) -> None:
        self._open -= 1
        if not self._open:
            self._idle.set()

    @property
    def waiting(self) -> int:
        return self._open

    @web.middleware
    async def counting(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.enter()
        try:
            return await handler(request)
        finally:
            self.leave()

    async def settled(self) -> None:
        if not self._open:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._limit):
                while self._open:
                    await self._idle.wait()
                    await asyncio.sleep(0)  # requests of the same burst still being read


def _refuse_replays(first_use: Claim) -> AsyncMiddleware:
    """Bolt checks a request's signature and its 5-minute window, not whether the same signed
    request came before: this middleware (run after that check) answers a replay with 401.
    A class rather than a function: bolt calls it directly, without building the keyword
    arguments it injects into a function middleware (one less per request)."""

    class RefuseReplays(AsyncMiddleware):
        async def async_process(
            self,
            *,
            req: AsyncBoltRequest,
            resp: BoltResponse,
            next: Callable[[], Awaitable[BoltResponse]],
        ) -> BoltResponse | None:
            if req.mode == "http" and not req.context.get(ACKED_HERE):
                signature = (req.headers.get("x-slack-signature") or [""])[0]
                # Without the store every command fails anyway; let it answer that.
                if not await answers_here(first_use(signature), "slack_replay_check_failed"):
                    log.warning("slack_request_refused reason='replayed signature'")
                    return BoltResponse(status=401, body="")
            return await next()

    return RefuseReplays()


class Responses:
    """Answers posted to response URLs through one session of kept-alive connections, its
    bodies encoded with orjson (bolt's `respond` opens a session and a connection for each
    answer). A connection that drops before the answer is sent is tried once more, as
    bolt's `respond` does."""

    def __init__(self, timeout: float = HTTP_TIMEOUT) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: Mapping[str, Any]) -> tuple[int, str]:
        """The status and body of Slack's answer."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=CONNECTIONS),
            )
        data = orjson.dumps(body)
        for attempt in (1, 2):
            try:
                async with self._session.post(url, data=data, headers=_JSON) as response:
                    return response.status, await response.text()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


_JSON = {"Content-Type": "application/json;charset=utf-8"}


def create_app(
    settings: Settings,
    commands: Commands,
    *,
    first_use: Claim | None = None,
    responses: Responses | None = None,
    pending: PendingAcks | None = None,
) -> AsyncApp:
    """A bolt app answering `/papers` (under whatever name the manifest gives it). In HTTP
    mode a signed request is served once: pass `signature_claims(store)` when several
    replicas share the endpoint (the default remembers signatures in this process).
    Answers go through `responses` when given (its owner closes it), else bolt's
    `respond`; a command's work waits for the acks that `pending` counts (see `serve`)."""
    cfg = settings.slack
    secret = ""  # Socket Mode needs none: Slack's messages come over our own connection
    if cfg.mode == "http":
        secret = _secret(cfg.signing_secret, "signing_secret")
    # bolt's own loggers take the level of the one it is given, else the root's at creation
    # (INFO), past `bot.logs`' quieting of "slack_bolt": it would log refused bodies whole.
    quiet = logging.getLogger("slack_bolt")
    app = AsyncApp(client=web_client(cfg), signing_secret=secret, name="papers-bot", logger=quiet)
    pending = pending or PendingAcks()
    if cfg.mode == "http":
        app.use(_refuse_replays(first_use or RecentSignatures()))
    allowed = frozenset(cfg.allowed_users)

    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        text = unescape(str(command.get("text") or ""))
        user = str(command.get("user_id") or "")
        denied = DENIED if allowed and user not in allowed else None
        if ack.response is None:  # AckAtOnce acked it already
            await ack(_ack_body(command, allowed))
        await pending.settled()
        ctx = CommandContext(
            Channel(PLATFORM, str(command["channel_id"])),
            user,
            denied,
            space=str(command.get("team_id") or ""),
            unpostable=direct_message(command),
        )
        started = time.monotonic()
        reply = await send_file(app.client, user, await commands.handle(ctx, text))
        log.info(
            "slack_command channel=%s user=%s verb=%s ok=%s seconds=%.2f",
            ctx.channel,
            user,
            verb_of(text),
            reply.ok,
            time.monotonic() - started,
        )
        await pending.settled()
        await _answer(respond, reply, via=responses)

    app.command(re.compile(r"^/"), middleware=[AckAtOnce(allowed)])(on_command)
    slack_buttons.register(app, commands, _answer)
    return app


class AckAtOnce(AsyncMiddleware):
    """Acks a slash command while bolt handles its request, before the listener starts:
    otherwise bolt starts the listener as a task and polls every 10 ms for its ack (a delay
    from the ack to the response, and a wake-up of the event loop per poll; BENCHMARKS.md,
    figure 3). The listener runs after the response, as before."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self._allowed = allowed

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        await req.context.ack(_ack_body(req.body, self._allowed))
        # What `next` gives back (nothing): a response here would replace the ack's body.
        return await next()


def _ack_body(command: Mapping[str, Any], allowed: frozenset[str]) -> str:
    """What a command's ack says: "Searching arXiv…" for the slow verbs, else nothing."""
    text = unescape(str(command.get("text") or ""))
    denied = bool(allowed) and str(command.get("user_id") or "") not in allowed
    return WORKING if verb_of(text) in SLOW_VERBS and not denied else ""


IN_DM = (
    "Digests go to channels, not direct messages: use /papers add in a channel, and invite "
    "the bot there (/invite @papers-bot)."
)


def direct_message(command: Mapping[str, Any]) -> str | None:
    """Why a digest can't go where this command was typed: a direct message or a group DM
    (the bot is not in it, and without the im scopes it can't tell its own DM apart)."""
    channel_id = str(command.get("channel_id") or "")
    name = str(command.get("channel_name") or "")
    if channel_id.startswith("D") or name == "directmessage" or name.startswith("mpdm-"):
        return IN_DM
    return None


async def _answer(
    respond: AsyncRespond,
    reply: Reply,
    replace: bool | None = None,
    *,
    via: Responses | None = None,
) -> None:
    """The reply at the response URL; `replace` (buttons only) says whether it takes the
    place of the message whose button was pressed. Sent through `via` when given, else
    through bolt's `respond`; the body is the same."""
    response_type = "ephemeral" if reply.ephemeral else "in_channel"
    for n, message in enumerate(render_reply(reply)):
        body: dict[str, Any] = {"text": message.text}
        if message.blocks:
            body["blocks"] = list(message.blocks)
        body["response_type"] = response_type
        if (replacing := replace if n == 0 or replace is None else False) is not None:
            body["replace_original"] = replacing
        body |= {"unfurl_links": False, "unfurl_media": False}
        try:
            if via is not None and respond.response_url:
                status, text = await via.post(respond.response_url, body)
            else:
                result = await respond(**body)
                status, text = result.status_code, str(result.body)
        except (aiohttp.ClientError, TimeoutError) as err:
            log.warning("slack_respond_failed error=%s", type(err).__name__)
            return
        if status != 200:
            log.warning("slack_respond_failed status=%d body=%r", status, text)
            return


# serving -------------------------------------------------------------------------------


async def serve(settings: Settings, commands: Commands, *, first_use: Claim | None = None) -> None:
    """Answer `/papers` until cancelled: over Socket Mode, or on `/slack/events` over HTTP.
    Raises SettingsError at once when Slack refuses a token."""
    responses, pending = Responses(), PendingAcks()
    first_use = first_use or RecentSignatures()
    app = create_app(settings, commands, first_use=first_use, responses=responses, pending=pending)
    cfg = settings.slack
    try:
        identity = await verify(settings)
        log.info("slack_authenticated %s", identity)
        if cfg.mode == "socket":
            await _serve_socket(app, _secret(cfg.app_token, "app_token"))
        else:
            allowed = frozenset(cfg.allowed_users)
            acks = AcksFirst(app, _secret(cfg.signing_secret, "signing_secret"), first_use,
                             lambda form: _ack_body(form, allowed), pending.settled)  # fmt: skip
            await _serve_http(app, cfg.http_host, cfg.http_port, pending, acks)
    finally:
        await responses.aclose()


async def verify(settings: Settings) -> str:
    """Ask Slack whether the tokens work (for `serve` and `papers-bot check`).

    Returns `workspace=… bot=@…`; raises SettingsError naming the token Slack refused.
    """
    cfg = settings.slack
    client = web_client(cfg)
    identity = await _asking_slack(client.auth_test(), "bot_token")
    if cfg.mode == "socket":
        app_token = _secret(cfg.app_token, "app_token")
        await _asking_slack(client.apps_connections_open(app_token=app_token), "app_token")
    return f"workspace={identity.get('team')!r} bot=@{identity.get('user')}"


async def _asking_slack(call: Awaitable[AsyncSlackResponse], token: str) -> AsyncSlackResponse:
    try:
        return await call
    except SlackApiError as err:
        raise SettingsError(f"Slack refused [slack] {token}: {_error_code(err)}") from None
    except (aiohttp.ClientError, TimeoutError) as err:
        raise SettingsError(f"cannot reach Slack: {type(err).__name__}: {err}") from None


async def _serve_socket(app: AsyncApp, app_token: str) -> None:
    handler = AsyncSocketModeHandler(app, app_token)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("slack_connected mode=socket")
        await asyncio.Event().wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


async def _serve_http(
    app: AsyncApp,
    host: str,
    port: int,
    pending: PendingAcks | None = None,
    acks: AcksFirst | None = None,
) -> None:
    web_app = app.web_app(path=EVENTS_PATH)
    if pending is not None:
        web_app.middlewares.append(pending.counting)
    if acks is not None:
        web_app.middlewares.append(acks.handle)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG).start()
        log.info("slack_listening mode=http host=%s port=%d path=%s", host, port, EVENTS_PATH)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
