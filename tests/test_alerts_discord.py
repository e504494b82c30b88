"""Saved papers followed on Discord: a paper saved with a press pushed to the real discord.py
client over the fake gateway, a later listing carrying its v2 and a journal reference, the
saver told once by a direct message (`POST /users/@me/channels`, then the message) that
discord.py's REST client sends to the fake Discord; closed DMs leave nothing; real Redis."""

# ruff: noqa: F811  (the arxiv fixture of test_discord_app, imported by name)

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from bot.state.redis import RedisStore
from bot.votes import SAVE
from tests.fakes.arxiv_server import FakeArxiv, FakeListing, FakePaper, make_paper
from tests.fakes.discord_api import MEMBER_ID, FakeDiscord, limit_violations
from tests.test_discord_app import (
    arxiv,  # noqa: F401  (its fixture)
    run_digest,
    running,
)
from tests.test_discord_buttons import PAPER, posted_digest, pressed, settings_for

JOURNAL = "Phys. Rev. Lett. 134, 010101"


def announce(arxiv: FakeArxiv, days: int, items: list[tuple[FakePaper, str]]) -> None:
    """A listing `days` after the first one, with three unrelated new papers."""
    first = arxiv.everything_today().day
    fresh = [make_paper(500 + 10 * days + n, title=f"Unrelated {days} {n}") for n in range(3)]
    arxiv.listing = FakeListing(
        day=first + timedelta(days=days), items=[*items, *((p, "new") for p in fresh)]
    )


def revise(arxiv: FakeArxiv, **changes: object) -> FakePaper:
    current = max((p for p in arxiv.papers if p.id == PAPER), key=lambda p: p.version)
    revised = current.new_version(**changes)
    arxiv.papers.append(revised)
    return revised


async def saved_then_revised(
    fake: FakeDiscord, arxiv: FakeArxiv, store: RedisStore, *, title: str = ""
) -> FakePaper:
    """MEMBER_ID saves PAPER from the day's digest; the next listing carries its v2 with a
    journal reference (and a new title, when given)."""
    message = await posted_digest(fake, arxiv, store)
    async with running(fake, settings_for(fake, arxiv), store) as bot:
        token = await pressed(bot, message, f"{SAVE}:{PAPER}")
        assert fake.followups[token][0].content.startswith("Saved ")
    changes: dict[str, object] = {"journal_ref": JOURNAL}
    if title:
        changes["title"] = title
    v2 = revise(arxiv, **changes)
    announce(arxiv, 1, [(v2, "replace")])
    return v2


async def test_a_saved_paper_whose_v2_and_journal_ref_arrive_tells_its_saver_once(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    v2 = await saved_then_revised(discord_fake, arxiv, redis_store, title="@everyone look <@1>")
    report = await run_digest(settings_for(discord_fake, arxiv), redis_store)
    assert report.ok

    (dm,) = discord_fake.dms(MEMBER_ID)
    assert dm.content.splitlines() == [
        "A paper you saved has news:",
        "• New version: v2 (you saved v1)",
        f"• Journal reference: {JOURNAL}",
        "/papers set alerts off stops these messages.",
    ]
    (embed,) = dm.embeds
    assert "everyone" in embed["title"] and "@everyone" not in embed["title"]
    assert dm.allowed_mentions == {"parse": []} and not dm.would_ping()
    assert limit_violations(dm.body) == []
    assert ("POST", "/api/v10/users/@me/channels") in discord_fake.requests

    announce(arxiv, 2, [(v2, "replace-cross")])  # the same version again: no news
    assert (await run_digest(settings_for(discord_fake, arxiv), redis_store)).ok
    assert len(discord_fake.dms(MEMBER_ID)) == 1, "told once"


async def test_closed_dms_send_nothing_and_log_one_line(
    discord_fake: FakeDiscord,
    arxiv: FakeArxiv,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await saved_then_revised(discord_fake, arxiv, redis_store)
    discord_fake.closed_dms.add(MEMBER_ID)
    with caplog.at_level(logging.INFO):
        report = await run_digest(settings_for(discord_fake, arxiv), redis_store)
    assert report.ok
    assert discord_fake.dms(MEMBER_ID) == []
    lines = [r.getMessage() for r in caplog.records if "alert" in r.getMessage()]
    (refused,) = [line for line in lines if not line.startswith("alerts_done")]
    assert refused.startswith(f"alert_undeliverable platform=discord user={MEMBER_ID}")
    assert "50007" in refused


async def test_alerts_off_from_discord(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    message = await posted_digest(discord_fake, arxiv, redis_store)
    async with running(discord_fake, settings_for(discord_fake, arxiv), redis_store) as bot:
        await pressed(bot, message, f"{SAVE}:{PAPER}")
        (answer,) = await bot.run("set", option="alerts", state="off")
        assert (
            answer.content == "Alerts are off: the bot no longer tells you about papers you saved."
        )
    announce(arxiv, 1, [(revise(arxiv, journal_ref=JOURNAL), "replace")])
    assert (await run_digest(settings_for(discord_fake, arxiv), redis_store)).ok
    assert discord_fake.dms(MEMBER_ID) == []


async def test_the_fake_discord_creates_dm_channels_as_discord_documents_it(
    discord_fake: FakeDiscord,
) -> None:
    url = f"{discord_fake.api_url}/users/@me/channels"
    headers = {"Authorization": f"Bot {discord_fake.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def create(body: object) -> tuple[int, dict[str, Any]]:
            async with http.post(url, json=body) as answer:
                return answer.status, await answer.json()

        status, channel = await create({"recipient_id": str(MEMBER_ID)})
        assert status == 200 and channel["type"] == 1
        assert channel["recipients"][0]["id"] == str(MEMBER_ID)
        assert (await create({"recipient_id": str(MEMBER_ID)}))[1]["id"] == channel["id"]
        assert (await create({"recipient_id": "4242"})) == (
            404,
            {"message": "Unknown User", "code": 10013},
        )
        assert (await create({"recipients": [str(MEMBER_ID)]}))[0] == 400
