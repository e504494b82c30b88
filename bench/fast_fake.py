"""`FakeArxiv` with an inverted index, so the fake's own CPU does not pose as arXiv latency.

The test fake checks every paper against every clause of a query: a batched window query
of 20 keywords over 2,000 papers costs it about half a second of Python per request, ten
times the scaled request interval. This subclass answers search queries through a word
index (set algebra over the fake's own parsed query; each phrase still decided by the
fake's own `TextQuery.matches`), then sorts, pages and renders with the fake's code.
`check_agrees` compares its answers with the unindexed fake's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tests.fakes import arxiv_server as fa
from tests.fakes.arxiv_server import (
    AndQuery,
    FakeArxiv,
    FakePaper,
    NotQuery,
    OrQuery,
    Query,
    QuerySyntaxError,
    RecordedRequest,
    TextQuery,
    parse_query,
    text_tokens,
)

_INDEXED_FIELDS = ("ti", "abs")


class IndexedFakeArxiv(FakeArxiv):
    def __init__(self, papers: Iterable[FakePaper] = (), *, latency: float = 0.0) -> None:
        super().__init__(papers, latency=latency)
        self._current: list[FakePaper] = []
        self._postings: dict[str, dict[str, set[int]]] = {}
        self._indexed_len = -1
        self.reindex()

    def reindex(self) -> None:
        """Call after changing `papers`; until then requests take the test fake's path."""
        self._current = fa._current_versions(self.papers)
        self._postings = {name: {} for name in _INDEXED_FIELDS}
        for i, paper in enumerate(self._current):
            for name, text in (("ti", paper.title), ("abs", paper.summary)):
                postings = self._postings[name]
                for word in set(text_tokens(text)):
                    postings.setdefault(word, set()).add(i)
        self._indexed_len = len(self.papers)

    def _hits(self, query: Query, within: set[int]) -> set[int]:
        """Exactly the papers of `within` that `query` matches, as the test fake decides."""
        if isinstance(query, OrQuery):
            return self._hits(query.left, within) | self._hits(query.right, within)
        if isinstance(query, AndQuery):
            return self._hits(query.right, self._hits(query.left, within))
        if isinstance(query, NotQuery):
            return within - self._hits(query.operand, within)
        candidates = within
        if isinstance(query, TextQuery) and query.field in _INDEXED_FIELDS:
            postings = self._postings[query.field]
            for word in query.words:
                candidates = candidates & postings.get(word, set())
        return {i for i in candidates if query.matches(self._current[i])}

    def page(self, params: Mapping[str, str]) -> fa._Page | None:
        """What the test fake's `_select` answers, for a search query (None otherwise)."""
        search_query = params.get("search_query", "")
        if self._indexed_len != len(self.papers) or not search_query.strip():
            return None
        if params.get("id_list"):
            return None
        sort_by = params.get("sortBy") or "relevance"
        sort_order = params.get("sortOrder") or "descending"
        key = fa._SORT_KEYS.get(sort_by)
        if key is None or sort_order not in fa._SORT_ORDERS:
            return None  # relevance order or a bad parameter: the test fake's path
        try:
            query = parse_query(search_query)
            start = fa._int_param(params, "start", 0)
            max_results = fa._int_param(params, "max_results", 10)
        except (QuerySyntaxError, fa._ApiError):
            return None
        found = sorted(self._hits(query, set(range(len(self._current)))))
        hits = sorted(
            (self._current[i] for i in found),
            key=lambda paper: getattr(paper, key),  # stable, as the test fake sorts
            reverse=sort_order == "descending",
        )
        return fa._Page(
            papers=hits[start : start + max_results],
            total=len(hits),
            start=start,
            max_results=max_results,
            search_query=search_query,
            id_list="",
        )

    def _reply(self, record: RecordedRequest, fault: object) -> fa._Reply:
        page = None
        if fault is None and record.path == "/api/query":
            page = self.page(record.params)
        if page is None:
            return super()._reply(record, fault)  # type: ignore[arg-type]
        return fa._Reply(200, fa._render_feed(page).body())

    def check_agrees(self, queries: Iterable[str]) -> int:
        """Raise unless the indexed answer is the test fake's for each query; count them."""
        checked = 0
        for query in queries:
            for order in ("descending", "ascending"):
                params = {
                    "search_query": query,
                    "max_results": "30000",
                    "sortBy": "submittedDate",
                    "sortOrder": order,
                }
                page = self.page(params)
                if page is None:
                    raise AssertionError(f"indexed fake cannot answer {query!r}")
                slow = fa._select(list(self.papers), params)
                fast_ids = [p.versioned_id for p in page.papers]
                if fast_ids != [p.versioned_id for p in slow.papers] or page.total != slow.total:
                    raise AssertionError(f"indexed fake disagrees with FakeArxiv on {query!r}")
                checked += 1
        return checked
