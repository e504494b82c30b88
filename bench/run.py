"""`python -m bench`: every benchmark in one run; the results table goes to stdout.

Progress goes to stderr. `--only 1 4` runs some figures (1 to 5, P, M, R) while working on one.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable, Sequence

from bench import (
    arxiv_requests,
    busy_day,
    matching_speed,
    metrics_cost,
    ranking,
    redis_cost,
    slack_delivery,
    slack_latency,
    startup,
)
from bench.common import Row, machine, redis_server, say, table

FIGURES: dict[str, Callable[[str], list[Row]]] = {
    "1": lambda url: arxiv_requests.run(url) + busy_day.run(url),
    "2": slack_delivery.run,
    "3": slack_latency.run,
    "4": redis_cost.run,
    "5": startup.run,
    "P": metrics_cost.run,
    "M": lambda _url: matching_speed.run(),
    "R": lambda _url: ranking.run(),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(FIGURES), default=sorted(FIGURES))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows: list[Row] = []
    with redis_server() as url:
        for figure in FIGURES:
            if figure in args.only:
                say(f"figure {figure} ...")
                rows += FIGURES[figure](url)
    rows.sort(key=lambda r: "12345PMR".index(r.figure))  # stable: keeps each figure's order
    print(f"Machine: {machine()}")
    print(f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"Scale: arXiv request interval {arxiv_requests.INTERVAL} s for 3 s "
        f"(factor {arxiv_requests.REAL_INTERVAL / arxiv_requests.INTERVAL:g}); "
        f"fake arXiv latency 0 (and {arxiv_requests.LATENCY} s in the latency rows); "
        f"Slack {slack_delivery.INTERVAL} s between messages to a channel for 1 s "
        f"(factor {slack_delivery.REAL_INTERVAL / slack_delivery.INTERVAL:g}; and the real 1 s "
        f"in the rows that say so); figure 3's arXiv interval {slack_latency.ARXIV_INTERVAL} s "
        f"for 3 s (factor {slack_latency.REAL_INTERVAL / slack_latency.ARXIV_INTERVAL:g})"
    )
    print()
    print(table(rows))
    print()
    print(f"Total time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
