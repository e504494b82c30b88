"""Fetching from the arXiv export API through the `arxiv` package.

One `ArxivSource` per process: it holds the only `arxiv.Client`, so requests go out one
at a time, each starting `request_interval` seconds after the previous one started (arXiv's
own answer time is not added to the interval), each with a timeout. At each slot the most
urgent request waiting goes: the digest's before the commands' (`bot.arxiv_queue`).
Failures that may pass (5xx, 429, timeouts, refused connections, malformed or spuriously
empty pages) are retried with backoff; an arXiv error feed is a `ArxivQueryError` and never
a paper. Errors of the HTTP stack are translated `from None`: theirs name the request's URL,
and `api_url` may carry credentials (`redacted_url`).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import arxiv
import requests

from bot import metrics
from bot.arxiv_queue import DIGEST, Caller, Gate, Priority, Ticket
from bot.listing import Announcement, Listing, ListingError, xml_root
from bot.listing import parse as parse_listing
from bot.listing_guard import read_day
from bot.matching import build_query
from bot.models import Paper, split_version
from bot.oai import announced, harvest_from, list_records, sets_for
from bot.progress import reporting
from bot.settings import ArxivSettings
from bot.state import STORE_ERRORS, Store, keys

log = logging.getLogger(__name__)

_ATOM = "{http://www.w3.org/2005/Atom}"
_OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
_RETRYABLE_STATUS = frozenset({406, 408, 429, 500, 502, 503, 504})
"""406: arXiv answers it under throttling (and when `Accept` is missing) as of 2026."""
USER_AGENT = "papers-bot/0.1 (daily arXiv digests for chat; +https://pypi.org/project/arxiv/)"
_ACCEPT = {
    "rss": "application/rss+xml, application/xml;q=0.9, */*;q=0.1",
    "api": "application/atom+xml, application/xml;q=0.9, */*;q=0.1",
}
_CHUNK = 64 * 1024
T = TypeVar("T")

DETAILS_PER_REQUEST = 400
"""Ids in one `id_list` request: about 5 kB of URL, under the 8 kB servers commonly take."""


class ArxivError(Exception):
    """arXiv did not answer usefully; the message names the query's keywords."""


class ArxivQueryError(ArxivError):
    """arXiv answered with its error feed: the query itself is wrong. Not retried."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _AnswerTooSlow(requests.Timeout):
    """The whole answer did not arrive within the request's deadline."""


class _AnswerTooLarge(requests.RequestException):
    """The answer is larger than `max_response_mb`."""


class _TimeoutSession(requests.Session):
    """Gives every request a deadline for the whole answer and a size limit, names the bot
    in `User-Agent` and sends `Accept`, and keeps the last response for inspection.

    requests' own `timeout` bounds each socket read, so a server that trickles a byte at a
    time would hold the only arXiv client for ever: the body is read here, a read at most
    `_CHUNK` bytes, against the deadline."""

    def __init__(self, timeout: float, max_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.last_response: requests.Response | None = None
        self.count = 0
        self.kind = "search"
        """What the requests are for (`bot.metrics.ARXIV_KINDS`), set by the fetch that
        makes them."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.timeout
        kwargs["timeout"] = self.timeout
        kwargs["stream"] = True
        kind = "rss" if "/rss/" in str(url) else "api"
        headers = {"Accept": _ACCEPT[kind], **(kwargs.get("headers") or {})}
        headers["User-Agent"] = USER_AGENT
        kwargs["headers"] = headers
        self.count += 1
        metrics.arxiv_request(self.kind)
        self.last_response = None
        response = super().request(method, url, *args, **kwargs)
        try:
            response._content = self._body(response, deadline)
        finally:
            response.close()
        self.last_response = response
        return response

    @property
    def status(self) -> int | None:
        """The last request's HTTP status; None when it got no (whole) answer."""
        return None if self.last_response is None else self.last_response.status_code

    def _body(self, response: requests.Response, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise _AnswerTooLarge(f"answer of {int(declared)} bytes over the limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _AnswerTooSlow(f"the answer took over {self.timeout:g}s")
            sock = _socket_of(response)
            if sock is not None:
                sock.settimeout(min(left, self.timeout))
            chunk = response.raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise _AnswerTooLarge(f"answer over {self.max_bytes} bytes")
            chunks.append(chunk)


def _socket_of(response: requests.Response) -> Any:
    """The response's socket, so the last read of a slow answer ends at the deadline."""
    connection = getattr(response.raw, "_connection", None) or getattr(
        response.raw, "connection", None
    )
    return getattr(connection, "sock", None)


def to_paper(result: arxiv.Result) -> Paper:
    paper_id, version = split_version(result.get_short_id())
    comment = " ".join(result.comment.split()) if result.comment else None
    journal_ref = " ".join(result.journal_ref.split()) if result.journal_ref else None
    return Paper(
        id=paper_id,
        version=version,
        title=" ".join(result.title.split()),
        authors=tuple(a.name for a in result.authors),
        summary=" ".join(result.summary.split()),
        comment=comment or None,
        primary_category=result.primary_category,
        categories=tuple(result.categories),
        published=result.published,
        updated=result.updated,
        journal_ref=journal_ref or None,
        doi=result.doi.strip() or None if result.doi else None,
    )


def _retry_after(response: requests.Response | None) -> float | None:
    """Seconds the answer asks to wait: whole or fractional seconds, or an HTTP date in any
    zone; None when absent or unreadable (the backoff applies), never an exception."""
    if response is None:
        return None
    return retry_after_seconds(response.headers.get("Retry-After"))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    if not value or len(value) > 64:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" (RFC 5322) gives a naive datetime: it is UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def inspect_feed(body: bytes) -> int:
    """The feed's totalResults. Raises ArxivQueryError for an error feed, ValueError if
    the document is not a complete Atom feed."""
    root = xml_root(body, "feed")
    if root.tag != f"{_ATOM}feed":
        raise ValueError(f"not an Atom feed (root element {root.tag})")
    for entry in root.iterfind(f"{_ATOM}entry"):
        entry_id = entry.findtext(f"{_ATOM}id") or ""
        if entry.findtext(f"{_ATOM}title") == "Error" or "/api/errors" in entry_id:
            summary = " ".join((entry.findtext(f"{_ATOM}summary") or "unknown error").split())
            raise ArxivQueryError(f"arXiv refused the query: {summary}")
    total = root.findtext(f"{_OPENSEARCH}totalResults")
    return int(total) if total and total.strip().isdigit() else 0


def describe(keywords: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keywords[:3])
    return shown + (f" and {len(keywords) - 3} more" if len(keywords) > 3 else "")


class ArxivSource:
    def __init__(
        self,
        settings: ArxivSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        shared: Store | None = None,
    ) -> None:
        """`shared`: a store every replica uses, so that the interval holds for all of them
        together, as arXiv's terms ask; without it (or while it is unreachable) this process
        paces only itself."""
        self._settings = settings
        self._sleep = sleep
        self._shared = shared
        self._session = _TimeoutSession(
            settings.timeout, int(settings.max_response_mb * 1024 * 1024)
        )
        self._client = arxiv.Client(page_size=settings.page_size, delay_seconds=0, num_retries=0)
        self._client.query_url_format = settings.api_url + "?{}"
        self._client._session = self._session
        self._gate = Gate()
        self._next_start = 0.0  # time.monotonic() before which no request may start

    @property
    def request_count(self) -> int:
        return self._session.count

    async def window(
        self, keywords: Sequence[str], since: datetime, until: datetime
    ) -> list[Paper]:
        """Every paper submitted in [since, until] that answers one of the keywords."""
        query = build_query(keywords, categories=self._settings.categories, window=(since, until))
        return await self.search(query, self._settings.max_window_results, keywords)

    async def latest(self, keyword: str, n: int, *, caller: Caller = DIGEST) -> list[Paper]:
        """The n latest submissions that answer one keyword."""
        query = build_query([keyword], categories=self._settings.categories)
        return await self.search(query, n, [keyword], caller=caller)

    async def latest_any(
        self, keywords: Sequence[str], n: int, *, caller: Caller = DIGEST
    ) -> list[Paper]:
        """The n latest submissions that answer any of the keywords, in one query."""
        query = build_query(keywords, categories=self._settings.categories)
        return await self.search(query, n, keywords, caller=caller)

    async def search(
        self, query: str, limit: int, keywords: Sequence[str], *, caller: Caller = DIGEST
    ) -> list[Paper]:
        papers: list[Paper] = []
        offset = 0
        while offset < limit:
            size = min(self._settings.page_size, limit - offset)
            fetch = functools.partial(self._fetch_page, query, offset, size)
            page, total = await self._with_retries(fetch, describe(keywords), caller)
            papers.extend(page)
            offset += len(page)
            if len(page) < size or offset >= total:
                break
        return papers

    async def listing(self) -> Listing:
        """The latest day's whole listing of the configured archives, without a memory of
        the days before (`papers-bot check`); the digest reads it through `read_day`."""
        read = await read_day(self.listing_part, self._settings.categories, None, today=date.max)
        return read.listing

    async def listing_part(self, spec: str, etag: str | None) -> tuple[Listing | None, str | None]:
        """One request of the day's listing (`cs`, `cs.AI+cs.CL`, `math+stat`), with its
        `ETag`; `(None, etag)` when `etag` is given and arXiv answers 304 Not Modified."""
        url = self._settings.rss_url + spec
        return await self._with_retries(
            lambda: self._fetch_listing(url, etag), f"the day's listing ({spec})"
        )

    async def announced(self, first_day: date, last_day: date) -> list[Announcement]:
        """What arXiv announced in the listings of `first_day`..`last_day` for the configured
        archives, from OAI-PMH (`bot.oai`): one paced request per page of each set. Raises
        ArxivError (and OaiError, ValueError for an answer that is not OAI-PMH)."""
        records = await list_records(
            self._oai_page,
            self._settings.oai_url,
            sets_for(self._settings.categories),
            harvest_from(first_day),
        )
        return await asyncio.to_thread(
            announced,
            records,
            first_day=first_day,
            last_day=last_day,
            archives=self._settings.categories,
        )

    async def _oai_page(self, url: str) -> bytes:
        return await self._with_retries(lambda: self._fetch_oai(url), "OAI-PMH catch-up")

    def _fetch_oai(self, url: str) -> bytes:
        self._session.kind = "oai"
        response = self._get(url, {"Accept": "text/xml, application/xml"})
        if response.status_code != 200:
            raise ArxivError(f"arXiv's OAI-PMH answered HTTP {response.status_code}")
        return response.content

    async def details(self, ids: Sequence[str], *, caller: Caller = DIGEST) -> dict[str, Paper]:
        """The current version of each paper (submission date, comment), by id: one request
        per `DETAILS_PER_REQUEST` ids. Ids arXiv doesn't know are left out."""
        found: dict[str, Paper] = {}
        for start in range(0, len(ids), DETAILS_PER_REQUEST):
            chunk = list(ids[start : start + DETAILS_PER_REQUEST])
            fetch = functools.partial(self._fetch_page, "", 0, len(chunk), chunk)
            page, _ = await self._with_retries(fetch, f"details of {len(chunk)} papers", caller)
            found.update((p.id, p) for p in page)
        return found

    async def _with_retries(self, fetch: Callable[[], T], what: str, caller: Caller = DIGEST) -> T:
        attempts = self._settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                if caller.charge is not None:
                    await caller.charge()
                await self._turn(caller.priority)
                try:
                    return await asyncio.to_thread(fetch)
                finally:
                    self._gate.release()
            except _Retryable as err:
                if attempt == attempts:
                    raise ArxivError(f"arXiv failed {attempts} times for {what}: {err}") from None
                delay = self._settings.retry_backoff * 2 ** (attempt - 1)
                if err.retry_after is not None:
                    delay = min(max(delay, err.retry_after), self._settings.max_retry_after)
                asked = None if err.retry_after is None else delay
                metrics.arxiv_retry(self._session.kind, self._session.status, asked)
                log.warning(
                    "arxiv_retry keywords=%s attempt=%d/%d reason=%r wait=%.1fs",
                    what,
                    attempt,
                    attempts,
                    str(err),
                    delay,
                )
                reporting().waiting(f"arXiv: {err}, retrying {what}", delay)
                await self._sleep(delay)
            except ArxivQueryError as err:
                raise ArxivQueryError(f"{err} (for {what})") from None
        raise AssertionError("unreachable")

    async def _turn(self, priority: Priority) -> None:
        """Returns holding the gate, with a slot booked: the request may start now. A
        command waiting for its slot gives way to digest work, then queues again in its
        place."""
        ticket = self._gate.ticket(priority)
        while True:
            await self._gate.acquire(ticket)
            try:
                booked = await self._pace(ticket)
            except BaseException:
                self._gate.release()
                raise
            if booked:
                return
            self._gate.release()

    async def _pace(self, ticket: Ticket) -> bool:
        """Waits for the next slot of every replica (`shared`), or of this process alone;
        False when a more urgent request came meanwhile."""
        interval = self._settings.request_interval
        if self._shared is not None and interval > 0:
            try:
                return await self._pace_shared(self._shared, ticket, interval)
            except STORE_ERRORS as err:
                log.warning("arxiv_pace_unshared error=%r: pacing this process only", str(err))
        wait = self._next_start - time.monotonic()
        if wait > 0:
            reporting().waiting(f"arXiv's request interval ({interval:g}s)", wait)
        if wait > 0 and await self._gate.overtaken(ticket, wait):
            return False
        self._next_start = time.monotonic() + interval
        return True

    async def _pace_shared(self, shared: Store, ticket: Ticket, interval: float) -> bool:
        urgent = ticket.priority is Priority.DIGEST
        # Polls a slot booked in Redis by any replica: there is no local event to await.
        while (wait := await shared.next_start(keys.ARXIV_PACE, interval, urgent)) > 0:
            reporting().waiting(f"arXiv's request interval ({interval:g}s, all replicas)", wait)
            if await self._gate.overtaken(ticket, wait):
                return False
        self._next_start = time.monotonic() + interval  # kept for a Redis that goes away
        return True

    def _fetch_page(
        self, query: str, offset: int, size: int, ids: Sequence[str] = ()
    ) -> tuple[list[Paper], int]:
        search = arxiv.Search(
            query=query,
            id_list=list(ids),
            max_results=offset + size,
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Descending,
        )
        self._client.page_size = size
        self._session.kind = "details" if ids else "search"
        started = time.monotonic()
        try:
            results = list(self._client.results(search, offset=offset))
        except arxiv.HTTPError as err:
            response = self._session.last_response
            if response is not None and err.status == 400:
                with contextlib.suppress(ValueError):
                    inspect_feed(response.content)
            if err.status in _RETRYABLE_STATUS or err.status >= 500:
                raise _Retryable(f"HTTP {err.status}", _retry_after(response)) from None
            raise ArxivError(f"arXiv answered HTTP {err.status}") from None
        except arxiv.UnexpectedEmptyPageError:
            raise _Retryable("empty page") from None
        except requests.Timeout:
            raise _Retryable(f"no answer within {self._settings.timeout:g}s") from None
        except requests.RequestException as err:
            raise _Retryable(f"connection failed: {type(err).__name__}") from None
        response = self._session.last_response
        if response is None:
            raise _Retryable("no response")
        try:
            total = inspect_feed(response.content)
        except ValueError as err:
            raise _Retryable(str(err)) from None
        if not results and offset < total:
            raise _Retryable("empty page")
        log.debug(
            "arxiv_page offset=%d size=%d got=%d total=%d seconds=%.2f",
            offset,
            size,
            len(results),
            total,
            time.monotonic() - started,
        )
        return [to_paper(r) for r in results], total

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        """One GET of the listing or OAI-PMH: what may pass (timeouts, refused connections,
        5xx, 406, 429) is `_Retryable`, any other answer is the caller's to read."""
        try:
            response = self._session.get(url, headers=headers)
        except requests.Timeout:
            raise _Retryable(f"no answer within {self._settings.timeout:g}s") from None
        except requests.RequestException as err:
            raise _Retryable(f"connection failed: {type(err).__name__}: {err}") from None
        if response.status_code in _RETRYABLE_STATUS or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
        return response

    def _fetch_listing(self, url: str, etag: str | None) -> tuple[Listing | None, str | None]:
        started = time.monotonic()
        self._session.kind = "listing"
        response = self._get(url, {"If-None-Match": etag} if etag else {})
        new_etag = response.headers.get("ETag")
        if response.status_code == 304 and etag:
            log.info("arxiv_listing url=%s unchanged (304)", url)
            return None, new_etag or etag
        if response.status_code != 200:
            raise ArxivError(f"arXiv answered HTTP {response.status_code} for the listing")
        try:
            listing = parse_listing(response.content)
        except ListingError as err:
            raise ArxivQueryError(str(err)) from None
        except ValueError as err:
            raise _Retryable(str(err)) from None
        log.info(
            "arxiv_listing day=%s items=%d seconds=%.2f",
            listing.day,
            len(listing.items),
            time.monotonic() - started,
        )
        return listing, new_etag
