"""A fake arXiv OAI-PMH server (``oaipmh.arxiv.org/oai``) on 127.0.0.1 for tests.

It answers ``verb=ListRecords&metadataPrefix=arXivRaw`` in the element layout and namespaces
of the real answer kept in ``tests/data/arxiv_oai_2015_listrecords_arxivraw.xml`` (see
``tests/data/SOURCES.md``): records of ``FakeRecord``, filtered by ``set`` and by
``from``/``until`` against the datestamp (inclusive, days), in pages of ``page_size`` joined
by resumption tokens::

    with FakeOai(records, page_size=3) as fake:
        body = urllib.request.urlopen(fake.url + "?verb=ListRecords&...").read()

The protocol rules followed are OAI-PMH 2.0's (openarchives.org/OAI/openarchivesprotocol.html):
a resumed request carries only ``verb`` and ``resumptionToken`` (section 3.5, else
``badArgument``); the page that completes an incomplete list carries an empty
``<resumptionToken/>`` and a list that fits one page none; an empty list is the error
``noRecordsMatch`` (3.6). Like arXiv's server (github.com/arXiv/oaipmh, ``oaipmh/routes.py``,
``tests/test_list_sets.py``), OAI errors come with HTTP 200; the messages of
``noRecordsMatch`` for an unknown set and of ``badResumptionToken`` are the real captures'
(``tests/data``). Tokens expire when a test calls ``expire_tokens`` (arXiv's expire daily).

Set membership follows arXiv's set names (``oaipmh/processors/create_set_list.py``): a record
is in ``cs``, ``cs:cs`` and ``cs:cs:CL`` for its category ``cs.CL``, in ``physics``,
``physics:hep-th`` for ``hep-th``; its header lists the sets the way the capture does
(``math`` for ``math.MP``, ``physics:math-ph`` for ``math-ph``).

Nothing here is shared with ``bot/oai.py``: the fake renders with string templates and
reads captures with the standard library's ElementTree, not lxml.

Faults (each taken by the next request): ``fail_next`` (a status such as 503, with headers
such as ``Retry-After``), ``cut_next`` (the body cut short, with an honest or a lying
``Content-Length``), ``raw_next`` (any body). Every request is recorded in ``requests``.
"""

from __future__ import annotations

import itertools
import threading
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "CONTENT_TYPE",
    "FakeOai",
    "FakeRecord",
    "RecordedRequest",
    "records_from_capture",
]

CONTENT_TYPE = "text/xml; charset=utf-8"

_OAI_NS = "http://www.openarchives.org/OAI/2.0/"
_RAW_NS = "http://arxiv.org/OAI/arXivRaw/"
_GROUP_ARCHIVES = frozenset({"cs", "econ", "eess", "math", "q-bio", "q-fin", "stat"})
"""arXiv archives that are a group of their own; every other archive is in ``physics``."""
_GROUPS = _GROUP_ARCHIVES | {"physics"}
"""arXiv's top-level sets; a set under none of them is unknown (``noRecordsMatch``)."""
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<OAI-PMH xmlns="{_OAI_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ '
    'http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">\n'
)
_RAW_OPEN = (
    f' <arXivRaw xmlns="{_RAW_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://arxiv.org/OAI/arXivRaw/ http://arxiv.org/OAI/arXivRaw.xsd">\n'
)
_NO_SET = "Set argument doesn't match any sets. The setSpec was {!r}"
_BAD_TOKEN = "The resumptionToken supplied is illegal for this repository"
_EMPTY_LIST = (
    "The combination of the values of the from, until, set and metadataPrefix arguments "
    "results in an empty list."
)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class FakeRecord:
    """One paper as arXivRaw shows it. ``versions[n - 1]`` is when version n was submitted
    (timezone-aware); ``authors`` is arXivRaw's one string (``A. One, B. Two and C. Three``);
    ``categories[0]`` is the primary. ``datestamp`` is the record's last modification.
    ``deleted`` records are served as a header with ``status="deleted"`` only."""

    id: str
    versions: list[datetime]
    datestamp: date
    categories: list[str]
    title: str = "A title"
    authors: str = "A. Author"
    abstract: str = "An abstract."
    submitter: str = "A. Author"
    comments: str | None = None
    msc_class: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    license: str | None = None
    sizes: list[str] = field(default_factory=list)
    deleted: bool = False

    def __post_init__(self) -> None:
        if not self.versions or not self.categories:
            raise ValueError(f"record {self.id} needs a version and a category")
        if any(v.tzinfo is None for v in self.versions):
            raise ValueError(f"record {self.id}: version dates must be timezone-aware")

    def sets(self) -> set[str]:
        """Every set name the record is in (group, archive and category level)."""
        names: set[str] = set()
        for category in self.categories:
            archive, _, subject = category.partition(".")
            group = archive if archive in _GROUP_ARCHIVES else "physics"
            names |= {group, f"{group}:{archive}"}
            if subject:
                names.add(f"{group}:{archive}:{subject}")
        return names

    def header_sets(self) -> list[str]:
        """The header's ``<setSpec>``s, as the capture lists them."""
        specs = []
        for category in self.categories:
            archive = category.partition(".")[0]
            spec = archive if archive in _GROUP_ARCHIVES else f"physics:{archive}"
            if spec not in specs:
                specs.append(spec)
        return specs


def _version_date(moment: datetime) -> str:
    """``Tue, 3 Apr 2007 22:04:11 GMT``, as in the capture (no zero before the day)."""
    utc = moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day} {_MONTHS[utc.month - 1]} {utc.year} {utc:%H:%M:%S} GMT"
    )


def _element(name: str, text: str | None) -> str:
    return "" if text is None else f"<{name}>{escape(text)}</{name}>"


def _render_record(record: FakeRecord) -> str:
    status = ' status="deleted"' if record.deleted else ""
    header = (
        f"<header{status}>\n <identifier>oai:arXiv.org:{record.id}</identifier>\n"
        f" <datestamp>{record.datestamp.isoformat()}</datestamp>\n"
        + "".join(f" <setSpec>{s}</setSpec>\n" for s in record.header_sets())
        + "</header>\n"
    )
    if record.deleted:
        return f"<record>\n{header}</record>\n"
    versions = "".join(
        f'<version version="v{n}"><date>{_version_date(when)}</date>'
        f"<size>{record.sizes[n - 1] if n <= len(record.sizes) else '1kb'}</size></version>"
        for n, when in enumerate(record.versions, start=1)
    )
    body = (
        f" <id>{escape(record.id)}</id>{_element('submitter', record.submitter)}{versions}"
        f"{_element('title', record.title)}{_element('authors', record.authors)}"
        f"{_element('categories', ' '.join(record.categories))}"
        f"{_element('comments', record.comments)}{_element('msc-class', record.msc_class)}"
        f"{_element('journal-ref', record.journal_ref)}{_element('doi', record.doi)}"
        f"{_element('license', record.license)}{_element('abstract', record.abstract)}"
    )
    return f"<record>\n{header}<metadata>\n{_RAW_OPEN}{body}</arXivRaw>\n</metadata>\n</record>\n"


def _render_request(params: Mapping[str, str], url: str) -> str:
    attributes = "".join(f" {name}={quoteattr(value)}" for name, value in params.items())
    return f"<request{attributes}>{escape(url)}</request>\n"


def _render(params: Mapping[str, str], url: str, inner: str) -> bytes:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{_HEAD}<responseDate>{stamp}</responseDate>\n"
        f"{_render_request(params, url)}{inner}</OAI-PMH>\n"
    ).encode()


def _render_error(code: str, message: str) -> str:
    return f"<error code={quoteattr(code)}>{escape(message)}</error>\n"


def records_from_capture(body: bytes) -> list[FakeRecord]:
    """The records of a real ListRecords answer, text kept as it is (ElementTree)."""
    oai, raw = f"{{{_OAI_NS}}}", f"{{{_RAW_NS}}}"
    records = []
    for element in ElementTree.fromstring(body).iter(f"{oai}record"):
        header = element.find(f"{oai}header")
        meta = element.find(f"{oai}metadata/{raw}arXivRaw")
        if header is None or meta is None:
            raise ValueError("the fake reads only complete arXivRaw records")

        def text(name: str, node: ElementTree.Element = meta) -> str | None:
            return node.findtext(name)

        versions = meta.findall(f"{raw}version")
        records.append(
            FakeRecord(
                id=text(f"{raw}id") or "",
                versions=[_read_date(v.findtext(f"{raw}date") or "") for v in versions],
                sizes=[v.findtext(f"{raw}size") or "" for v in versions],
                datestamp=date.fromisoformat(text(f"{oai}datestamp", header) or ""),
                categories=(text(f"{raw}categories") or "").split(),
                title=text(f"{raw}title") or "",
                authors=text(f"{raw}authors") or "",
                abstract=text(f"{raw}abstract") or "",
                submitter=text(f"{raw}submitter") or "",
                comments=text(f"{raw}comments"),
                msc_class=text(f"{raw}msc-class"),
                journal_ref=text(f"{raw}journal-ref"),
                doi=text(f"{raw}doi"),
                license=text(f"{raw}license"),
            )
        )
    return records


def _read_date(value: str) -> datetime:
    return datetime.strptime(value.strip(), "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Requests and answers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    params: dict[str, str]
    """The first value of each query parameter, decoded."""
    headers: dict[str, str]


@dataclass(frozen=True)
class _Fault:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    cut_to: int | None = None
    honest_length: bool = True


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    declared_length: int | None = None


class _OaiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _List:
    """A list a token resumes: the matching records, fixed when it was first asked."""

    records: tuple[FakeRecord, ...]


_ALLOWED = frozenset({"verb", "metadataPrefix", "set", "from", "until"})


def _day(params: Mapping[str, str], name: str) -> date | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise _OaiError("badArgument", f"{name} is not a YYYY-MM-DD day: {value!r}") from None


class FakeOai:
    """A fake OAI-PMH repository holding ``records`` (a list tests may change between
    requests; a list being paged keeps the records it started with)."""

    def __init__(self, records: Iterable[FakeRecord] = (), *, page_size: int = 1000) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.records: list[FakeRecord] = list(records)
        self.page_size = page_size
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._lists: dict[int, _List] = {}
        self._serials = itertools.count(726959)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("FakeOai is already started")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/oai``: the base URL (``[arxiv] oai_url``)."""
        if self._server is None:
            raise RuntimeError("FakeOai is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/oai"

    # -- what tests read and queue -------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def expire_tokens(self) -> None:
        """Every resumption token given so far becomes ``badResumptionToken``."""
        with self._lock:
            self._lists.clear()

    def fail_next(
        self, status: int = 503, *, headers: Mapping[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next request(s) with ``status`` (e.g. 503 and ``Retry-After``)."""
        body = f"{status} fault injected by FakeOai\n".encode()
        self._queue(_Fault(status, dict(headers or {}), body), times)

    def cut_next(self, keep: int = 200, *, honest_length: bool = True, times: int = 1) -> None:
        """Send only the first ``keep`` bytes of the real answer. With ``honest_length`` the
        ``Content-Length`` says ``keep`` (the client gets a short document), else it names the
        whole answer and the connection closes early (the client sees an incomplete read)."""
        self._queue(_Fault(cut_to=keep, honest_length=honest_length), times)

    def raw_next(self, body: bytes, status: int = 200, *, times: int = 1) -> None:
        self._queue(_Fault(status, {}, body), times)

    def _queue(self, fault: _Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    # -- called from handler threads -----------------------------------------------------------

    def _handle(self, record: RecordedRequest) -> _Reply:
        with self._lock:
            self._requests.append(record)
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.body is not None:
            return _Reply(fault.status, fault.body, fault.headers)
        body = self._answer(record)
        if fault is None or fault.cut_to is None:
            return _Reply(200, body)
        length = None if fault.honest_length else len(body)
        return _Reply(200, body[: fault.cut_to], declared_length=length)

    def _answer(self, record: RecordedRequest) -> bytes:
        if record.path != "/oai":
            return b""
        params = record.params
        try:
            inner = self._list_records(params)
        except _OaiError as err:
            return _render(params, self.url, _render_error(err.code, err.message))
        return _render(params, self.url, inner)

    def _list_records(self, params: Mapping[str, str]) -> str:
        if params.get("verb") != "ListRecords":
            raise _OaiError("badVerb", "the fake answers only ListRecords")
        if "resumptionToken" in params:
            if set(params) != {"verb", "resumptionToken"}:
                raise _OaiError("badArgument", "resumptionToken is an exclusive argument")
            listed, cursor = self._resume(params["resumptionToken"])
        else:
            listed, cursor = self._new_list(params), 0
        return self._page(listed, cursor)

    def _new_list(self, params: Mapping[str, str]) -> tuple[int, _List]:
        if set(params) - _ALLOWED:
            raise _OaiError("badArgument", f"illegal arguments: {sorted(set(params) - _ALLOWED)}")
        if params.get("metadataPrefix") != "arXivRaw":
            raise _OaiError("cannotDisseminateFormat", "the fake serves only arXivRaw")
        start, end = _day(params, "from"), _day(params, "until")
        if start is not None and end is not None and start > end:
            raise _OaiError("badArgument", "from is after until")
        wanted = params.get("set")
        with self._lock:
            held = list(self.records)
        if wanted is not None and wanted.split(":")[0] not in _GROUPS:
            raise _OaiError("noRecordsMatch", _NO_SET.format(wanted))
        matching = tuple(
            sorted(
                (
                    r
                    for r in held
                    if (wanted is None or wanted in r.sets())
                    and (start is None or r.datestamp >= start)
                    and (end is None or r.datestamp <= end)
                ),
                key=lambda r: (r.datestamp, r.id),
            )
        )
        if not matching:
            raise _OaiError("noRecordsMatch", _EMPTY_LIST)
        with self._lock:
            serial = next(self._serials)
            self._lists[serial] = _List(matching)
        return serial, self._lists[serial]

    def _resume(self, token: str) -> tuple[tuple[int, _List], int]:
        serial, _, cursor = token.partition("|")
        with self._lock:
            listed = self._lists.get(int(serial)) if serial.isdigit() else None
        if listed is None or not cursor.isdigit() or int(cursor) >= len(listed.records):
            raise _OaiError("badResumptionToken", _BAD_TOKEN)
        return (int(serial), listed), int(cursor)

    def _page(self, listed: tuple[int, _List], cursor: int) -> str:
        serial, records = listed[0], listed[1].records
        end = cursor + self.page_size
        body = "".join(_render_record(r) for r in records[cursor:end])
        size = f'cursor="{cursor}" completeListSize="{len(records)}"'
        if end < len(records):
            body += f"<resumptionToken {size}>{serial}|{end}</resumptionToken>\n"
        elif cursor > 0:
            body += f"<resumptionToken {size}/>\n"
        return f"<ListRecords>\n{body}</ListRecords>\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        fake: FakeOai = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        parsed = parse_qs(parts.query, keep_blank_values=True)
        record = RecordedRequest(
            path=parts.path,
            params={name: values[0] for name, values in parsed.items()},
            headers={name.lower(): value for name, value in self.headers.items()},
        )
        try:
            reply = fake._handle(record)
        except Exception as exc:  # a bug in the fake: make it visible, answer 500
            fake.errors.append(exc)
            reply = _Reply(500, repr(exc).encode())
        if record.path != "/oai":
            reply = _Reply(404, b"Not Found\n")
        self._send(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; tests read ``FakeOai.requests``."""

    def _send(self, reply: _Reply) -> None:
        length = reply.declared_length if reply.declared_length is not None else len(reply.body)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", CONTENT_TYPE)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            pass
        self.close_connection = True
