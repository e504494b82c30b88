"""A fake Slack on 127.0.0.1: the Web API, `response_url`s and the Socket Mode websocket.

The real `AsyncWebClient` (base_url = `fake.api_url`) and bolt's `respond` talk to it
unchanged::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await client.chat_postMessage(channel="C1", text="hi")
        assert slack.posts("C1")[0].text == "hi"

It checks what real Slack checks (tokens, scopes, Block Kit limits, the shape of message
`metadata`, `conversations.open`'s arguments and rate tier), records every call, keeps the
messages it created (with their metadata) and lists them as `conversations.history` and
`conversations.replies` do, opens direct message channels, and can be told to fail: 429 with
Retry-After, `channel_not_found`, `not_in_channel`, `is_archived`, `invalid_auth` and the
like per channel, ~1 message a second per channel, a missing scope, and a message created
whose answer is lost (the connection dropped, or answered too late).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

MAX_BLOCKS = 50
MAX_TEXT_OBJECT = 3000
MAX_HEADER = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40_000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
WAIT = 5.0
"""Seconds the waiting helpers give the app before failing the test."""
APP_ID = "A0PAPERS"
_AUTH_TEST = {
    "ok": True,
    "url": "https://fake.slack.com/",
    "team": "Fake Team",
    "user": "papers-bot",
    "team_id": "T0FAKE",
    "user_id": "U0BOT",
    "bot_id": "B0BOT",
}
SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "channels:history",
        "groups:history",
        "im:write",
        "files:write",
    }
)
"""What slack-manifest.yml asks for: the default grant of the fake's bot token."""
HISTORY_LIMIT = 1000
"""The most messages `conversations.history` or `.replies` returns a page (Slack's maximum)."""
MAX_FILE_BYTES = 1024**3
"""Slack's largest upload (1 GB): `files.getUploadURLExternal` refuses a longer `length`."""
MAX_ALT_TXT = 1000
MAX_FILES_COMPLETED = 100
"""Files one `files.completeUploadExternal` may complete (`files` array)."""


@dataclass
class SlackFile:
    """A file uploaded through `files.getUploadURLExternal` and its upload URL."""

    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str = ""
    channel: str | None = None
    """Where `files.completeUploadExternal` shared it; None until completed (or unshared)."""
    completed: bool = False

    @property
    def text(self) -> str:
        return (self.content or b"").decode()


MAX_DM_USERS = 8
"""`conversations.open`: at most 8 users (a group DM) besides the caller, else `too_many_users`."""
OPEN_PER_MINUTE = 50
"""`conversations.open` is in Web API rate tier 3: 50 calls a minute (bursts aside), then 429."""
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class SlackCall:
    """One Web API call as the fake saw it, with what it answered."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int
    error: str | None
    time: float
    ts: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def channel(self) -> str | None:
        return self.args.get("channel")

    @property
    def thread_ts(self) -> str | None:
        return self.args.get("thread_ts")

    @property
    def text(self) -> str:
        return str(self.args.get("text") or "")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.args.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    @property
    def metadata(self) -> dict[str, Any] | None:
        return _metadata(self.args.get("metadata"))

    @property
    def key(self) -> str | None:
        """The `key` of the message's metadata payload (papers-bot's message key)."""
        payload = (self.metadata or {}).get("event_payload") or {}
        key = payload.get("key")
        return str(key) if key is not None else None


@dataclass(frozen=True)
class Response:
    """One body posted to a `response_url`."""

    key: str
    body: dict[str, Any]
    time: float

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.body.get("blocks") or [])


@dataclass
class _ChannelError:
    error: str
    after: int


@dataclass
class _RateLimit:
    retry_after: int
    times: int


@dataclass
class _ServerError:
    status: int
    times: int


@dataclass
class _Slow:
    before: float
    after: float
    skip: int


def block_problems(blocks: Iterable[Mapping[str, Any]]) -> list[str]:
    """What real Slack would reject in these blocks (`invalid_blocks`), as readable lines."""
    blocks = list(blocks)
    problems = [f"{len(blocks)} blocks (at most {MAX_BLOCKS})"] if len(blocks) > MAX_BLOCKS else []
    for i, block in enumerate(blocks):
        kind = block.get("type")
        texts = [block["text"]] if "text" in block else []
        if kind == "header":
            size = len(block["text"]["text"])
            if size > MAX_HEADER or block["text"]["type"] != "plain_text":
                problems.append(f"block {i}: header of {size} characters")
        if kind == "context":
            texts = list(block.get("elements", []))
            if not 1 <= len(texts) <= MAX_CONTEXT_ELEMENTS:
                problems.append(f"block {i}: context with {len(texts)} elements")
        if kind == "section" and not texts and not block.get("fields"):
            problems.append(f"block {i}: section without text")
        if kind == "actions":
            problems += _actions_problems(i, block)
        for obj in texts:
            size = len(obj.get("text", "").encode("utf-16-le")) // 2
            if not 1 <= size <= MAX_TEXT_OBJECT:
                problems.append(f"block {i} ({kind}): text object of {size} characters")
            if obj.get("type") not in ("mrkdwn", "plain_text"):
                problems.append(f"block {i}: text object of type {obj.get('type')!r}")
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    problems += [f"block_id {b!r} twice" for b, n in Counter(ids).items() if n > 1]
    return problems


def _actions_problems(i: int, block: Mapping[str, Any]) -> list[str]:
    elements = list(block.get("elements", []))
    problems = []
    if not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
        problems.append(f"block {i}: actions with {len(elements)} elements")
    action_ids = [e.get("action_id") for e in elements]
    if len(set(action_ids)) != len(action_ids):
        problems.append(f"block {i}: an action_id twice in one block")
    for e in elements:
        label = e.get("text") or {}
        if e.get("type") != "button" or label.get("type") != "plain_text":
            problems.append(f"block {i}: element {e.get('type')!r} with a {label.get('type')!r}")
        if not 1 <= len(str(label.get("text", ""))) <= MAX_BUTTON_TEXT:
            problems.append(f"block {i}: button text of {len(str(label.get('text')))} characters")
        if len(str(e.get("value", ""))) > MAX_BUTTON_VALUE:
            problems.append(f"block {i}: button value too long")
    return problems


class FakeSlack:
    """Serve with `async with FakeSlack() as slack:`; point clients at `slack.api_url`."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        min_interval: float = 0.0,
        scopes: Iterable[str] = SCOPES,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.min_interval = min_interval
        """Posts to one channel closer together than this get 429 (as Slack's ~1/s)."""
        self.scopes = set(scopes)
        """The bot token's scopes; a call that needs another gets `missing_scope`."""
        self.not_member: set[str] = set()
        """Public channels the bot posts to (chat:write.public) without having been invited:
        reading their history gets `not_in_channel`, as a bot token does there."""
        self.calls: list[SlackCall] = []
        self.missing_users: set[str] = set()
        """User ids Slack doesn't know (`user_not_found` from `conversations.open`)."""
        self.dms: dict[str, str] = {}
        """Direct message channels opened: channel id -> user id."""
        self._opened: list[float] = []
        self.responses: list[Response] = []
        self.spacing_violations = 0
        self.post_delay = 0.0
        """Seconds between creating a message and answering, in every channel (a client
        killed meanwhile never learns that the message exists)."""
        self._slow: dict[str, _Slow] = {}
        self._server_errors: dict[str, _ServerError] = {}
        self._channel_errors: dict[str, _ChannelError] = {}
        self._blocks_rejected: set[str] = set()
        self._rate_limits: dict[str, _RateLimit] = {}
        self._auth_error: str | None = None
        self._last_post: dict[str, float] = {}
        self._last_ts = 0.0
        self._messages: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._created: Counter[str] = Counter()
        self._answers_lost: dict[str, set[int]] = {}
        self._drops: Counter[str] = Counter()
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.files: dict[str, SlackFile] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # lifecycle -----------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/link", self._websocket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str = "r") -> str:
        return f"{self.url}/respond/{key}"

    # faults --------------------------------------------------------------------------

    def fail_channel(self, channel: str, error: str, *, after: int = 0) -> None:
        """Posts to `channel` fail with `error` (`channel_not_found`, `is_archived`…), from
        the next one on, or once `after` more posts have gone through."""
        self._channel_errors[channel] = _ChannelError(error, after)

    def heal_channel(self, channel: str) -> None:
        self._channel_errors.pop(channel, None)
        self._slow.pop(channel, None)
        self._server_errors.pop(channel, None)

    def reject_blocks(self, channel: str) -> None:
        """Posts with blocks to `channel` fail with `invalid_blocks` (text-only ones pass)."""
        self._blocks_rejected.add(channel)

    def rate_limit(self, channel: str, *, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` posts to `channel` get HTTP 429 with this Retry-After."""
        self._rate_limits[channel] = _RateLimit(retry_after, times)

    def slow(self, channel: str, *, before: float = 0.0, after: float = 0.0, skip: int = 0) -> None:
        """Posts to `channel` wait `before` seconds before Slack looks at them (a client that
        gives up meanwhile leaves no message) and `after` seconds between creating the
        message and answering (a client that gives up meanwhile never learns it exists),
        once `skip` posts went through at normal speed."""
        self._slow[channel] = _Slow(before, after, skip)

    def lose_answers(self, channel: str, *at: int) -> None:
        """The `at`-th messages created in `channel` (1 for the first since the fake started,
        counting across digests) are created, then the connection is dropped before Slack
        answers: a network blip, or a proxy that gave up waiting."""
        self._answers_lost.setdefault(channel, set()).update(at)

    def drop_connections(self, channel: str, *, times: int = 1) -> None:
        """The next `times` posts to `channel` lose their connection before Slack reads them
        (a stale kept-alive connection): no message, no answer."""
        self._drops[channel] += times

    def server_error(self, channel: str, *, status: int = 500, times: int = 1) -> None:
        """The next `times` posts to `channel` get this HTTP status with an HTML body, as
        Slack's edge answers when it is down."""
        self._server_errors[channel] = _ServerError(status, times)

    def fail_auth(self, error: str = "invalid_auth") -> None:
        """Every call fails as with a revoked or wrong token."""
        self._auth_error = error

    def restore_auth(self) -> None:
        self._auth_error = None

    # reading -------------------------------------------------------------------------

    def posts(self, channel: str | None = None, *, ok_only: bool = True) -> list[SlackCall]:
        return [
            c
            for c in self.calls
            if c.method == "chat.postMessage"
            and (channel is None or c.channel == channel)
            and (c.ok or not ok_only)
        ]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message the fake created in `channel`, oldest first, as Slack stores it."""
        return list(self._messages[channel])

    def doubled_keys(self) -> dict[str, int]:
        """Message keys (metadata `key`) found on more than one message of a channel."""
        counts = Counter(
            (channel, key)
            for channel, messages in self._messages.items()
            for m in messages
            if (key := _payload(m).get("key")) is not None
        )
        return {f"{channel}:{key}": n for (channel, key), n in counts.items() if n > 1}

    def responses_to(self, key: str) -> list[Response]:
        return [r for r in self.responses if r.key == key]

    async def wait_for_response(self, key: str) -> Response:
        """The first body posted to `response_url(key)`, waiting for it to arrive."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: bool(self.responses_to(key)))
        return self.responses_to(key)[0]

    async def wait_until(self, probe: Callable[[], bool]) -> None:
        """Until `probe()` holds, checked after each Web API call and response."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(probe)

    # socket mode ---------------------------------------------------------------------

    async def wait_for_socket(self) -> None:
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: bool(self._sockets))

    async def send_envelope(self, kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Deliver one envelope over the socket as Slack does; return the app's ack."""
        envelope_id = str(uuid.uuid4())
        ack = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = ack
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": True,
            "payload": dict(payload),
        }
        await self._sockets[-1].send_str(json.dumps(envelope))
        async with asyncio.timeout(WAIT):
            answer: dict[str, Any] = await ack
        return answer

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        self._sockets.append(ws)
        await self._notify()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                ack = self._acks.pop(data.get("envelope_id", ""), None)
                if ack is not None and not ack.done():
                    ack.set_result(data)
        finally:
            self._sockets.remove(ws)
        return ws

    # handlers ------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.responses.append(Response(request.match_info["key"], body, time.monotonic()))
        await self._notify()
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        token = _bearer(request) or args.get("token")
        posting = method == "chat.postMessage"
        channel = str(args.get("channel") or "")
        slow = self._slow.get(channel) if posting else None
        if slow is not None and slow.skip > 0:
            slow.skip -= 1
            slow = None
        if slow is not None and slow.before:
            await asyncio.sleep(slow.before)
        if posting and self._drops[channel] > 0:
            self._drops[channel] -= 1
            self.calls.append(SlackCall(method, args, token, 0, "dropped", time.monotonic()))
            return _drop(request)
        failing = self._server_errors.get(channel)
        if posting and failing is not None and failing.times > 0:
            failing.times -= 1
            self.calls.append(
                SlackCall(method, args, token, failing.status, "server_error", time.monotonic())
            )
            await self._notify()
            html = "<html><body>Service Unavailable</body></html>"
            return web.Response(status=failing.status, text=html, content_type="text/html")
        status, body, headers = self._answer(method, args, token)
        error = None if body.get("ok") else str(body.get("error"))
        ts = body.get("ts") if posting else None
        self.calls.append(SlackCall(method, args, token, status, error, time.monotonic(), ts))
        await self._notify()
        if ts is not None and self._created[channel] in self._answers_lost.get(channel, ()):
            return _drop(request)  # created, and the client never hears of it
        delay = slow.after if slow is not None else self.post_delay
        if ts is not None and delay:
            await asyncio.sleep(delay)
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if self._auth_error is not None or token != expected:
            return 200, {"ok": False, "error": self._auth_error or "invalid_auth"}, {}
        if method == "auth.test":
            return 200, _AUTH_TEST, {}
        if method == "apps.connections.open":
            return 200, {"ok": True, "url": f"ws://127.0.0.1:{self._port}/link"}, {}
        needed = _scope_needed(method, str(args.get("channel") or ""))
        if needed is not None and needed not in self.scopes:
            return 200, self._missing_scope(needed), {}
        if method == "conversations.open":
            return self._open(args)
        if method == "chat.postMessage":
            return self._post_message(args)
        if method == "chat.update":
            return self._update(args)
        reading = method in ("conversations.history", "conversations.replies")
        if reading and args.get("channel") in self.not_member:
            return 200, {"ok": False, "error": "not_in_channel"}, {}
        if method in _FILE_METHODS:
            return _FILE_METHODS[method](self, args)
        if method == "conversations.history":
            return self._history(args)
        if method == "conversations.replies":
            return self._replies(args)
        return 200, {"ok": False, "error": "unknown_method"}, {}

    # files and direct messages ------------------------------------------------------------

    def shared_files(self, channel: str) -> list[SlackFile]:
        return [f for f in self.files.values() if f.completed and f.channel == channel]

    def _upload_url(self, args: Mapping[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        filename = str(args.get("filename") or "")
        length = str(args.get("length") or "")
        if not filename or not length.isdigit() or int(length) == 0:
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        if int(length) > MAX_FILE_BYTES:
            return 200, {"ok": False, "error": "file_upload_size_restricted"}, {}
        if len(str(args.get("alt_txt") or "")) > MAX_ALT_TXT:
            return 200, {"ok": False, "error": "alt_txt_too_large"}, {}
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.files[file_id] = SlackFile(file_id, filename, int(length))
        body = {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        return 200, body, {}

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL: raw bytes (or a multipart form), which must be `length` long."""
        found = self.files.get(request.match_info["file_id"])
        if found is None or found.content is not None:
            return web.Response(status=404, text="not found")
        if request.content_type.startswith("multipart/"):
            part = next(iter((await request.post()).values()))
            data = part.file.read() if isinstance(part, web.FileField) else str(part).encode()
        else:
            data = await request.read()
        if len(data) != found.length:
            return web.Response(status=400, text=f"length {len(data)} is not {found.length}")
        found.content = data
        await self._notify()
        return web.Response(text=f"OK - {len(data)}")

    def _complete(self, args: Mapping[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            listed = json.loads(str(args.get("files") or ""))
        except ValueError:
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_FILES_COMPLETED:
            return 200, {"ok": False, "error": "invalid_arguments"}, {}
        found = [self.files.get(str(f.get("id"))) for f in listed]
        if any(f is None or f.content is None or f.completed for f in found):
            return 200, {"ok": False, "error": "file_not_found"}, {}
        channel = str(args.get("channel_id") or "") or None
        if channel is not None and channel in self._channel_errors:
            return 200, {"ok": False, "error": self._channel_errors[channel].error}, {}
        done = []
        for entry, file in zip(listed, found, strict=True):
            assert file is not None
            file.title, file.channel, file.completed = str(entry.get("title") or ""), channel, True
            done.append({"id": file.id, "name": file.filename, "title": file.title})
        return 200, {"ok": True, "files": done}, {}

    def _missing_scope(self, needed: str) -> dict[str, Any]:
        provided = ",".join(sorted(self.scopes))
        return {"ok": False, "error": "missing_scope", "needed": needed, "provided": provided}

    def _history(self, args: Mapping[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Top-level messages, newest first, after `oldest` (exclusive), a page at a time."""
        channel = str(args.get("channel") or "")
        oldest = float(args.get("oldest") or 0)
        found = [
            m
            for m in reversed(self._messages[channel])
            if m.get("thread_ts", m["ts"]) == m["ts"] and float(m["ts"]) > oldest
        ]
        return 200, _page(found, args), {}

    def _replies(self, args: Mapping[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """A thread: its parent first, then the replies, oldest first."""
        channel = str(args.get("channel") or "")
        ts = str(args.get("ts") or "")
        thread = [m for m in self._messages[channel] if m.get("thread_ts", m["ts"]) == ts]
        if not any(m["ts"] == ts for m in thread):
            return 200, {"ok": False, "error": "thread_not_found"}, {}
        return 200, _page(thread, args), {}

    def _open(self, args: Mapping[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """A direct message channel with one user, the same one every time (as Slack's
        `conversations.open` with `users`); errors as documented for that method."""
        now = time.monotonic()
        self._opened = [t for t in self._opened if now - t < 60] + [now]
        if len(self._opened) > OPEN_PER_MINUTE:
            return _too_many(1)
        users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
        if not users:
            return 200, {"ok": False, "error": "users_list_not_supplied"}, {}
        if len(users) > MAX_DM_USERS:
            return 200, {"ok": False, "error": "too_many_users"}, {}
        if len(users) > 1:
            return 200, {"ok": False, "error": "not_supported_by_fake"}, {}
        (user,) = users
        if user == _AUTH_TEST["user_id"]:
            return 200, {"ok": False, "error": "cannot_dm_bot"}, {}
        if not _USER_ID.match(user) or user in self.missing_users:
            return 200, {"ok": False, "error": "user_not_found"}, {}
        channel = f"D{user[1:]}"
        already = channel in self.dms
        self.dms[channel] = user
        answer: dict[str, Any] = {"ok": True, "channel": {"id": channel}}
        if already:
            answer |= {"no_op": True, "already_open": True}
        return 200, answer, {}

    def dm_of(self, user: str) -> str:
        """The id of the bot's direct message channel with `user` (opened already)."""
        return next(channel for channel, member in self.dms.items() if member == user)

    def dm_posts(self, user: str) -> list[SlackCall]:
        """Messages posted to the direct message channel of `user`."""
        return [
            c for c in self.posts() if c.channel is not None and self.dms.get(c.channel) == user
        ]

    def _next_ts(self) -> str:
        """Unique, increasing, and close to the wall clock (clients look back in time)."""
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def _post_message(self, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        channel = str(args.get("channel") or "")
        limit = self._rate_limits.get(channel)
        if limit is not None and limit.times > 0:
            limit.times -= 1
            return _too_many(limit.retry_after)
        now = time.monotonic()
        last = self._last_post.get(channel)
        if self.min_interval and last is not None and now - last < self.min_interval:
            self.spacing_violations += 1
            return _too_many(1)
        if not channel or (channel.startswith("D") and channel not in self.dms):
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        failing = self._channel_errors.get(channel)
        if failing is not None:
            if failing.after <= 0:
                return 200, {"ok": False, "error": failing.error}, {}
            failing.after -= 1
        error = _message_error(args)
        if error is None and args.get("blocks") and channel in self._blocks_rejected:
            error = "invalid_blocks"
        if error is not None:
            return 200, {"ok": False, "error": error}, {}
        self._last_post[channel] = now
        message = self._create(channel, args)
        return 200, {"ok": True, "channel": channel, "ts": message["ts"], "message": message}, {}

    def _update(self, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """A message's text and blocks replaced; its metadata kept unless given (as Slack)."""
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        found = [m for m in self._messages[channel] if m["ts"] == ts]
        if not found:
            return 200, {"ok": False, "error": "message_not_found"}, {}
        error = _message_error(args)
        if error is not None:
            return 200, {"ok": False, "error": error}, {}
        message = found[0]
        message["text"] = args.get("text")
        message["blocks"] = _blocks(args)
        if (metadata := _metadata(args.get("metadata"))) is not None:
            message["metadata"] = metadata
        return 200, {"ok": True, "channel": channel, "ts": ts, "text": message["text"]}, {}

    def block_actions(
        self,
        channel: str,
        ts: str,
        action_id: str,
        value: str,
        *,
        user: str = "U0ALICE",
        response_key: str = "b",
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends when `user` presses the button
        (`action_id`, `value`) of the message `ts`, shaped like the real ones in the corpus."""
        message = next(m for m in self._messages[channel] if m["ts"] == ts)
        block = next(
            b
            for b in message.get("blocks") or []
            for e in b.get("elements", [])
            if e.get("action_id") == action_id and e.get("value") == value
        )
        element = next(e for e in block["elements"] if e.get("action_id") == action_id)
        shown = {k: v for k, v in message.items() if k != "metadata"}
        return {
            "type": "block_actions",
            "team": {"id": "T0FAKE", "domain": "fake"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "trigger_id": f"{uuid.uuid4().int % 10**12}.1.{uuid.uuid4().hex}",
            "channel": {"id": channel, "name": "papers"},
            "message": shown,
            "response_url": self.response_url(response_key),
            "actions": [
                {
                    **element,
                    "block_id": block.get("block_id", ""),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    def post_as_other_app(
        self, channel: str, metadata: Mapping[str, Any], *, thread_ts: str | None = None
    ) -> str:
        """A message another app (its own bot_id and app_id) posts with the metadata it
        likes, as any app installed in the workspace can; its ts."""
        args = {"text": "forged", "metadata": dict(metadata), "thread_ts": thread_ts}
        message = self._create(channel, args, bot_id="B0OTHER", app_id="A0OTHER")
        return str(message["ts"])

    def _create(
        self,
        channel: str,
        args: Mapping[str, Any],
        *,
        bot_id: str = str(_AUTH_TEST["bot_id"]),
        app_id: str = APP_ID,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": _AUTH_TEST["user_id"] if bot_id == _AUTH_TEST["bot_id"] else "U0OTHER",
            "bot_id": bot_id,
            "app_id": app_id,
            "text": args.get("text"),
            "ts": self._next_ts(),
        }
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        if blocks := _blocks(args):
            message["blocks"] = blocks
        if (metadata := _metadata(args.get("metadata"))) is not None:
            message["metadata"] = metadata
        self._messages[channel].append(message)
        self._created[channel] += 1
        return message


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (the response returned is never sent)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500, text="never sent")


def _too_many(retry_after: int) -> tuple[int, dict[str, Any], dict[str, str]]:
    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}


def _blocks(args: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = args.get("blocks")
    return json.loads(raw) if isinstance(raw, str) else list(raw or [])


def _message_error(args: Mapping[str, Any]) -> str | None:
    blocks = _blocks(args)
    text = str(args.get("text") or "")
    if not blocks and not text:
        return "no_text"
    if len(text) > MAX_MESSAGE_TEXT:
        return "msg_too_long"
    if block_problems(blocks):
        return "invalid_blocks"
    if args.get("metadata") is not None and _metadata(args["metadata"]) is None:
        return "invalid_metadata_format"
    return None


def _metadata(raw: Any) -> dict[str, Any] | None:
    """Message metadata as Slack takes it (an object, or its JSON in a form field): an
    `event_type` string and an `event_payload` object; None if absent or not that shape."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict):
        return None
    if not isinstance(raw.get("event_type"), str) or not isinstance(raw.get("event_payload"), dict):
        return None
    return {"event_type": raw["event_type"], "event_payload": dict(raw["event_payload"])}


def _payload(message: Mapping[str, Any]) -> dict[str, Any]:
    metadata = message.get("metadata") or {}
    return dict(metadata.get("event_payload") or {})


_FILE_METHODS: dict[
    str, Callable[[FakeSlack, Mapping[str, Any]], tuple[int, dict[str, Any], dict[str, str]]]
] = {
    "files.getUploadURLExternal": FakeSlack._upload_url,
    "files.completeUploadExternal": FakeSlack._complete,
}


def _scope_needed(method: str, channel: str) -> str | None:
    if method in ("chat.postMessage", "chat.update"):
        return "chat:write"
    if method == "conversations.open":
        return "im:write"
    if method.startswith("files."):
        return "files:write"
    if method in ("conversations.history", "conversations.replies"):
        return "groups:history" if channel.startswith("G") else "channels:history"
    return None


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


def _page(messages: list[dict[str, Any]], args: Mapping[str, Any]) -> dict[str, Any]:
    """One page of `messages` from `cursor` on, `limit` long; metadata only when asked for
    with `include_all_metadata` (as Slack does)."""
    start = int(args.get("cursor") or 0)
    limit = min(int(args.get("limit") or 100), HISTORY_LIMIT)
    page = messages[start : start + limit]
    if not _truthy(args.get("include_all_metadata")):
        page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
    more = start + limit < len(messages)
    return {
        "ok": True,
        "messages": page,
        "has_more": more,
        "response_metadata": {"next_cursor": str(start + limit) if more else ""},
    }


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


async def _arguments(request: web.Request) -> dict[str, Any]:
    """JSON or form arguments, plus the query string, as the Web API accepts them."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        args.update(await request.json())
    elif request.can_read_body:
        args.update(parse_qsl(await request.text(), keep_blank_values=True))
    return args


@dataclass
class SlashCommand:
    """A slash-command payload as Slack sends it (form fields over HTTP, a dict over the socket)."""

    text: str
    response_url: str
    channel_id: str = "C0PAPERS"
    user_id: str = "U0ALICE"
    command: str = "/papers"
    extra: dict[str, str] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        return {
            "token": "legacy-verification-token",
            "team_id": "T0FAKE",
            "team_domain": "fake",
            "channel_id": self.channel_id,
            "channel_name": "papers",
            "user_id": self.user_id,
            "user_name": "alice",
            "command": self.command,
            "text": self.text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.response_url,
            "trigger_id": "1234.5678.abcdef",
            **self.extra,
        }
