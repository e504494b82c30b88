"""Figure P: what `/metrics` costs a digest, per message.

Figure 2's busiest delivery (1000 channels of a fake Slack at its real interval, the real
`DigestRunner`, `SlackPublisher` and a real redis-server) is run several times in one
process, alternately with metrics off (no `Metrics` in the context: each report returns at
once, as in `papers-bot digest`) and on (a `Metrics` that every report goes to, as in
`papers-bot run`), in the order off, on, on, off, off, on… so that a drift of the machine
falls on both. The bot's CPU per message of each is compared; the spread of the runs with
metrics off is the noise.

Beside it, each report timed alone (a million calls), and how many a message makes, for the
cost that the delivery runs are too noisy to show.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from bench.common import Row, median, ratio, say, verdict
from bench.slack_delivery import REAL_INTERVAL, Run, Setup, day_papers, deliver, make_workspace
from bench.slack_process import RemoteSlack
from bot import metrics, runtime
from bot.digest import CHANNEL_CONCURRENCY
from bot.metrics import Metrics

CHANNELS = 1000
PAIRS = 3
"""Runs with metrics off, and as many with them on."""
CALLS = 1_000_000


@contextlib.contextmanager
def reporting(on: bool) -> Iterator[Metrics | None]:
    if not on:
        yield None
        return
    with metrics.reporting_to(Metrics()) as counted:
        yield counted


def per_call(report: Callable[[], None]) -> float:
    """Seconds one call of `report` takes (best of 3 rounds of `CALLS`)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(CALLS):
            report()
        best = min(best, (time.perf_counter() - started) / CALLS)
    return best


def calls_timed() -> dict[str, tuple[float, float]]:
    """Per report: seconds a call with metrics off, on."""
    reports: dict[str, Callable[[], None]] = {
        "papers posted": lambda: metrics.posted("slack", 2),
        "Redis round trip": metrics.redis_round_trip,
    }
    timed = {}
    for name, report in reports.items():
        off = per_call(report)
        with reporting(True):
            on = per_call(report)
        timed[name] = (off, on)
    return timed


async def measure(url: str) -> tuple[list[tuple[bool, Run, float]], dict[str, tuple[float, float]]]:
    pool, day = day_papers()
    space = make_workspace(CHANNELS, day, pool)
    setup = Setup(CHANNELS, CHANNEL_CONCURRENCY, interval=REAL_INTERVAL)
    order = [(False, True, True, False)[n % 4] for n in range(2 * PAIRS)]  # off, on, on, off…
    runs: list[tuple[bool, Run, float]] = []
    with RemoteSlack(REAL_INTERVAL) as slack:
        for n, on in enumerate(order):
            with reporting(on) as counted:
                run = await deliver(url, slack, space, setup, 900 + n)
            trips = counted.redis_round_trips._value.get() if counted else 0.0
            runs.append((on, run, trips))
            say(
                f"  metrics {'on ' if on else 'off'}: {run.cpu / run.messages * 1000:.3f} ms a "
                f"message ({run.messages} messages, {run.seconds:.2f} s"
                + (f", {trips:.0f} Redis round trips)" if on else ")")
            )
    return runs, calls_timed()


def rows(runs: list[tuple[bool, Run, float]], timed: dict[str, tuple[float, float]]) -> list[Row]:
    off = [r.cpu / r.messages for on, r, _ in runs if not on]
    on = [r.cpu / r.messages for on, r, _ in runs if on]
    noise = max(off) - min(off)
    extra = median(on) - median(off)
    trips = [t / r.messages for is_on, r, t in runs if is_on]
    posted_on = timed["papers posted"][1] - timed["papers posted"][0]
    trip_on = timed["Redis round trip"][1] - timed["Redis round trip"][0]
    estimate = posted_on + median(trips) * trip_on
    return [
        Row(
            "P",
            f"C = {CHANNELS}, real interval (figure 2's busiest delivery), {PAIRS} runs with "
            "metrics on and as many off, alternated: the bot's CPU per message, medians "
            "(all runs)",
            f"on {median(on) * 1000:.3f} ms ({', '.join(f'{v * 1000:.2f}' for v in on)}); "
            f"difference {extra * 1000:+.3f} ms",
            f"off {median(off) * 1000:.3f} ms ({', '.join(f'{v * 1000:.2f}' for v in off)}); "
            f"noise (off's spread) {noise * 1000:.3f} ms",
            ratio(median(on), median(off)),
            "difference within off's spread",
            verdict(extra <= noise),
        ),
        Row(
            "P",
            f"each report timed alone ({CALLS:,} calls, best of 3), off / on: papers posted "
            f"(1 a message); a Redis round trip ({median(trips):.2f} a message, counted in the "
            "runs above): what they add to a message",
            f"{timed['papers posted'][0] * 1e9:.0f} / {timed['papers posted'][1] * 1e9:.0f} ns; "
            f"{timed['Redis round trip'][0] * 1e9:.0f} / "
            f"{timed['Redis round trip'][1] * 1e9:.0f} ns: {estimate * 1e6:.1f} µs a message",
            f"the bot's {median(off) * 1000:.3f} ms a message (metrics off)",
            ratio(estimate, median(off)),
            "—",
            "—",
        ),
    ]


def run(url: str) -> list[Row]:
    runs, timed = runtime.run(measure(url))  # the loop and collector `papers-bot` runs with
    return rows(runs, timed)


if __name__ == "__main__":
    from bench.common import redis_server, table

    with redis_server() as url:
        print(table(run(url)))
