"""A fake incoming webhook (Mattermost, Rocket.Chat, Zulip's Slack-compatible integration,
Discord's `/slack` endpoint all take the same JSON) on 127.0.0.1, in the test's event loop.

Every path is a webhook: `fake.url("team-a")` is `http://127.0.0.1:PORT/hooks/team-a`.
A POST with a JSON object holding `text` is accepted (200 "ok") and recorded with its
arrival time; faults queued with `fail_next` answer the next requests instead (429 with
Retry-After, 5xx, 404), and those are not recorded as accepted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Accepted:
    path: str
    text: str
    at: float
    """time.monotonic() on arrival."""


@dataclass(slots=True)
class _Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class FakeWebhook:
    def __init__(self) -> None:
        self.accepted: list[Accepted] = []
        self.requests = 0
        self._faults: deque[_Fault] = deque()
        self._faults_of: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.on_accept: Callable[[int], None] | None = None
        """Called with the number of messages accepted so far, before the 200 is sent (in
        the test's event loop: a `time.sleep` there pauses the bot as a stopped VM would)."""
        self.answer_delay = 0.0
        """Seconds between accepting a message and answering (a client timing out before
        then never learns it was accepted)."""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._port}/hooks/{name}"

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = "",
        name: str | None = None,
    ) -> None:
        """The next `times` requests (to the hook `name` only, when given) get `status`."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
        faults = self._faults if name is None else self._faults_of[f"/hooks/{name}"]
        faults.extend(_Fault(status, dict(headers or {}), raw) for _ in range(times))

    def texts(self, name: str) -> list[str]:
        return [a.text for a in self.accepted if a.path == f"/hooks/{name}"]

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests += 1
        faults = self._faults_of.get(request.path) or self._faults
        if faults:
            fault = faults.popleft()
            return web.Response(status=fault.status, headers=fault.headers, body=fault.body)
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return web.Response(status=400, text="missing_text")
        self.accepted.append(Accepted(request.path, payload["text"], time.monotonic()))
        if self.on_accept is not None:
            self.on_accept(len(self.accepted))
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return web.Response(text="ok")
