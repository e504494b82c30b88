"""The shared seed's 40 rows (arXiv's own answers for "Reward Model" and "Reasoning") are
all found by the Markdown output and by `recent`, through the real arXiv client against
the fake arXiv holding them. The digest and both chat paths: test_daily_listing.py,
test_slack_publisher.py and test_discord_app.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.markdown import MarkdownPublisher
from bot.arxiv_source import ArxivSource
from bot.commands import CommandContext, Commands
from bot.digest import DigestRunner
from bot.models import Channel
from bot.settings import Settings
from bot.state.memory import MemoryStore
from tests.fakes.arxiv_server import FakeArxiv
from tests.seed import seed_fake_papers, seed_ids, seed_listing, seed_sections

NOW = datetime(2025, 4, 24, 8, 0, tzinfo=UTC)


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv(seed_fake_papers()) as fake:
        fake.listing = seed_listing(NOW.date())
        yield fake
        assert fake.errors == []


def _settings(arxiv: FakeArxiv) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": {
                "api_url": arxiv.url,
                "rss_url": arxiv.rss_url,
                "oai_url": "",
                "request_interval": 0,
            }
        }
    )


async def test_every_seed_row_is_in_the_markdown_table(arxiv: FakeArxiv, tmp_path: Path) -> None:
    settings = _settings(arxiv)
    out = tmp_path / "README.md"
    runner = DigestRunner(
        settings,
        MemoryStore(),
        ArxivSource(settings.arxiv),
        {"markdown": MarkdownPublisher(kept=100)},
        clock=lambda: NOW,
    )
    report = await runner.run({Channel("markdown", str(out)): ["Reward Model", "Reasoning"]})
    assert report.ok
    sections = re.split(r"^## ", out.read_text(encoding="utf-8"), flags=re.M)[1:]
    found = {s.split("\n", 1)[0]: set(re.findall(r"arxiv\.org/abs/([\d.]+)v", s)) for s in sections}
    assert found.keys() == seed_ids().keys()
    for keyword, ids in seed_ids().items():
        assert ids <= found[keyword]  # with the other keyword's papers that answer it too


@pytest.mark.parametrize("keyword", ["Reward Model", "Reasoning"])
async def test_recent_lists_every_seed_row(keyword: str) -> None:
    answered = {p.id for p in seed_sections()[keyword]}
    with FakeArxiv([p for p in seed_fake_papers() if p.id in answered]) as arxiv:
        await _recent_lists_all(arxiv, keyword)


async def _recent_lists_all(arxiv: FakeArxiv, keyword: str) -> None:
    settings = _settings(arxiv)
    commands = Commands(settings, MemoryStore(), ArxivSource(settings.arxiv), clock=lambda: NOW)
    ctx = CommandContext(Channel("console", "terminal"), "cli")
    reply = await commands.recent(ctx, keyword, 20)
    assert {p.id for p in reply.papers} == seed_ids()[keyword]
