"""`python -m bench`: every benchmark in one run; the results table goes to stdout.

Progress goes to stderr. `--only 1 4` runs some figures (1, 4, 5, M) while working on one.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable, Sequence

from bench import arxiv_requests, matching_speed, redis_cost, startup
from bench.common import Row, machine, redis_server, say, table

FIGURES: dict[str, Callable[[str], list[Row]]] = {
    "1": arxiv_requests.run,
    "4": redis_cost.run,
    "5": startup.run,
    "M": lambda _url: matching_speed.run(),
}

NOT_MEASURED = [
    Row(
        "2",
        "delivery of one digest to C = 10/100/1000 channels, vs posting channel after channel",
        "not measured yet — needs the Slack adapter",
        target="≤ 1.25× the busiest channel's floor; 0 lost, 0 duplicated; ≤ 1% 429",
    ),
    Row(
        "3",
        "`/papers recent` and `/papers add` ack latency, HTTP mode, 200 concurrent requests",
        "not measured yet — needs the Slack adapter",
        target="p99 < 100 ms; never held up by arXiv",
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), default=sorted(FIGURES))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows: list[Row] = []
    with redis_server() as url:
        for figure in ("1", "4", "5", "M"):
            if figure in args.only:
                say(f"figure {figure} ...")
                rows += FIGURES[figure](url)
    if set(args.only) == set(FIGURES):
        rows += NOT_MEASURED
    rows.sort(key=lambda r: "12345M".index(r.figure))  # stable: keeps each figure's order
    print(f"Machine: {machine()}")
    print(f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"Scale: arXiv request interval {arxiv_requests.INTERVAL} s for 3 s "
        f"(factor {arxiv_requests.REAL_INTERVAL / arxiv_requests.INTERVAL:g}); "
        f"fake arXiv latency 0 (and {arxiv_requests.LATENCY} s in the latency rows)"
    )
    print()
    print(table(rows))
    print()
    print(f"Total time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
