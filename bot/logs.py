"""Logging to stderr, as key=value text or JSON lines; secrets scrubbed, libraries quiet."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable

_CHATTY = ("arxiv", "urllib3", "slack_sdk", "slack_bolt", "discord", "asyncio", "aiohttp")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            # `exc_text`: the traceback as `Redact` left it (formatted once, scrubbed).
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class Redact(logging.Filter):
    """Last line of defence: no token or secret reaches a log line, whoever logs it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        record.msg, record.args = message, None
        return True


def configure(level: str = "INFO", fmt: str = "kv", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
        )
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _CHATTY:
        # DEBUG output of the HTTP clients includes request headers, and so tokens.
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # It warns at every start that voice support is missing; the bot has no voice.
    logging.getLogger("discord.client").setLevel(logging.ERROR)
