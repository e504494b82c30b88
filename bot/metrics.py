"""What `papers-bot run` serves at `/metrics` (Prometheus' text format), in one place.

Every metric is defined here, with its help text. The code that does the work reports
through the functions below, which find the process's `Metrics` in a context variable,
as the publishers find `STOP_ASKED`: `Service.run` sets it, and the tasks it starts (the
schedule, the chat adapters, their handlers) inherit it. Outside a service (`papers-bot
digest`, most tests) it is unset and each function returns at once. Each `Metrics` has a
registry of its own, so that two services in one process (tests, the bench) never share a
count.

Label values are bounded and say nothing private: a platform name, an arXiv request kind, a
digest phase, a command kind; never a channel id, a keyword, a user or a secret.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "papers_bot"

ARXIV_KINDS = ("listing", "details", "search", "oai")
"""What an arXiv request is for: the day's listing (RSS), submission dates and comments of
the papers about to be posted (API by id), a keyword search (API), a page of OAI-PMH."""
PHASES = ("listing", "catch_up", "details", "delivery")
"""A digest's phases, in order: reading the listing, catching up the days channels missed
(OAI-PMH or window searches), the posted papers' details, posting to every channel."""
COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a command that asks nothing of arXiv answers in milliseconds, one that does
waits for arXiv's paced requests (seconds)."""


@dataclass(frozen=True, slots=True)
class ScrapeState:
    """What `/metrics` reads from Redis at each scrape (None: could not be read)."""

    redis_up: bool
    used_memory: int | None = None
    maxmemory: int | None = None
    listing_age: float | None = None


class _Scraped:
    """The values of the last scrape's reading, only those that are known: an absent series
    says "unknown" where a stale or zero one would mislead."""

    def __init__(self) -> None:
        self.state: ScrapeState | None = None

    def collect(self) -> Iterable[Metric]:
        state = self.state
        if state is None:
            return
        yield _gauge(
            "redis_up", "1 when Redis answered this scrape's INFO, else 0.", 1.0 * state.redis_up
        )
        if state.used_memory is not None:
            yield _gauge(
                "redis_used_memory_bytes",
                "Bytes Redis uses (`used_memory` of INFO memory), read at scrape time.",
                state.used_memory,
            )
        if state.maxmemory is not None:
            yield _gauge(
                "redis_maxmemory_bytes",
                "Redis' `maxmemory` in bytes, 0 when it has no limit; read at scrape time.",
                state.maxmemory,
            )
        if state.listing_age is not None:
            yield _gauge(
                "listing_age_seconds",
                "Seconds since the start (US Eastern) of the day of the last arXiv listing a "
                "digest received, by any replica; read from Redis at scrape time.",
                state.listing_age,
            )


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=value)


class Metrics:
    """One process's metrics, in a registry of their own. prometheus_client is imported
    here, not with the module: the commands that report nothing (`papers-bot digest` from
    cron) do not pay its import (tens of milliseconds)."""

    def __init__(self, *, process: bool = True) -> None:
        """`process`: also the process's CPU, memory and open files (`process_…`, Linux)."""
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            ProcessCollector,
            Summary,
            disable_created_metrics,
        )

        # Without them: a `…_created` timestamp beside every counter doubles a scrape, and
        # Prometheus' text format does not need it (process-wide, as prometheus_client has it).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if process:
            ProcessCollector(registry=r)
        self.scraped = _Scraped()
        r.register(self.scraped)
        self.papers_posted = Counter(
            f"{PREFIX}_papers_posted_total",
            "Papers posted by digests, counted as each message is delivered.",
            ["platform"],
            registry=r,
        )
        self.channels_failed = Counter(
            f"{PREFIX}_channels_failed_total",
            "Channels a digest could not deliver to in full (their papers wait for the next "
            "run); a run cut short by a stop counts none.",
            ["platform"],
            registry=r,
        )
        self.digests = Counter(
            f"{PREFIX}_digests_total",
            "Digest runs by outcome: ok (every channel delivered), failed (a channel or a "
            "keyword failed), stale (arXiv served a listing received before), stopped (cut "
            "short by a stop), error (the run raised, e.g. Redis unreachable).",
            ["outcome"],
            registry=r,
        )
        self.digest_seconds = Summary(
            f"{PREFIX}_digest_duration_seconds",
            "Wall time of whole digest runs.",
            registry=r,
        )
        self.phase_seconds = Summary(
            f"{PREFIX}_digest_phase_duration_seconds",
            "Wall time of each phase of digest runs: listing, catch_up, details, delivery.",
            ["phase"],
            registry=r,
        )
        self.last_success = Gauge(
            f"{PREFIX}_digest_last_success_timestamp_seconds",
            "Unix time at which this process last finished a digest on a fresh listing "
            "(channels that failed in it count in papers_bot_channels_failed_total); 0: never.",
            registry=r,
        )
        self.arxiv_requests = Counter(
            f"{PREFIX}_arxiv_requests_total",
            "HTTP requests to arXiv by kind (listing, details, search, oai), retries included.",
            ["kind"],
            registry=r,
        )
        self.arxiv_retries = Counter(
            f"{PREFIX}_arxiv_retries_total",
            "arXiv requests retried, by kind and reason: rate_limited (429, 503), http_error "
            "(another 4xx/5xx), no_answer (timeout, refused connection), bad_answer (a page "
            "that is malformed or spuriously empty).",
            ["kind", "reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            f"{PREFIX}_rate_limited_total",
            "HTTP 429 answers by platform (arxiv, slack, discord, webhook).",
            ["platform"],
            registry=r,
        )
        self.retry_after_seconds = Counter(
            f"{PREFIX}_retry_after_seconds_total",
            "Seconds waited because an answer's Retry-After asked for it, by platform.",
            ["platform"],
            registry=r,
        )
        self.command_seconds = Histogram(
            f"{PREFIX}_command_duration_seconds",
            "Time to answer a /papers command or a button press in the core, by platform "
            "and kind (command, button).",
            ["platform", "kind"],
            buckets=COMMAND_BUCKETS,
            registry=r,
        )
        self.redis_round_trips = Counter(
            f"{PREFIX}_redis_round_trips_total",
            "Commands and pipelines sent to Redis (one round trip each) by this process.",
            registry=r,
        )

    def render(self, state: ScrapeState | None = None) -> bytes:
        """The text of a scrape, with what was read from Redis for it."""
        from prometheus_client import generate_latest

        self.scraped.state = state
        return generate_latest(self.registry)


CURRENT: ContextVar[Metrics | None] = ContextVar("papers_bot_metrics", default=None)
"""The metrics the code running in this context reports to; None: it reports nothing."""


@contextlib.contextmanager
def reporting_to(metrics: Metrics) -> Iterator[Metrics]:
    """Code run in this block, and tasks it starts, report to `metrics`."""
    token = CURRENT.set(metrics)
    try:
        yield metrics
    finally:
        CURRENT.reset(token)


# what the code reports -------------------------------------------------------------------


def posted(platform: str, papers: int) -> None:
    """A digest message carrying `papers` papers was delivered."""
    if (m := CURRENT.get()) is not None:
        m.papers_posted.labels(platform).inc(papers)


def channel_failed(platform: str) -> None:
    if (m := CURRENT.get()) is not None:
        m.channels_failed.labels(platform).inc()


def digest_done(outcome: str, seconds: float) -> None:
    """A digest run ended (`ok`, `failed`, `stale`, `stopped`, `error`) after `seconds`."""
    if (m := CURRENT.get()) is not None:
        m.digests.labels(outcome).inc()
        m.digest_seconds.observe(seconds)
        if outcome in ("ok", "failed"):
            m.last_success.set_to_current_time()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Times one of a digest's `PHASES`."""
    started = time.monotonic()
    try:
        yield
    finally:
        if (m := CURRENT.get()) is not None:
            m.phase_seconds.labels(name).observe(time.monotonic() - started)


def arxiv_request(kind: str) -> None:
    if (m := CURRENT.get()) is not None:
        m.arxiv_requests.labels(kind).inc()


def arxiv_retry(kind: str, status: int | None, retry_after: float | None) -> None:
    """An arXiv request of `kind` is retried: `status` its answer's HTTP status (None: no
    answer), `retry_after` the seconds waited as its Retry-After asked (None: not asked)."""
    if (m := CURRENT.get()) is None:
        return
    m.arxiv_retries.labels(kind, _retry_reason(status)).inc()
    if status == 429:
        m.rate_limited.labels("arxiv").inc()
    if retry_after is not None:
        m.retry_after_seconds.labels("arxiv").inc(retry_after)


def _retry_reason(status: int | None) -> str:
    if status is None:
        return "no_answer"
    if status in (429, 503):
        return "rate_limited"
    return "bad_answer" if status < 300 else "http_error"


def rate_limited(platform: str) -> None:
    """A chat platform answered 429."""
    if (m := CURRENT.get()) is not None:
        m.rate_limited.labels(platform).inc()


def retry_after_waited(platform: str, seconds: float) -> None:
    """`seconds` are waited before trying again, as a platform's Retry-After asked."""
    if (m := CURRENT.get()) is not None:
        m.retry_after_seconds.labels(platform).inc(max(0.0, seconds))


def command_answered(platform: str, kind: str, seconds: float) -> None:
    """A command (`kind` command) or a button press (`button`) was answered."""
    if (m := CURRENT.get()) is not None:
        m.command_seconds.labels(platform, kind).observe(seconds)


def redis_round_trip() -> None:
    if (m := CURRENT.get()) is not None:
        m.redis_round_trips.inc()
