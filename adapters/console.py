"""The console platform: prints each digest, for ad-hoc runs and `--dry-run`."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.models import Digest
from bot.publishing import Delivered
from bot.terminal import authors, format_digest, format_paper, safe

__all__ = ["ConsolePublisher", "authors", "format_digest", "format_paper", "safe"]


class ConsolePublisher:
    """Prints each digest; stands in for every platform in `--dry-run`."""

    needs_recent = False
    shows_everything = True

    def __init__(self, platform: str = "console", stream: TextIO | None = None) -> None:
        self.platform = platform
        self._stream = stream

    async def publish(self, digest: Digest, delivered: Delivered) -> None:
        stream = self._stream or sys.stdout
        stream.write(format_digest(digest) + "\n")
        stream.flush()
        await delivered([item.paper.id for item in digest.items])

    async def aclose(self) -> None:
        """Nothing to let go of: the stream is the caller's."""
