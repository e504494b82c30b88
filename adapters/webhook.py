"""The webhook platform: digests posted to an incoming webhook as Slack-compatible JSON.

`platform = "webhook"`, `channel` = the webhook's URL. Each message is `{"text": ...}`
with Markdown links (`[title](url)`), which Mattermost, Rocket.Chat, Zulip's
Slack-compatible integration and Discord's `/slack` endpoint all accept; at most
`[webhook] max_chars` characters a message (2000 by default, Discord's limit). A webhook
can't receive commands: its channels follow the keywords of the settings file.

Text from arXiv is escaped for Markdown, mentions are broken (`@\u200beveryone`) and bare
URLs are not linked, so a paper can't ping anyone or forge a link. The URL is a secret: it
is shown only as its host and a digest (`bot.models.Channel`). Posts to one URL are paced
`[webhook] interval` apart; a 429 is waited out (Retry-After) up to `max_retries` times,
unless it asks for more than `max_retry_after` seconds (or the run is asked to stop
meanwhile); that, any other refusal, a 5xx or no answer fails the channel for this run,
and its papers come with the next one (nothing is marked seen before its message was
accepted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from bot import metrics
from bot.links import venue
from bot.models import Channel, Digest, DigestItem, Paper
from bot.publishing import ChannelPacer, Delivered, DeliveryError, pause
from bot.settings import WebhookSettings
from bot.terminal import authors, safe
from bot.wording import links, more_papers

log = logging.getLogger(__name__)

_MARKDOWN = re.compile(r"([\\`*_~\[\]()<>|#!])")
_SAFE_URL = re.compile(r"^https://[\w.:/%~+-]+$")
ZERO_WIDTH = "\u200b"


def escape(text: str) -> str:
    """One line of arXiv text that renders as itself: Markdown escaped, mentions and bare
    links broken."""
    text = _MARKDOWN.sub(r"\\\1", safe(text))
    return text.replace("@", "@" + ZERO_WIDTH).replace("://", ":" + ZERO_WIDTH + "//")


def _links(paper: Paper) -> list[str]:
    """PDF, HTML and the first repository the paper names, as Markdown links; a URL that
    could end its link early is left out."""
    return [f"[{label}]({url})" for label, url in links(paper) if _SAFE_URL.match(url)]


def render_item(item: DigestItem) -> str:
    paper = item.paper
    title = escape(paper.title)
    if item.revised:
        title = f"New version v{paper.version}: {title}"
    parts = [
        escape(authors(paper.authors)),
        escape(paper.primary_category),
        paper.published.date().isoformat(),
        *_links(paper),
    ]
    where = venue(paper)
    if where:
        parts.append(escape(where))
    meta = " · ".join(parts)
    lines = [f"• **[{title}]({paper.abs_url})**", f"  {meta}"]
    if len(item.keywords) > 1:
        lines.append("  Also matches: " + ", ".join(escape(k) for k in item.keywords[1:]))
    return "\n".join(lines)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def messages(digest: Digest, max_chars: int) -> list[tuple[str, list[str]]]:
    """The digest as messages of at most `max_chars`, each with the ids of its papers."""
    keywords = ", ".join(escape(k) for k in digest.keywords)
    if not digest.items:
        return [(_fit(f"No new papers today for {keywords}.", max_chars), [])]
    header = f"**New on arXiv · {digest.day:%a %-d %b %Y}** · {len(digest.items)} paper(s)"
    out: list[tuple[str, list[str]]] = []
    text = header
    ids: list[str] = []
    for keyword, items in digest.by_keyword():
        heading = f"\n\n__{escape(keyword)}__"
        for n, item in enumerate(items):
            block = (heading if n == 0 else "") + "\n" + render_item(item)
            if ids and len(text) + len(block) > max_chars:
                out.append((text, ids))
                text, ids = f"__{escape(keyword)}__ (continued)", []
                block = "\n" + render_item(item)
            text = _fit(text + block, max_chars)
            ids.append(item.paper.id)
    if digest.more:
        more = f"\n\n{more_papers(digest.more)}"
        if len(text) + len(more) > max_chars:
            out.append((text, ids))
            text, ids = more.strip(), []
        else:
            text += more
    out.append((text, ids))
    return out


class WebhookPublisher:
    platform = "webhook"
    needs_recent = False
    shows_everything = False

    def __init__(self, settings: WebhookSettings) -> None:
        self._cfg = settings
        self._session: aiohttp.ClientSession | None = None
        self._pacer = ChannelPacer(settings.interval)
        self._locks: dict[str, asyncio.Lock] = {}

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        for text, ids in messages(digest, self._cfg.max_chars):
            await self._post(digest.channel, text)
            await delivered(ids)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, channel: Channel, text: str) -> None:
        lock = self._locks.setdefault(channel.id, asyncio.Lock())
        async with lock:
            for attempt in range(self._cfg.max_retries + 1):
                async with self._pacer.slot(channel.id):
                    status, retry_after = await self._send(channel, text)
                if 200 <= status < 300:
                    return
                if status == 429:
                    metrics.rate_limited("webhook")
                if status == 429 and attempt < self._cfg.max_retries:
                    await self._wait_out(channel, retry_after)
                    continue
                raise DeliveryError(channel, _refusal(status))

    async def _wait_out(self, channel: Channel, retry_after: float) -> None:
        """A 429's wait, when it is no longer than `max_retry_after` and the run is not
        asked to stop meanwhile; otherwise the channel fails for this run."""
        cap = self._cfg.max_retry_after
        if retry_after > cap:
            raise DeliveryError(
                channel,
                f"the webhook asked to wait {retry_after:g}s (Retry-After), more than "
                f"[webhook] max_retry_after ({cap:g}s); the papers come next run",
            )
        log.warning("webhook_rate_limited channel=%s wait=%.1fs", channel, retry_after)
        metrics.retry_after_waited("webhook", retry_after)
        if not await pause(retry_after, "webhook: HTTP 429 (Retry-After)"):
            raise DeliveryError(channel, "stopped while rate limited; the papers come next run")

    async def _send(self, channel: Channel, text: str) -> tuple[int, float]:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._cfg.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            async with self._session.post(channel.id, json={"text": text}) as response:
                body = await response.read()
                return response.status, _retry_after(response.headers, body)
        except (aiohttp.ClientError, TimeoutError) as err:
            # The URL is the secret: only the kind of failure is said.
            raise DeliveryError(
                channel, f"cannot reach the webhook: {type(err).__name__}"
            ) from None


DEFAULT_RETRY_AFTER = 1.0
"""Seconds waited after a 429 that says nothing readable about how long."""


def _retry_after(headers: Mapping[str, str], body: bytes) -> float:
    """Seconds to wait after a 429: Retry-After (seconds or an HTTP date), or Discord's JSON
    `retry_after`; else 1. Unbounded (`inf` stays inf): the caller compares it with its cap."""
    value = headers.get("Retry-After")
    try:
        if value is not None:
            return _seconds(value)
        data = json.loads(body) if body else {}
        return _seconds(data.get("retry_after", DEFAULT_RETRY_AFTER))
    except (ValueError, TypeError, AttributeError, OverflowError):
        return DEFAULT_RETRY_AFTER


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)  # "86400", "2.5", "inf"
    except ValueError:
        when = parsedate_to_datetime(value)  # an HTTP date; ValueError when it is none
        seconds = (when - datetime.now(UTC)).total_seconds()
    return DEFAULT_RETRY_AFTER if math.isnan(seconds) else max(0.0, seconds)


def _refusal(status: int) -> str:
    if status == 429:
        return "rate limited by the webhook (429), retries exhausted"
    if status >= 500:
        return f"the webhook's server failed (HTTP {status}); the papers come next run"
    if status in (401, 403, 404, 410):
        return f"the webhook refused the URL (HTTP {status}): check the subscription's channel"
    return f"the webhook refused the message (HTTP {status})"
