"""`papers-bot` commands, in-process, against the fake arXiv and a real Redis."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from adapters.console import format_digest
from bot.cli import main
from bot.models import Channel, Digest, DigestItem
from tests.conftest import RedisServer, free_port
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, FakePaper, make_paper


def recent_paper(n: int, title: str) -> FakePaper:
    """Submitted n hours ago: the CLI runs on the real clock."""
    return make_paper(n, title=title, published=datetime.now(UTC) - timedelta(hours=10 - n))


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    papers = [recent_paper(n, title=f"Reward model number {n}") for n in range(1, 4)]
    papers.append(recent_paper(9, title="Unrelated <!channel> \x1b[31mred"))
    with FakeArxiv(papers) as server:
        yield server


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake: FakeArxiv) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PAPERS_BOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERS_BOT_ARXIV__API_URL", fake.url)
    monkeypatch.setenv("PAPERS_BOT_ARXIV__RSS_URL", fake.rss_url)
    monkeypatch.setenv("PAPERS_BOT_ARXIV__REQUEST_INTERVAL", "0")
    monkeypatch.setenv("PAPERS_BOT_ARXIV__RETRY_BACKOFF", "0")
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")


def test_dry_run_for_a_keyword_needs_no_redis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["digest", "--dry-run", "--keyword", "reward model"]) == 0
    out = capsys.readouterr().out
    assert "Reward model number 3" in out and "Reward model number 1" in out
    assert "Unrelated" not in out


def test_console_output_strips_terminal_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["digest", "--keyword", "unrelated"]) == 0
    out = capsys.readouterr().out
    assert "Unrelated <!channel> [31mred" in out and "\x1b" not in out


def test_a_bad_keyword_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["digest", "--keyword", "a OR b"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("papers-bot: Search operators") and "\n" not in err


def test_posting_without_redis_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "settings.toml").write_text(
        '[[subscriptions]]\nplatform = "markdown"\nchannel = "R.md"\nkeywords = ["reward model"]\n'
    )
    assert main(["digest"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("papers-bot: cannot reach Redis at redis://127.0.0.1:") and "\n" not in err
    )


def test_a_bad_settings_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "settings.toml").write_text("[arxiv]\ntimeout = 'soon'\n")
    assert main(["check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "arxiv.timeout" in err and "settings.toml" in err and "\n" not in err


def test_markdown_subscription_rewrites_the_file_every_digest(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    fake: FakeArxiv,
) -> None:
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", redis_server.url)
    monkeypatch.setenv("PAPERS_BOT_KEY_PREFIX", "cli-md")
    (tmp_path / "settings.toml").write_text(
        '[[subscriptions]]\nplatform = "markdown"\nchannel = "out/README.md"\n'
        'keywords = ["Reward Model"]\n'
    )
    assert main(["digest"]) == 0
    text = (tmp_path / "out" / "README.md").read_text()
    assert "## Reward Model" in text and text.count("| **[Reward model number") == 3
    fake.papers.append(recent_paper(5, title="Reward model number 5"))
    assert main(["digest"]) == 0
    assert (tmp_path / "out" / "README.md").read_text().count("| **[Reward model number") == 4


def test_markdown_command_writes_the_seed_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", "memory://")
    assert main(["markdown", "-k", "reward model", "-o", "papers.md"]) == 0
    text = (tmp_path / "papers.md").read_text()
    assert text.startswith("# Daily Papers\n") and "## reward model\n" in text


def test_markdown_needs_no_redis_the_file_keeps_its_own_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # PAPERS_BOT_REDIS_URL names a port nothing listens on (see `env`).
    assert main(["markdown", "-k", "reward model", "-o", "papers.md"]) == 0
    text = (tmp_path / "papers.md").read_text()
    assert "Reward model number 3" in text and "Reward model number 1" in text
    assert "using an in-memory store" in capsys.readouterr().err


def test_recent_prints_the_latest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", "memory://")
    assert main(["recent", "reward model", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "Reward model number 3" in out and "Reward model number 2" in out
    assert "number 1" not in out


def test_check_reports_each_part(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", redis_server.url)
    monkeypatch.setenv("PAPERS_BOT_DISCORD__APPLICATION_ID", "1234")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "redis: ok" in out and "arxiv: ok" in out and "slack: not configured" in out
    assert "event loop: uvloop " in out or "event loop: asyncio" in out
    assert "discord: invite https://discord.com/oauth2/authorize?client_id=1234" in out


def test_check_fails_when_arxiv_is_down(
    capsys: pytest.CaptureFixture[str], fake: FakeArxiv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERS_BOT_ARXIV__MAX_RETRIES", "0")
    fake.fail_next(503)
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "redis: FAILED" in out and "arxiv: FAILED" in out


def test_help_does_not_import_the_chat_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom bot.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('slack_bolt', 'slack_sdk', 'discord', 'arxiv', 'redis')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_recent_refuses_bad_input_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", "memory://")
    assert main(["recent", "(reward model"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("papers-bot: A keyword can't contain parentheses")


@pytest.mark.parametrize("command", [["digest"], ["run"]])
def test_posting_to_chat_without_a_real_redis_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    (tmp_path / "settings.toml").write_text(
        '[[subscriptions]]\nplatform = "slack"\nchannel = "C1"\nkeywords = ["reward model"]\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERS_BOT_REDIS_URL", "memory://")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith('papers-bot: redis_url = "memory://" remembers nothing')
    assert err.count("\n") == 1


def test_console_marks_new_versions_and_says_how_many_more() -> None:
    revised = paper(1, title="Reward model", version=2)
    digest = Digest(
        Channel("console", "terminal"),
        date(2026, 11, 4),
        ("reward model",),
        items=[
            DigestItem(revised, ("reward model",), True),
            DigestItem(paper(2), ("reward model",)),
        ],
        more=3,
    )
    text = format_digest(digest)
    assert "• New version v2: Reward model\n" in text
    assert "• Paper number 2\n" in text
    assert text.rstrip().endswith("…and 3 more new papers.")


@pytest.mark.parametrize("command", [["check"], ["run"], ["digest"]])
def test_no_command_prints_a_redis_password_given_in_the_query(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake: FakeArxiv,
    command: list[str],
) -> None:
    """Issue 22, finding 8: `?password=` (redis-py reads it) was printed as given, and
    `check` printed `arxiv.api_url` with its credentials."""
    (tmp_path / "settings.toml").write_text(
        '[[subscriptions]]\nplatform = "markdown"\nchannel = "R.md"\nkeywords = ["reward model"]\n'
    )
    port = free_port()
    monkeypatch.setenv(
        "PAPERS_BOT_REDIS_URL", f"redis://127.0.0.1:{port}/0?password=hunter2-redis-password"
    )
    monkeypatch.setenv(
        "PAPERS_BOT_ARXIV__API_URL", fake.url.replace("://", "://reader:hunter2-arxiv-pass@")
    )
    expected = 1 if command == ["check"] else 2
    assert main(command) == expected
    out, err = capsys.readouterr()
    assert f"cannot reach Redis at redis://***@127.0.0.1:{port}/0: " in out + err
    if command == ["check"]:
        assert f"arxiv: ok ({fake.url.replace('://', '://***@')})" in out
    assert "hunter2" not in out + err
