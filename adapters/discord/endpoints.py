"""Where one discord.py client connects: `[discord] api_url` and `gateway_url` (a fake
Discord in tests, a proxy in production), for that client alone.

discord.py keeps Discord's addresses per process (`Route.BASE`, `DiscordWebSocket.
DEFAULT_GATEWAY`); they are left alone here. `redirect` rewrites, on the one client it is
given, what leaves through its three doors: its REST requests (`client.http.request`), its
gateway connection (`client.http.ws_connect`), and the interaction responses and follow-ups,
which discord.py sends through a webhook adapter it reads from a context variable, set when
the client logs in (so in the task that runs it, and the tasks that task starts). Two clients
with different targets can run in one process.
"""

from __future__ import annotations

from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

from bot.settings import DiscordSettings

DISCORD_API = Route.BASE
"""Discord's own REST prefix (`https://discord.com/api/v10`), the one rewritten."""
DISCORD_GATEWAY = DiscordWebSocket.DEFAULT_GATEWAY


def rebased(url: str, api: str) -> str:
    """`url` under `api` instead of Discord's REST prefix; any other URL as it is."""
    return api + url[len(DISCORD_API) :] if url.startswith(DISCORD_API) else url


def regated(url: str, gateway: yarl.URL) -> str:
    """Discord's default gateway URL (with its query) at `gateway`; any other (a resume
    URL Discord gave) as it is."""
    asked = yarl.URL(url)
    if asked.with_query(None) != DISCORD_GATEWAY:
        return url
    return str(gateway.with_query(asked.query))


class _RebasedWebhooks(AsyncWebhookAdapter):
    """discord.py's webhook adapter (interaction responses, follow-ups), under `api`."""

    def __init__(self, api: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._api = api

    async def request(self, route: Route, *args: Any, **kwargs: Any) -> Any:
        route.url = rebased(route.url, self._api)
        return await super().request(route, *args, **kwargs)


def redirect(client: discord.Client, settings: DiscordSettings) -> None:
    """`client` pointed at `[discord] api_url` (for example `http://127.0.0.1:8080/api/v10`)
    and `gateway_url`; an empty one keeps Discord's. Only this client's attributes change."""
    http = client.http
    if settings.api_url:
        api = settings.api_url.rstrip("/")
        request, login = http.request, client.login

        async def rebased_request(route: Route, **kwargs: Any) -> Any:
            route.url = rebased(route.url, api)
            return await request(route, **kwargs)

        async def login_rebased(token: str) -> None:
            async_context.set(_RebasedWebhooks(api))
            await login(token)

        http.request = rebased_request  # type: ignore[method-assign]
        client.login = login_rebased  # type: ignore[method-assign]
    if settings.gateway_url:
        gateway, ws_connect = yarl.URL(settings.gateway_url), http.ws_connect

        async def regated_connect(url: str, **kwargs: Any) -> Any:
            return await ws_connect(regated(url, gateway), **kwargs)

        http.ws_connect = regated_connect  # type: ignore[method-assign]
