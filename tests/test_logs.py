"""The log handler `bot.logs.configure` installs: secrets scrubbed in both formats."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import configure

SECRET = "xoxb-very-secret"


@pytest.fixture(autouse=True)
def _root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _fail_with_the_secret() -> None:
    try:
        raise RuntimeError(f"Slack refused token {SECRET}")
    except RuntimeError:
        logging.getLogger("bot.test").exception("slack_failed token=%s", SECRET)


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_a_traceback_is_scrubbed_in_both_formats(
    capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """Issue 22, finding 10: with `log_format = "json"` the traceback bypassed the scrubber."""
    configure("INFO", fmt, secrets=[SECRET])
    _fail_with_the_secret()
    text = capsys.readouterr().err
    assert "Traceback" in text and "RuntimeError: Slack refused token ***" in text
    assert SECRET not in text
    if fmt == "json":
        (line,) = text.splitlines()
        entry = json.loads(line)
        assert entry["message"] == "slack_failed token=***"
        assert entry["exception"].endswith("RuntimeError: Slack refused token ***")
