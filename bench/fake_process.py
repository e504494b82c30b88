"""The indexed fake arXiv in a process of its own, so that its work (matching queries,
rendering feeds) competes neither for the bot's GIL nor for its event loop.

Parent side: `RemoteFake`. Child side: `python -m bench.fake_process POOL PER_DAY WINDOW
LATER`, which builds the same deterministic papers as `synthetic.week_and_days`, prints
its URL, then answers one JSON command per line on stdin.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

from bench.child import Child
from bench.fast_fake import IndexedFakeArxiv
from bench.synthetic import EPOCH, keyword_pool, week_and_days
from tests.fakes.arxiv_server import FakeListing


class RemoteFake(Child):
    name = "fake arXiv"

    def __init__(self, pool: int, per_day: int, window_days: int, later_days: int) -> None:
        super().__init__("bench.fake_process", pool, per_day, window_days, later_days)
        self.url: str = self.hello["url"]

    def show_day(self, day: int) -> None:
        """Serve the window before day 0 plus days 1..day; forget recorded requests."""
        self.call("show", day=day)

    def show_listing(self, day: int, per_day: int) -> None:
        """Serve day `day`'s papers (day 0: the window's last `per_day`) as the day's
        listing, all announced as new, dated EPOCH + `day`."""
        self.call("listing", day=day, per_day=per_day)

    def set_latency(self, seconds: float) -> None:
        self.call("latency", value=seconds)

    def requests(self) -> int:
        return int(self.call("requests")["count"])

    def max_concurrent(self) -> int:
        return int(self.call("requests")["max_concurrent"])

    def check_agrees(self, queries: list[str]) -> int:
        return int(self.call("check", queries=queries)["checked"])


def serve(pool: int, per_day: int, window_days: int, later_days: int) -> None:
    days = week_and_days(keyword_pool(pool), per_day, window_days, later_days)
    with IndexedFakeArxiv(days[0]) as fake:
        print(json.dumps({"url": fake.url}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            answer: dict[str, Any] = {"ok": True}
            try:
                if op == "show":
                    fake.papers = [p for d in days[: command["day"] + 1] for p in d]
                    fake.reindex()
                    fake.clear_requests()
                elif op == "listing":
                    listed = days[command["day"]][-command["per_day"] :]
                    day = (EPOCH + timedelta(days=command["day"])).date()
                    fake.listing = FakeListing(day=day, items=[(p, "new") for p in listed])
                elif op == "latency":
                    fake.latency = float(command["value"])
                elif op == "requests":
                    answer = {"count": len(fake.requests), "max_concurrent": fake.max_concurrent}
                elif op == "check":
                    answer = {"checked": fake.check_agrees(command["queries"])}
                elif op == "stop":
                    print(json.dumps(answer), flush=True)
                    return
            except Exception as err:  # report it to the parent, which raises
                answer = {"error": f"{type(err).__name__}: {err}"}
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve(*(int(a) for a in sys.argv[1:5]))
