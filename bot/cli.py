"""`papers-bot`: parses the command line, loads the settings, hands over to `bot.jobs`.

Nothing heavy is imported before the arguments are parsed, so `--help` answers at once;
platforms are plugins that `bot.jobs` loads only for the commands that use them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="papers-bot",
        description="Posts new arXiv papers for the keywords a channel follows.",
    )
    parser.add_argument("--version", action="version", version=f"papers-bot {__version__}")
    parser.add_argument(
        "--config", type=Path, help="settings file (default: $PAPERS_BOT_CONFIG or ./settings.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    digest = sub.add_parser("digest", help="run one digest now for every subscription, then exit")
    digest.add_argument(
        "--dry-run", action="store_true", help="print instead of posting; mark nothing"
    )
    digest.add_argument(
        "--keyword",
        "-k",
        action="append",
        default=[],
        help="ad-hoc run to the terminal for this keyword (repeatable); needs no Redis",
    )

    recent = sub.add_parser("recent", help="print the latest papers for a keyword")
    recent.add_argument("keyword")
    recent.add_argument("-n", type=int, default=5, help="how many (default 5)")

    markdown = sub.add_parser("markdown", help="write a Daily Papers README for keywords")
    markdown.add_argument("--keyword", "-k", action="append", required=True)
    markdown.add_argument("--output", "-o", type=Path, default=Path("README.md"))

    saved = sub.add_parser("saved", help="print a user's saved papers (🔖)")
    saved.add_argument(
        "--user", required=True, help="whose, as PLATFORM:USER (slack:U0123ABCD, discord:1234…)"
    )
    saved.add_argument("--bibtex", action="store_true", help="as BibTeX, for a reference manager")

    sub.add_parser("check", help="validate settings, reach Redis and arXiv, say what is wrong")
    sub.add_parser("run", help="the service: answer /papers commands and post on schedule")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Imported once the arguments are parsed: `--help` answers without pydantic or asyncio.
    # `runtime.run` is `asyncio.run` on uvloop where installed (see bot/runtime.py).
    from bot import runtime
    from bot.jobs import CliError, dispatch
    from bot.logs import configure as configure_logging
    from bot.settings import SettingsError, load_settings, secret_values

    try:
        settings = load_settings(args.config)
        configure_logging(
            settings.log_level, settings.service.log_format, secrets=secret_values(settings)
        )
        return runtime.run(dispatch(args, settings))
    except (SettingsError, CliError) as err:
        print(f"papers-bot: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
