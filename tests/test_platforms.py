"""Platforms are plugins: the core imports no adapter, the built-in platforms are found by
name through their entry points, and a package installed beside the bot adds a platform
without touching `bot/` (a real distribution on the path, a real `papers-bot` process)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import platforms
from bot.settings import Settings, SettingsError
from tests.fakes.arxiv_server import FakeArxiv, make_paper

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = ["console", "discord", "markdown", "slack", "webhook"]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_core_imports_no_adapter() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if m.startswith("adapters"))
        for path in (ROOT / "bot").glob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_cli_and_jobs_do_not_import_each_other_both_ways() -> None:
    assert "bot.cli" not in _imports(ROOT / "bot" / "jobs.py")


def test_the_built_in_platforms_are_found_by_name() -> None:
    found = platforms.installed()
    assert list(found) == BUILT_IN or set(BUILT_IN) <= set(found)
    assert {found[name].source for name in BUILT_IN} == {"papers-bot"}
    loaded = platforms.load(BUILT_IN)
    assert loaded["slack"].serve is not None and loaded["discord"].serve is not None
    assert loaded["webhook"].serve is None and loaded["webhook"].keeps_state
    assert not loaded["markdown"].keeps_state


def test_a_platform_and_its_output_agree_on_showing_everything_at_once() -> None:
    settings = Settings()
    loaded = platforms.load(["console", "markdown", "webhook"])
    said = {
        name: (p.shows_everything, p.publisher(settings).shows_everything)
        for name, p in loaded.items()
    }
    assert said == {"console": (True, True), "markdown": (True, True), "webhook": (False, False)}


def test_dry_runs_console_stands_in_showing_what_the_platform_would() -> None:
    from bot.jobs import publishers

    shown = publishers(Settings(), platforms.load(["markdown", "slack"]), dry_run=True)
    assert {name: out.shows_everything for name, out in shown.items()} == {
        "markdown": True,
        "slack": False,
    }


def test_an_unknown_platform_names_the_installed_ones() -> None:
    with pytest.raises(SettingsError, match=r"'mattermost' is installed \(installed: console, "):
        platforms.load(["mattermost", "slack"])


def test_finding_the_platforms_imports_no_chat_library() -> None:
    code = (
        "import sys\n"
        "from bot import platforms\n"
        "platforms.load(platforms.installed())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('slack_bolt', 'slack_sdk', 'discord', 'aiohttp')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


PLUGIN = '''
"""A third-party platform: appends each digest's papers to a file (its channel)."""

from pathlib import Path

from bot.platforms import Platform


class FilePublisher:
    platform = "tiny"
    needs_recent = False

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def publish(self, digest, delivered):
        ids = [item.paper.id for item in digest.items]
        with Path(digest.channel.id).open("a") as out:
            out.writelines(f"{self.prefix}{pid}\\n" for pid in ids)
        await delivered(ids)


PLATFORM = Platform(
    publisher=lambda settings: FilePublisher(settings.plugins.get("tiny", {}).get("prefix", "")),
    keeps_state=False,
)
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """A distribution `tiny-plugin` installed into a folder on the path: its module and a
    dist-info with the entry point, as pip would leave them."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "tiny_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "tiny_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[papers_bot.platforms]\ntiny = tiny_plugin:PLATFORM\n")
    return site


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"Reward model study {n}") for n in range(1, 4)]
    with FakeArxiv(papers) as fake:
        yield fake


def _papers_bot(site: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    env.pop("PAPERS_BOT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_a_plugin_package_adds_a_platform_without_touching_the_core(
    plugin_dir: Path, arxiv: FakeArxiv, tmp_path: Path
) -> None:
    out = tmp_path / "tiny-channel.txt"
    config = tmp_path / "settings.toml"
    config.write_text(
        'redis_url = "memory://"\n'
        f'[arxiv]\napi_url = "{arxiv.url}"\nrss_url = "{arxiv.rss_url}"\nrequest_interval = 0\n'
        '[plugins.tiny]\nprefix = "paper "\n'
        f'[[subscriptions]]\nplatform = "tiny"\nchannel = "{out}"\nkeywords = ["reward model"]\n'
    )
    check = _papers_bot(plugin_dir, config, "check")
    assert "tiny (tiny-plugin)" in check.stdout and "console (papers-bot)" in check.stdout

    done = _papers_bot(plugin_dir, config, "digest")
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines() == [f"paper 2611.{n:05d}" for n in (3, 2, 1)]


def test_a_subscription_to_a_platform_nobody_installed_is_one_line(
    arxiv: FakeArxiv, tmp_path: Path
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(
        'redis_url = "memory://"\n'
        '[[subscriptions]]\nplatform = "tiny"\nchannel = "x"\nkeywords = ["reward model"]\n'
    )
    done = _papers_bot(tmp_path, config, "digest")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "papers-bot: no platform named 'tiny' is installed "
        "(installed: console, discord, markdown, slack, webhook)"
    ]
