"""Slash commands acked before bolt handles them (Slack's HTTP mode).

Under a burst of commands, bolt's own work before an ack (parsing the form, a Web API client
for each request, its middleware chain) held up the acks still to come (BENCHMARKS.md,
figure 3). Here a signed slash command seen for the
first time is acked at once; bolt then handles the same request in the background, once no
request awaits its ack (`settled`), marked `ACKED_HERE`, and runs the listener as before (its
own response is dropped). A request without a good signature is refused here with 401 and
one log line of ours, never with its body (bolt logs the whole body, so a newline in it
would forge log lines, and answers a timestamp that is not a number with HTTP 500).
Everything else goes to bolt unchanged: buttons and other payloads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.claims import Claim, answers_here

log = logging.getLogger(__name__)


ACKED_HERE = "papers_bot_acked_here"
"""In the context of a request acked here, its signature claimed: bolt's replay guard leaves
it alone, and nothing bolt answers reaches Slack."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SIGNATURE_WINDOW = 5 * 60
"""Seconds a request's timestamp may be off: Slack's window, as `SignatureVerifier` has it."""
TIMESTAMP_DIGITS = 12
"""Digits a timestamp may have (seconds since 1970 have 10 until the year 2286)."""


class AcksFirst:
    """An aiohttp middleware in front of bolt's handler (`handle`)."""

    def __init__(
        self,
        app: AsyncApp,
        signing_secret: str,
        first_use: Claim,
        ack_body: Callable[[Mapping[str, str]], str],
        settled: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._app = app
        self._settled = settled
        self._verifier = SignatureVerifier(signing_secret)
        self._first_use = first_use
        self._ack_body = ack_body
        self._handling: set[asyncio.Task[Any]] = set()

    @web.middleware
    async def handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        body = await request.text()  # aiohttp keeps it for bolt's handler
        headers = request.headers
        signature = headers.get("x-slack-signature", "")
        timestamp = headers.get("x-slack-request-timestamp", "")
        refused = self._refusal(body, timestamp, signature)
        if refused is not None:
            log.warning("slack_request_refused reason=%r", refused)
            return web.json_response({"error": "invalid request"}, status=401)
        form = dict(parse_qsl(body))
        if "command" not in form:
            return await handler(request)
        # Without the store every command fails anyway; let it answer that.
        if not await answers_here(self._first_use(signature), "slack_replay_check_failed"):
            log.warning("slack_request_refused reason='replayed signature'")
            return web.Response(status=401, text="")
        task = asyncio.create_task(self._dispatch(body, request.query_string, headers))
        self._handling.add(task)
        task.add_done_callback(self._handled)
        return web.Response(text=self._ack_body(form))

    def _refusal(self, body: str, timestamp: str, signature: str) -> str | None:
        """Why a request is not Slack's, in a few words; None when it is."""
        if not signature or not timestamp:
            return "no signature"
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= TIMESTAMP_DIGITS):
            return "bad timestamp"
        if abs(self._verifier.clock.now() - int(timestamp)) > SIGNATURE_WINDOW:
            return "stale timestamp"
        if not self._verifier.is_valid(body, timestamp, signature):
            return "bad signature"
        return None

    async def _dispatch(self, body: str, query: str, headers: Mapping[str, str]) -> None:
        if self._settled is not None:
            await self._settled()  # the acks of the burst first, then bolt's work
        marked = AsyncBoltRequest(
            body=body,
            query=query,
            headers=headers,  # type: ignore[arg-type]
            context={ACKED_HERE: True},
        )
        await self._app.async_dispatch(marked)

    def _handled(self, task: asyncio.Task[Any]) -> None:
        self._handling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("slack_command_failed error=%r", str(task.exception()))
