"""papers-bot core: settings, arXiv fetching, matching, Redis state, digests and commands."""

__version__ = "0.1.0"
