"""Logging to stderr as `time level logger message`; library loggers kept quiet."""

from __future__ import annotations

import logging
import sys

_CHATTY = ("arxiv", "urllib3", "slack_sdk", "slack_bolt", "discord", "asyncio", "aiohttp")


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _CHATTY:
        # DEBUG output of the HTTP clients includes request headers, and so tokens.
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
