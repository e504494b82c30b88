"""How long each kept thing is kept, and how many of them at most: the "kept" column of
README.md's Redis key table. Both twins read these as `limits.NAME` when they run, so a test
that lowers one (`monkeypatch.setattr(limits, "MAX_WEEK", 3)`) lowers it for both."""

from __future__ import annotations

from datetime import timedelta

# the store's ---------------------------------------------------------------------------

ATTEMPT_KEPT = timedelta(days=2)
"""A channel's last delivery attempt matters on its day only."""
RECENT_KEPT = timedelta(days=30)
"""A keyword's recent list outlives its last fetch by this long (then nobody follows it)."""
FETCHED_KEPT = timedelta(days=60)
"""Fetch times older than the longest window are forgotten: such a keyword is new again."""
LISTING_MEMORY_KEPT = timedelta(days=30)
"""How long the last listing received is remembered per feed (its versioned ids, split and
ETags, tens of kB): a bot stopped longer judges the next listing fresh without it."""
GONE_KEPT = timedelta(days=30)
"""How long the failure counts of gone channels (`note_gone`) outlive their last failure."""
SAVE_RECENT_BATCH = 50
"""Keywords whose recent lists go to Redis in one round trip."""

# signals' (votes, saved papers, the week) ----------------------------------------------

PAPER_KEPT = timedelta(days=30)
VOTES_KEPT = timedelta(days=180)
MAX_VOTED = 300
"""Papers a channel keeps votes on; the oldest first vote goes first."""
TASTE_PAPERS = 100
"""The most recently voted papers that rank a channel's digest."""
SAVED_KEPT = timedelta(days=365)
MAX_SAVED = 200
REMEMBER_BATCH = 200
WEEK_KEPT = timedelta(days=8)
"""A channel's posted papers are kept for its weekly post: a week, and a day for a late one."""
MAX_WEEK = 1000
"""Papers a channel's week keeps (the oldest posted go first): 7 days of a busy channel."""

# alerts' -------------------------------------------------------------------------------

MAX_SAVERS = 1000
"""Users told about one paper at most: the earliest savers are kept."""
READ_BATCH = 500
"""`P:savers` keys read in one pipeline."""
