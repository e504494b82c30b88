"""`/papers saved bibtex` end to end: the real bolt app (HTTP mode) against the fake Slack,
which takes the file through `files.getUploadURLExternal`, the upload and
`files.completeUploadExternal`; the real discord.py client against the fake Discord, which
takes it as a multipart attachment. What arrives is read back by `bibtexparser`."""

# ruff: noqa: F811  (fixtures of test_slack_app and test_discord_app, imported by name)

from __future__ import annotations

from urllib.parse import urlencode

import bibtexparser
from bibtexparser.model import Entry

from adapters.slack.render import unescape
from bot.bibtex import FILENAME
from bot.models import Paper
from bot.state.redis import RedisStore
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv
from tests.fakes.discord_api import MEMBER_ID, FakeDiscord
from tests.fakes.slack_api import block_problems
from tests.test_discord_app import make_settings, running
from tests.test_slack_app import (  # noqa: F401  (arxiv, bot, make_bot: its fixtures)
    Bot,
    arxiv,
    bot,
    make_bot,
)

FIELDS = {"title", "author", "year", "eprint", "archivePrefix", "primaryClass", "url"}
HOSTILE = [
    paper(1, title="50% & {unbalanced <!channel> @everyone ```code``` \\"),
    paper(2, title=r"$\alpha$-Reward \emph{Modeling}", journal_ref="JMLR 25 (2024) 1-30"),
    paper(3, title="Plain", authors=("Barnes and Noble Lab",)),
]


def entries(text: str) -> dict[str, Entry]:
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    return {e.key: e for e in library.entries}


def check_all(text: str, papers: list[Paper]) -> None:
    found = entries(text)
    assert list(found) == [p.id for p in reversed(papers)]  # newest saved first
    for one in papers:
        names = {f.key for f in found[one.id].fields}
        assert names == FIELDS | ({"journal"} if one.journal_ref else set())
        assert found[one.id].entry_type == ("article" if one.journal_ref else "misc")


async def save(store: RedisStore, user: str, papers: list[Paper]) -> None:
    for one in papers:
        await store.signals.toggle_saved(user, one)


# Slack ---------------------------------------------------------------------------------


async def test_slack_sends_the_file_to_the_users_direct_messages(bot: Bot) -> None:
    await save(bot.store, "slack:U0ALICE", HOSTILE)
    _, response = await bot.run("saved bibtex")
    assert response.body["response_type"] == "ephemeral"
    said = response.blocks[0]["text"]["text"]
    assert said.startswith(f"Your 3 saved papers as BibTeX ({FILENAME})")
    assert "Sent to your direct messages with papers-bot" in said
    assert len(response.blocks) == 1, "no code blocks once the file went"
    (file,) = bot.slack.shared_files(bot.slack.dm_of("U0ALICE"))
    assert file.filename == FILENAME and file.length == len(file.content or b"")
    check_all(file.text, HOSTILE)
    methods = bot.slack.methods()
    assert methods.index("files.getUploadURLExternal") < methods.index(
        "files.completeUploadExternal"
    )


async def test_slack_without_the_file_scope_shows_code_blocks_that_parse(bot: Bot) -> None:
    bot.slack.scopes.discard("files:write")
    await save(bot.store, "slack:U0ALICE", HOSTILE)
    _, response = await bot.run("saved bibtex")
    assert not bot.slack.files
    assert "direct messages" not in response.blocks[0]["text"]["text"]
    assert block_problems(response.blocks) == []
    code = [b["text"]["text"] for b in response.blocks[1:]]
    assert all(c.startswith("```\n") and c.endswith("\n```") for c in code)
    assert all(c.count("```") == 2 for c in code), "a title's backticks can't close the block"
    assert "<!channel>" not in "".join(code)
    text = "\n".join(unescape(c[4:-4]).replace("\u200b", "") for c in code)
    check_all(text, HOSTILE)


async def test_slack_fallback_for_many_papers_stays_within_five_answers(bot: Bot) -> None:
    bot.slack.scopes.discard("im:write")
    many = [paper(n, title=f"Long title {n} " + "words " * 80) for n in range(10, 90)]
    await save(bot.store, "slack:U0ALICE", many)
    command = bot.slash("saved bibtex")
    await bot.post(urlencode(command.fields()))
    key = command.response_url.rsplit("/", 1)[1]
    await bot.slack.wait_until(lambda: any("more:" in r.text for r in bot.slack.responses_to(key)))
    answers = bot.slack.responses_to(key)
    assert 2 <= len(answers) <= 5, "a response_url takes five answers"
    for answer in answers:
        assert block_problems(answer.blocks) == []
    assert "grant it Slack's files:write and im:write scopes" in answers[-1].text


async def test_slack_saved_with_a_wrong_format_is_one_line(bot: Bot) -> None:
    await save(bot.store, "slack:U0ALICE", HOSTILE)
    assert await bot.say("saved pdf") == ":warning: Use: saved, or saved bibtex"
    assert not bot.slack.files


# Discord -------------------------------------------------------------------------------


async def test_discord_attaches_the_file_privately(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    await save(redis_store, f"discord:{MEMBER_ID}", HOSTILE)
    async with running(discord_fake, make_settings(discord_fake, arxiv), redis_store) as bot:
        (answer,) = await bot.run("saved", format="bibtex")
    assert answer.ephemeral and not answer.would_ping()
    assert answer.content.startswith(f"Your 3 saved papers as BibTeX ({FILENAME})")
    ((name, data),) = answer.files
    assert name == FILENAME
    assert [a["filename"] for a in answer.body["attachments"]] == [FILENAME]
    check_all(data.decode(), HOSTILE)
    assert discord_fake.refused == []


async def test_discord_saved_without_format_still_lists(
    discord_fake: FakeDiscord, arxiv: FakeArxiv, redis_store: RedisStore
) -> None:
    await save(redis_store, f"discord:{MEMBER_ID}", HOSTILE[:1])
    async with running(discord_fake, make_settings(discord_fake, arxiv), redis_store) as bot:
        (answer,) = await bot.run("saved")
    assert answer.files == () and len(answer.embeds) == 1
