"""The indexed fake arXiv in a process of its own, so that its work (matching queries,
rendering feeds) competes neither for the bot's GIL nor for its event loop.

Parent side: `RemoteFake`. Child side: `python -m bench.fake_process POOL PER_DAY WINDOW
LATER`, which builds the same deterministic papers as `synthetic.week_and_days`, prints
its URL, then answers one JSON command per line on stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.fast_fake import IndexedFakeArxiv
from bench.synthetic import keyword_pool, week_and_days


class RemoteFake:
    def __init__(self, pool: int, per_day: int, window_days: int, later_days: int) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_process", *map(str, (pool, per_day, window_days,
                                                                     later_days))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.url: str = self._read()["url"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake arXiv process exited")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"fake arXiv process: {answer['error']}")
        return answer

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def show_day(self, day: int) -> None:
        """Serve the window before day 0 plus days 1..day; forget recorded requests."""
        self.call("show", day=day)

    def set_latency(self, seconds: float) -> None:
        self.call("latency", value=seconds)

    def requests(self) -> int:
        return int(self.call("requests")["count"])

    def max_concurrent(self) -> int:
        return int(self.call("requests")["max_concurrent"])

    def check_agrees(self, queries: list[str]) -> int:
        return int(self.call("check", queries=queries)["checked"])

    def close(self) -> None:
        if self._proc.poll() is None:
            self.call("stop")
            self._proc.wait(timeout=10)

    def __enter__(self) -> RemoteFake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


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
