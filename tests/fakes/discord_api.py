"""A fake Discord (REST API + gateway) on 127.0.0.1 that the real discord.py client talks to.

    async with FakeDiscord() as fake:
        settings.discord.api_url, settings.discord.gateway_url = fake.api_url, fake.gateway_url
        ...
        await fake.send_interaction(fake.slash("add", keyword="reward model"))

REST answers carry `Content-Type: application/json` exactly (discord.py ignores the body
otherwise). Messages are checked against Discord's limits and refused with a 400 like
Discord's `Invalid Form Body` when they break one. Direct messages go through a DM channel
(`POST /users/@me/channels`, as Discord documents it); a user whose DMs are closed
(`closed_dms`) gets 403 with code 50007 "Cannot send messages to this user". Per-channel
faults (401/403/404/429) and a revoked token are injectable. The gateway speaks plain JSON
text frames: HELLO, then READY and one GUILD_CREATE per guild after IDENTIFY, heartbeats
ACKed; tests then push INTERACTION_CREATE payloads and read the interaction callbacks and
follow-ups.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import BodyPartReader, WSMsgType, web

TOKEN = "fake-discord-bot-token"
APPLICATION_ID = 1100000000000000001
BOT_USER_ID = 1100000000000000002
OWNER_ID = 1100000000000000003
GUILD_ID = 1100000000000000010
CHANNEL_ID = 1100000000000000020
OTHER_CHANNEL_ID = 1100000000000000021
MEMBER_ID = 1100000000000000030
ROLE_ID = 1100000000000000040

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14
READ_MESSAGE_HISTORY = 1 << 16
MANAGE_CHANNELS = 1 << 4
MEMBER_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | READ_MESSAGE_HISTORY
MODERATOR_PERMISSIONS = MEMBER_PERMISSIONS | MANAGE_CHANNELS
BOT_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | READ_MESSAGE_HISTORY

EPHEMERAL = 1 << 6
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
"""Bytes an attachment may have (an interaction's `attachment_size_limit`; a server
without boosts: 10 MiB)."""
MAX_ATTACHMENTS = 10
"""Files one message may carry."""

T = TypeVar("T")

_ERRORS: dict[int, tuple[int, str]] = {
    401: (0, "401: Unauthorized"),
    403: (50001, "Missing Access"),
    404: (10003, "Unknown Channel"),
    429: (0, "You are being rate limited."),
}
CANNOT_MESSAGE_USER = (50007, "Cannot send messages to this user")
UNKNOWN_USER = (10013, "Unknown User")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON answer whose Content-Type is exactly `application/json`, as Discord sends it."""
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def error_response(status: int, *, retry_after: float = 0.05) -> web.Response:
    code, message = _ERRORS.get(status, (0, f"{status} error"))
    if status == 429:
        body = {"message": message, "retry_after": retry_after, "global": False}
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(retry_after),
            "X-RateLimit-Scope": "user",
        }
        return json_response(body, 429, headers)
    return json_response({"message": message, "code": code}, status)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def file_violations(files: list[tuple[str, bytes]], body: Mapping[str, Any]) -> list[str]:
    """What Discord refuses in a message's uploads: more than 10, one larger than the size
    limit, one without a name, or `attachments` in the JSON naming a file not sent."""
    problems: list[str] = []
    if len(files) > MAX_ATTACHMENTS:
        problems.append(f"{len(files)} files (limit {MAX_ATTACHMENTS})")
    for name, data in files:
        if len(data) > ATTACHMENT_SIZE_LIMIT:
            problems.append(f"file {name!r} has {len(data)} bytes (limit {ATTACHMENT_SIZE_LIMIT})")
        if not name.strip():
            problems.append("a file without a name")
    for attachment in body.get("attachments") or []:
        if not 0 <= int(attachment.get("id", -1)) < len(files):
            problems.append(f"attachment {attachment.get('id')!r} names no file sent")
    return problems


async def message_body(request: web.Request) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """A message's JSON and its files: a JSON body, or a multipart form with `payload_json`
    and a `files[n]` part per file (how Discord takes uploads)."""
    if not request.content_type.startswith("multipart/"):
        return await request.json(), []
    body: dict[str, Any] = {}
    files: list[tuple[str, bytes]] = []
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "payload_json":
            body = json.loads(await part.text())
        elif part.name and part.name.startswith("files["):
            files.append((part.filename or "", bytes(await part.read())))
    return body, files


def limit_violations(body: Mapping[str, Any], files: int = 0) -> list[str]:
    """What Discord would refuse in a message body. Lengths are counted in UTF-16 code units
    (never fewer than Discord counts: the render promises to fit in those); a field whose
    value or name is empty, or only spaces, is refused, as Discord does."""
    problems: list[str] = []
    content = body.get("content") or ""
    if _units(content) > 2000:
        problems.append(f"content has {_units(content)} characters (limit 2000)")
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        problems.append(f"{len(embeds)} embeds (limit 10)")
    total = 0
    for i, embed in enumerate(embeds):
        parts = {
            "title": (embed.get("title") or "", 256),
            "description": (embed.get("description") or "", 4096),
            "footer": ((embed.get("footer") or {}).get("text") or "", 2048),
            "author": ((embed.get("author") or {}).get("name") or "", 256),
        }
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems.append(f"embed {i} has {len(fields)} fields (limit 25)")
        for j, f in enumerate(fields):
            parts[f"field {j} name"] = (f.get("name") or "", 256)
            parts[f"field {j} value"] = (f.get("value") or "", 1024)
            for key in ("name", "value"):
                if not str(f.get(key) or "").strip():
                    problems.append(f"embed {i} field {j} {key} is empty")
        for name, (text, limit) in parts.items():
            if _units(text) > limit:
                problems.append(f"embed {i} {name} has {_units(text)} characters (limit {limit})")
            total += _units(text)
    if total > 6000:
        problems.append(f"embeds have {total} characters in all (limit 6000)")
    if not content and not embeds and not files:
        problems.append("empty message")
    return problems + component_violations(body.get("components") or [])


def component_violations(rows: list[dict[str, Any]]) -> list[str]:
    """What Discord refuses in a message's buttons: 5 action rows of 5 buttons, labels of 80
    characters, custom ids of 100, each custom id once a message."""
    problems: list[str] = []
    if len(rows) > 5:
        problems.append(f"{len(rows)} action rows (limit 5)")
    ids: list[str] = []
    for row in rows:
        buttons = row.get("components") or []
        if row.get("type") != 1 or not 1 <= len(buttons) <= 5:
            problems.append(f"an action row of {len(buttons)} components")
        for button in buttons:
            ids.append(str(button.get("custom_id")))
            if len(button.get("label") or "") > 80 or len(ids[-1]) > 100:
                problems.append(f"button {ids[-1]!r} has a label or id too long")
    if len(set(ids)) != len(ids):
        problems.append("a custom_id twice in one message")
    return problems


_MENTION = re.compile(r"@everyone|@here|<@[!&]?\d+>")


@dataclass(frozen=True)
class Posted:
    """A message the fake accepted (channel post, follow-up or callback message)."""

    channel_id: int
    body: dict[str, Any]
    at: float
    id: int = 0
    files: tuple[tuple[str, bytes], ...] = ()
    """The uploads that came with it: (filename, bytes)."""

    @property
    def content(self) -> str:
        return str(self.body.get("content") or "")

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.body.get("embeds") or [])

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        return self.body.get("allowed_mentions")

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.body.get("flags") or 0) & EPHEMERAL)

    def would_ping(self) -> bool:
        """True if Discord would notify someone: a mention in the content that
        `allowed_mentions` does not switch off (without it, every mention pings)."""
        if not _MENTION.search(self.content):
            return False
        allowed = self.allowed_mentions
        if allowed is None:
            return True
        return bool(allowed.get("parse") or allowed.get("users") or allowed.get("roles"))

    def text(self) -> str:
        """Content and every embed's visible text, for assertions."""
        parts = [self.content]
        for embed in self.embeds:
            parts += [embed.get("title") or "", embed.get("description") or ""]
            parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields") or []]
            parts.append((embed.get("footer") or {}).get("text") or "")
        return "\n".join(parts)


@dataclass(frozen=True)
class Callback:
    """An interaction callback (`POST /interactions/{id}/{token}/callback`)."""

    interaction_id: int
    token: str
    type: int
    data: dict[str, Any]
    at: float
    files: tuple[tuple[str, bytes], ...] = ()

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & EPHEMERAL)


@dataclass
class _Faults:
    status: int
    times: int | None  # None: every request
    after: int = 0  # posts let through first


@dataclass
class _Gateway:
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    """Every identified session; like Discord, each gets every event."""
    sequence: int = 0
    identify: dict[str, Any] | None = None
    sessions: int = 0
    heartbeats: int = 0
    query: dict[str, str] = field(default_factory=dict)


class FakeDiscord:
    def __init__(
        self,
        *,
        guild_ids: tuple[int, ...] = (GUILD_ID,),
        channel_ids: tuple[int, ...] = (CHANNEL_ID, OTHER_CHANNEL_ID),
        role_ids: tuple[int, ...] = (ROLE_ID,),
    ) -> None:
        self.token = TOKEN
        self.guild_ids = guild_ids
        self.channel_ids = channel_ids
        self.role_ids = role_ids
        self.requests: list[tuple[str, str]] = []
        self.messages: list[Posted] = []
        self.post_delay = 0.0
        self.channel_delays: dict[int, float] = {}
        """Per channel, instead of `post_delay`: seconds between creating a message and
        answering."""
        self.deduplicated = 0
        self.callbacks: list[Callback] = []
        self.callback_attempts: list[int] = []
        """The interaction id of every callback request, accepted or not."""
        self.followups: dict[str, list[Posted]] = {}
        self.refused: list[tuple[dict[str, Any], list[str]]] = []
        self.command_syncs: list[tuple[int | None, list[dict[str, Any]]]] = []
        self.commands: dict[tuple[int | None, str], int] = {}
        self.gateway = _Gateway()
        self.users: set[int] = {MEMBER_ID, OWNER_ID}
        """Users the bot shares a server with: it can open a DM channel with them."""
        self.closed_dms: set[int] = set()
        """Users who don't take direct messages from the bot (their privacy settings)."""
        self.dm_channels: dict[int, int] = {}
        """DM channel id -> its user."""
        self._faults: dict[int, _Faults] = {}
        self._pressed: dict[int, Posted] = {}
        """Per component interaction id: the message whose button was pressed."""
        self.edits: dict[str, list[dict[str, Any]]] = {}
        """Per interaction token: the edits of the message whose button was pressed."""
        self._unavailable = 0
        self._ids = itertools.count(1200000000000000000)
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        api = "/api/v10"
        routes = [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/gateway", self._gateway_info),
            ("GET", "/gateway/bot", self._gateway_info),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("POST", "/users/@me/channels", self._create_dm),
            ("PUT", "/applications/{app_id}/commands", self._sync),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._sync),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("POST", "/webhooks/{app_id}/{token}", self._followup),
            ("PATCH", "/webhooks/{app_id}/{token}/messages/@original", self._edit_original),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, self._authorized(handler))
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        for socket in list(self.gateway.sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    # -- test controls -----------------------------------------------------------------------

    def fail_channel(
        self, channel_id: int, status: int, *, times: int | None = None, after: int = 0
    ) -> None:
        """Answer posts to `channel_id` with `status` (401, 403, 404, 429...), `times` times
        or for good, once `after` posts went through."""
        self._faults[channel_id] = _Faults(status, times, after)

    def heal_channel(self, channel_id: int) -> None:
        self._faults.pop(channel_id, None)

    def unavailable(self, times: int) -> None:
        """Answer the next `times` REST requests, whatever they are, with 503."""
        self._unavailable = times

    def revoke_token(self) -> None:
        self.token = "revoked"

    def posted(self, channel_id: int = CHANNEL_ID) -> list[Posted]:
        return [m for m in self.messages if m.channel_id == channel_id]

    def dms(self, user_id: int) -> list[Posted]:
        """Direct messages the fake accepted for `user_id`."""
        return [m for m in self.messages if self.dm_channels.get(m.channel_id) == user_id]

    def replies(self, token: str) -> list[Posted]:
        """Messages that answered the interaction with this token: a callback's message
        (type 4) and follow-ups, in order."""
        first = [
            Posted(0, c.data, c.at, files=c.files)
            for c in self.callbacks
            if c.token == token and c.type == 4
        ]
        return first + self.followups.get(token, [])

    def callbacks_for(self, token: str) -> list[Callback]:
        return [c for c in self.callbacks if c.token == token]

    async def wait_until(self, probe: Callable[[], T | None], within: float = 5.0) -> T:
        """Poll `probe` until it returns something truthy; fail after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake Discord saw nothing matching in {within}s")
            await asyncio.sleep(0.01)

    async def wait_identified(self, sessions: int = 1, within: float = 5.0) -> None:
        """Until `sessions` clients have been identified (READY and GUILD_CREATE sent)."""
        await self.wait_until(lambda: self.gateway.sessions >= sessions, within)

    async def dispatch(self, event: str, data: Mapping[str, Any]) -> None:
        if not self.gateway.sockets:
            raise AssertionError("no client is connected to the fake gateway")
        for socket in list(self.gateway.sockets):
            await self._send_event(socket, event, data)

    async def _send_event(
        self, socket: web.WebSocketResponse, event: str, data: Mapping[str, Any]
    ) -> None:
        self.gateway.sequence += 1
        await socket.send_str(
            json.dumps({"op": 0, "t": event, "s": self.gateway.sequence, "d": data})
        )

    async def send_interaction(self, payload: Mapping[str, Any]) -> str:
        """Push INTERACTION_CREATE; returns the interaction's token."""
        await self.dispatch("INTERACTION_CREATE", payload)
        return str(payload["token"])

    # -- payloads ----------------------------------------------------------------------------

    def complete(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """An older or documentation interaction payload with the keys Discord sends today
        added (discord.py needs `attachment_size_limit`, `application_id`, `version` and the
        member's `flags`; the channel object carries `channel_id`); present keys are kept."""
        done = dict(payload)
        if "member" in done:
            done["member"] = {"flags": 0, **done["member"]}
        done.setdefault("application_id", str(APPLICATION_ID))
        done.setdefault("version", 1)
        done.setdefault("attachment_size_limit", ATTACHMENT_SIZE_LIMIT)
        done.setdefault("app_permissions", str(BOT_PERMISSIONS))
        done.setdefault("entitlements", [])
        if "channel" not in done and "channel_id" in done:
            done["channel"] = _text_channel(int(done["channel_id"]), int(done["guild_id"]))
        return done

    def snowflake(self) -> int:
        return next(self._ids)

    def bot_user(self) -> dict[str, Any]:
        return _user(BOT_USER_ID, "papers-bot", bot=True)

    def slash(
        self,
        subcommand: str,
        *,
        user_id: int = MEMBER_ID,
        roles: tuple[int, ...] = (),
        permissions: int = MODERATOR_PERMISSIONS,
        app_permissions: int = BOT_PERMISSIONS,
        channel_id: int = CHANNEL_ID,
        guild_id: int = GUILD_ID,
        focused: str | None = None,
        **options: str | int,
    ) -> dict[str, Any]:
        """A complete `/papers <subcommand>` INTERACTION_CREATE payload, as Discord sends
        it today; `focused` names the option being typed (an autocomplete request)."""
        command_guild = guild_id if (guild_id, "papers") in self.commands else None
        command_id = self.commands.get((command_guild, "papers"))
        if command_id is None:
            raise AssertionError("/papers was never synced to the fake Discord")
        inner = []
        for name, value in options.items():
            option: dict[str, Any] = {"name": name, "type": 4 if isinstance(value, int) else 3}
            option["value"] = value
            if name == focused:
                option["focused"] = True
            inner.append(option)
        data: dict[str, Any] = {
            "id": str(command_id),
            "name": "papers",
            "type": 1,
            "options": [{"type": 1, "name": subcommand, "options": inner}],
        }
        if command_guild is not None:
            data["guild_id"] = str(command_guild)
        return self.interaction(
            data,
            type=4 if focused else 2,
            user_id=user_id,
            roles=roles,
            permissions=permissions,
            app_permissions=app_permissions,
            channel_id=channel_id,
            guild_id=guild_id,
        )

    def interaction(
        self,
        data: dict[str, Any],
        *,
        type: int = 2,
        user_id: int = MEMBER_ID,
        roles: tuple[int, ...] = (),
        permissions: int = MODERATOR_PERMISSIONS,
        app_permissions: int = BOT_PERMISSIONS,
        channel_id: int = CHANNEL_ID,
        guild_id: int = GUILD_ID,
    ) -> dict[str, Any]:
        interaction_id = self.snowflake()
        return {
            "id": str(interaction_id),
            "application_id": str(APPLICATION_ID),
            "type": type,
            "data": data,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": _text_channel(channel_id, guild_id),
            "member": {
                "user": _user(user_id, f"member{user_id % 1000}"),
                "roles": [str(r) for r in roles],
                "permissions": str(permissions),
                "joined_at": "2024-01-01T00:00:00+00:00",
                "nick": None,
                "avatar": None,
                "deaf": False,
                "mute": False,
                "pending": False,
                "premium_since": None,
                "flags": 0,
                "communication_disabled_until": None,
            },
            "token": f"interaction-token-{interaction_id}",
            "version": 1,
            "app_permissions": str(app_permissions),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }

    def in_dm(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The same interaction as Discord sends it from a DM with the bot: no guild, the
        `user` in place of the `member`, a DM channel."""
        done = {k: v for k, v in payload.items() if k not in ("guild_id", "guild", "member")}
        user = payload["member"]["user"]
        done["user"] = user
        done["channel"] = {"id": done["channel_id"], "type": 1, "recipients": [user], "flags": 0}
        done["context"] = 1
        done["authorizing_integration_owners"] = {"1": user["id"]}
        done["data"] = {k: v for k, v in payload["data"].items() if k != "guild_id"}
        return done

    def press(
        self,
        message: Posted,
        custom_id: str,
        *,
        user_id: int = MEMBER_ID,
        guild_id: int = GUILD_ID,
    ) -> dict[str, Any]:
        """The INTERACTION_CREATE payload of `user_id` pressing the button `custom_id` of
        `message`, as Discord sends it (`type` 3, the message with its components)."""
        ids = [
            b.get("custom_id")
            for r in message.body.get("components") or []
            for b in r["components"]
        ]
        if custom_id not in ids:
            raise AssertionError(f"no button {custom_id!r} on that message: {ids}")
        payload = self.interaction(
            {"custom_id": custom_id, "component_type": 2},
            type=3,
            user_id=user_id,
            channel_id=message.channel_id or CHANNEL_ID,
            guild_id=guild_id,
        )
        payload["message"] = self._message(
            message.channel_id or CHANNEL_ID, message.body, message.id
        )
        self._pressed[int(payload["id"])] = message
        return payload

    def _message(
        self, channel_id: int, body: Mapping[str, Any], message_id: int | None = None
    ) -> dict[str, Any]:
        return {
            "id": str(message_id or self.snowflake()),
            "channel_id": str(channel_id),
            "type": 0,
            "content": body.get("content") or "",
            "author": self.bot_user(),
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": _now(),
            "edited_timestamp": None,
            "flags": int(body.get("flags") or 0),
            "components": _components(body.get("components") or []),
        }

    def _guild(self, guild_id: int) -> dict[str, Any]:
        everyone = {"id": str(guild_id), "name": "@everyone", "permissions": "0"}
        roles: list[dict[str, Any]] = [everyone] + [
            {"id": str(r), "name": f"role{r % 1000}", "permissions": "0"} for r in self.role_ids
        ]
        for position, role in enumerate(roles):
            role.update(
                color=0, hoist=False, position=position, managed=False, mentionable=False, flags=0
            )
        return {
            "id": str(guild_id),
            "name": f"guild{guild_id % 1000}",
            "icon": None,
            "owner_id": str(OWNER_ID),
            "roles": roles,
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [_text_channel(c, guild_id) for c in self.channel_ids],
            "threads": [],
            "members": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "member_count": 2,
            "large": False,
            "unavailable": False,
            "joined_at": "2024-01-01T00:00:00+00:00",
            "preferred_locale": "en-US",
            "premium_tier": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "system_channel_flags": 0,
        }

    # -- REST --------------------------------------------------------------------------------

    def _authorized(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def checked(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, request.path))
            if self._unavailable > 0:
                self._unavailable -= 1
                return error_response(503)
            webhook = request.path.startswith(("/api/v10/interactions/", "/api/v10/webhooks/"))
            if not webhook and request.headers.get("Authorization") != f"Bot {self.token}":
                return error_response(401)
            response: web.StreamResponse = await handler(request)
            return response

        return checked

    async def _unknown(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        return json_response({"message": "404: Not Found", "code": 0}, 404)

    async def _me(self, request: web.Request) -> web.Response:
        return json_response(self.bot_user())

    async def _application(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "id": str(APPLICATION_ID),
                "name": "papers-bot",
                "icon": None,
                "description": "",
                "summary": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": _user(OWNER_ID, "owner"),
                "team": None,
                "bot": self.bot_user(),
                "interactions_endpoint_url": None,
            }
        )

    async def _gateway_info(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _post_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        fault = self._faults.get(channel_id)
        if fault is not None and fault.after > 0:
            fault.after -= 1
        elif fault is not None and fault.times != 0:
            if fault.times is not None:
                fault.times -= 1
            return error_response(fault.status)
        if channel_id not in self.channel_ids and channel_id not in self.dm_channels:
            return error_response(404)
        body = await request.json()
        if problems := limit_violations(body):
            self.refused.append((body, problems))
            return json_response({"code": 50035, "message": "Invalid Form Body"}, 400)
        if self.dm_channels.get(channel_id) in self.closed_dms:
            code, message = CANNOT_MESSAGE_USER
            return json_response({"message": message, "code": code}, 403)
        nonce = body.get("nonce") if body.get("enforce_nonce") else None
        if nonce is not None:
            # Discord returns the earlier message instead of creating a second one.
            earlier = [m for m in self.posted(channel_id) if m.body.get("nonce") == nonce]
            if earlier:
                self.deduplicated += 1
                return json_response(self._message(channel_id, earlier[0].body, earlier[0].id))
        message = self._message(channel_id, body)
        self.messages.append(Posted(channel_id, body, time.monotonic(), int(message["id"])))
        delay = self.channel_delays.get(channel_id, self.post_delay)
        if delay:
            # The message exists; the answer is late. A client killed now never sees it.
            await asyncio.sleep(delay)
        return json_response(message)

    async def _create_dm(self, request: web.Request) -> web.Response:
        """Create DM: JSON `{"recipient_id": snowflake}`; the user's DM channel object (the
        one that exists already, if any). A user the bot shares no server with: 10013."""
        body = await request.json()
        raw = body.get("recipient_id") if isinstance(body, dict) else None
        if set(body) != {"recipient_id"} or not str(raw).isdecimal():
            return json_response({"code": 50035, "message": "Invalid Form Body"}, 400)
        user_id = int(str(raw))
        if user_id not in self.users:
            code, message = UNKNOWN_USER
            return json_response({"message": message, "code": code}, 404)
        channel_id = next((c for c, u in self.dm_channels.items() if u == user_id), None)
        if channel_id is None:
            channel_id = self.snowflake()
            self.dm_channels[channel_id] = user_id
        return json_response(
            {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [_user(user_id, f"member{user_id % 1000}")],
            }
        )

    async def _sync(self, request: web.Request) -> web.Response:
        guild = request.match_info.get("guild_id")
        guild_id = int(guild) if guild else None
        commands = await request.json()
        self.command_syncs.append((guild_id, commands))
        for key in [k for k in self.commands if k[0] == guild_id]:
            del self.commands[key]
        answer = []
        for command in commands:
            command_id = self.snowflake()
            self.commands[(guild_id, command["name"])] = command_id
            registered = {**command, "id": str(command_id), "application_id": str(APPLICATION_ID)}
            if guild_id is not None:
                registered["guild_id"] = str(guild_id)
            registered.setdefault("version", str(command_id))
            answer.append(registered)
        return json_response(answer)

    async def _callback(self, request: web.Request) -> web.Response:
        interaction_id = int(request.match_info["interaction_id"])
        token = request.match_info["token"]
        body, files = await message_body(request)
        data = body.get("data") or {}
        self.callback_attempts.append(interaction_id)
        if any(c.interaction_id == interaction_id for c in self.callbacks):
            refusal = {"code": 40060, "message": "Interaction has already been acknowledged."}
            return json_response(refusal, 400)
        problems = file_violations(files, data) + limit_violations(data, len(files))
        if body["type"] == 4 and problems:
            self.refused.append((data, problems))
            return json_response({"code": 50035, "message": "Invalid Form Body"}, 400)
        self.callbacks.append(
            Callback(interaction_id, token, body["type"], data, time.monotonic(), tuple(files))
        )
        flags = int(data.get("flags") or 0)
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(interaction_id),
                "type": 2,
                "response_message_id": str(self.snowflake()),
                "response_message_loading": body["type"] == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": {"type": body["type"]},
        }
        if body["type"] == 4:
            answer["resource"]["message"] = self._message(CHANNEL_ID, data)
        return json_response(answer)

    async def _followup(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if not any(c.token == token for c in self.callbacks):
            return json_response({"message": "Unknown Webhook", "code": 10015}, 404)
        body, files = await message_body(request)
        if problems := file_violations(files, body) + limit_violations(body, len(files)):
            self.refused.append((body, problems))
            return json_response({"code": 50035, "message": "Invalid Form Body"}, 400)
        posted = Posted(0, body, time.monotonic(), files=tuple(files))
        self.followups.setdefault(token, []).append(posted)
        return json_response(self._message(CHANNEL_ID, body))

    async def _edit_original(self, request: web.Request) -> web.Response:
        """A component interaction's message edited after a deferred update (type 6)."""
        token = request.match_info["token"]
        found = [c for c in self.callbacks if c.token == token and c.type == 6]
        if not found:
            return json_response({"message": "Unknown Webhook", "code": 10015}, 404)
        pressed = self._pressed[found[0].interaction_id]
        body = await request.json()
        if problems := limit_violations({**pressed.body, **body}):
            self.refused.append((body, problems))
            return json_response({"code": 50035, "message": "Invalid Form Body"}, 400)
        pressed.body.update({k: v for k, v in body.items() if k != "allowed_mentions"})
        self.edits.setdefault(token, []).append(body)
        channel_id = pressed.channel_id or CHANNEL_ID
        return json_response(self._message(channel_id, pressed.body, pressed.id))

    # -- gateway -----------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.gateway.query = dict(request.query)
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(message.data)
            if payload["op"] == 1:
                self.gateway.heartbeats += 1
                await socket.send_str(json.dumps({"op": 11}))
            elif payload["op"] == 2:
                await self._identify(socket, payload["d"])
        if socket in self.gateway.sockets:
            self.gateway.sockets.remove(socket)
        return socket

    async def _identify(self, socket: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.gateway.identify = data
        if data.get("token") != self.token:
            await socket.close(code=4004, message=b"Authentication failed.")
            return
        self.gateway.sessions += 1
        ready = {
            "v": 10,
            "user": self.bot_user(),
            "guilds": [{"id": str(g), "unavailable": True} for g in self.guild_ids],
            "session_id": f"fake-session-{self.gateway.sessions}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APPLICATION_ID), "flags": 0},
            "private_channels": [],
        }
        await self._send_event(socket, "READY", ready)
        for guild_id in self.guild_ids:
            await self._send_event(socket, "GUILD_CREATE", self._guild(guild_id))
        self.gateway.sockets.append(socket)


def _components(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Action rows as Discord returns them: every button with its style and `disabled`."""
    return [
        {
            "type": 1,
            "components": [{"style": 2, "disabled": False, **b} for b in row.get("components", [])],
        }
        for row in rows
    ]


def _user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": str(user_id),
        "username": name,
        "global_name": None,
        "discriminator": "0",
        "avatar": None,
        "public_flags": 0,
    }
    if bot:
        user["bot"] = True
    return user


def _text_channel(channel_id: int, guild_id: int) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": f"papers-{channel_id % 1000}",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }
