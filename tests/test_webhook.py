"""The webhook platform end to end: the real `DigestRunner`, `WebhookPublisher` (aiohttp),
Redis and the fake arXiv, posting to a fake incoming webhook on loopback."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from adapters.webhook import ZERO_WIDTH, WebhookPublisher, escape, messages
from bot.arxiv_source import ArxivSource
from bot.cli import main
from bot.digest import DigestRunner, RunReport
from bot.models import Channel, Digest, DigestItem
from bot.progress import reporting_to
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.conftest import RedisServer
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.fakes.webhook_server import FakeWebhook
from tests.recorded import Recorded

NOW = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
SECRET = "T0KEN-in-the-path-9f3a"


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    papers = [make_paper(n, title=f"A reward model study {n}") for n in range(1, 26)]
    papers.append(make_paper(90, title="Unrelated optics"))
    with FakeArxiv(papers) as fake:
        yield fake


@pytest.fixture
async def hook() -> AsyncIterator[FakeWebhook]:
    async with FakeWebhook() as fake:
        yield fake


def settings_for(arxiv: FakeArxiv, **webhook: float) -> Settings:
    return Settings.model_validate(
        {
            "arxiv": {
                "api_url": arxiv.url,
                "rss_url": arxiv.rss_url,
                "oai_url": "",
                "request_interval": 0,
            },
            "digest": {"first_run_papers": 100},
            "webhook": {"interval": 0.02, **webhook},
        }
    )


async def digest(
    settings: Settings, store: RedisStore, channels: dict[Channel, list[str]]
) -> RunReport:
    output = WebhookPublisher(settings.webhook)
    runner = DigestRunner(
        settings, store, ArxivSource(settings.arxiv), {"webhook": output}, clock=lambda: NOW
    )
    try:
        return await runner.run(channels)
    finally:
        await output.aclose()


def linked_ids(texts: list[str]) -> list[str]:
    return re.findall(r"\]\(https://arxiv\.org/abs/([\d.]+)\)", "\n".join(texts))


async def test_each_paper_once_and_a_second_digest_posts_nothing(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore
) -> None:
    settings = settings_for(arxiv, max_chars=1000, interval=0.05)
    team = Channel("webhook", hook.url(SECRET))
    report = await digest(settings, redis_store, {team: ["reward model"]})
    assert report.ok and report.delivered == 25
    texts = hook.texts(SECRET)
    assert len(texts) > 1 and all(len(t) <= 1000 for t in texts)  # split within the limit
    assert sorted(linked_ids(texts)) == sorted(f"2611.{n:05d}" for n in range(1, 26))
    assert texts[0].startswith("**New on arXiv · Wed 4 Nov 2026** · 25 paper(s)")
    # Paced per URL: the span of the arrivals holds every interval (an
    # arrival can be late on a busy machine, which can only shorten the span by the first's).
    span = hook.accepted[-1].at - hook.accepted[0].at
    assert span >= (len(texts) - 1) * 0.05 - 0.03

    again = await digest(settings, redis_store, {team: ["reward model"]})
    assert again.ok and again.delivered == 0 and len(hook.texts(SECRET)) == len(texts)


async def test_a_429_is_waited_out_and_loses_nothing(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore
) -> None:
    settings = settings_for(arxiv)
    team = Channel("webhook", hook.url("team"))
    hook.fail_next(429, headers={"Retry-After": "0.05"})
    hook.fail_next(429, body={"retry_after": 0.05})  # Discord's way of saying it
    report = await digest(settings, redis_store, {team: ["reward model"]})
    assert report.ok and hook.requests == len(hook.texts("team")) + 2
    assert sorted(linked_ids(hook.texts("team"))) == sorted(f"2611.{n:05d}" for n in range(1, 26))


async def test_a_5xx_fails_the_channel_until_next_run_and_doubles_nothing(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(arxiv, max_chars=600)
    team, other = Channel("webhook", hook.url(SECRET)), Channel("webhook", hook.url("other"))
    hook.fail_next(503)
    report = await digest(settings, redis_store, {team: ["reward model"], other: ["optics"]})
    failed = [c for c in report.channels if c.error]
    assert len(failed) == 1 and "HTTP 503" in (failed[0].error or "")
    posted_first = linked_ids(hook.texts(SECRET)) + linked_ids(hook.texts("other"))
    report = await digest(settings, redis_store, {team: ["reward model"], other: ["optics"]})
    assert report.ok
    everything = linked_ids(hook.texts(SECRET)) + linked_ids(hook.texts("other"))
    assert len(everything) == len(set(everything)) == 26
    assert len(posted_first) < 26
    assert SECRET not in caplog.text  # the URL is never logged in full
    assert "127.0.0.1/…" in caplog.text


async def test_a_refused_url_is_said_without_the_url(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore, caplog: pytest.LogCaptureFixture
) -> None:
    team = Channel("webhook", hook.url(SECRET))
    hook.fail_next(404)
    report = await digest(settings_for(arxiv), redis_store, {team: ["reward model"]})
    (outcome,) = report.channels
    assert outcome.error is not None and "HTTP 404" in outcome.error and outcome.delivered == 0
    assert SECRET not in caplog.text and SECRET not in outcome.error


def test_titles_cannot_mention_anyone_or_forge_a_link() -> None:
    hostile = paper(
        1,
        title="@everyone <!channel> [click](https://evil.example) **bold** `code` @here",
        authors=("<@U123>", "Ada"),
    )
    item = DigestItem(hostile, ("reward model",))
    digest_ = Digest(Channel("webhook", "https://x.example/h"), NOW.date(), ("@channel",), [item])
    ((text, ids),) = messages(digest_, 2000)
    assert ids == [hostile.id]
    assert "@everyone" not in text and "@here" not in text and "@channel" not in text
    assert f"@{ZERO_WIDTH}everyone" in text
    assert "<!channel>" not in text and "<@U123>" not in text
    assert "](https://evil" not in text and "https://evil" not in text
    # the only links are the paper's own
    assert re.findall(r"\]\((\S+?)\)", text) == [
        hostile.abs_url,
        hostile.pdf_url,
        hostile.html_url,
    ]
    assert escape("a|b#c") == "a\\|b\\#c"


def test_code_link_and_venue_are_shown_and_cannot_be_turned_against_anyone() -> None:
    shown = paper(
        1,
        summary="Code is available at https://github.com/aheldis/Toxicity-Classification.git.",
        journal_ref="International Conference on Machine Learning (ICML) 2024",
    )
    evil = paper(
        2,
        summary="Code: https://github.com/a/b)](https://evil.example) github.com/c/d>x|y",
        comment="Accepted at <!everyone> @here [x](http://evil.example) **now**",
    )
    items = [DigestItem(p, ("reward model",)) for p in (shown, evil)]
    digest_ = Digest(Channel("webhook", "https://x.example/h"), NOW.date(), ("rm",), items)
    ((text, _),) = messages(digest_, 4000)
    first, second = text.split("\n• ")[1:]
    assert first.splitlines()[1].endswith(
        f"[HTML]({shown.html_url}) · [Code](https://github.com/aheldis/Toxicity-Classification)"
        " · ICML 2024"
    )
    assert re.findall(r"\]\((\S+?)\)", second) == [
        evil.abs_url,
        evil.pdf_url,
        evil.html_url,
        "https://github.com/a/b",
    ]
    assert "@here" not in second and "<!everyone>" not in second and "evil" not in second
    assert f"\\<\\!everyone\\> @{ZERO_WIDTH}here \\[x\\]" in second


def test_a_quiet_day_and_the_cap_are_said() -> None:
    channel = Channel("webhook", "https://x.example/h")
    ((quiet, none),) = messages(Digest(channel, NOW.date(), ("reward model",)), 2000)
    assert quiet == "No new papers today for reward model." and none == []
    items = [DigestItem(paper(n), ("reward model",)) for n in range(1, 4)]
    texts = [t for t, _ in messages(Digest(channel, NOW.date(), ("x",), items, more=7), 2000)]
    assert texts[-1].endswith("…and 7 more new papers.")


async def test_papers_bot_digest_posts_to_a_webhook_from_the_settings_file(
    arxiv: FakeArxiv,
    hook: FakeWebhook,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(
        f'redis_url = "{redis_url}"\n'
        f'[arxiv]\napi_url = "{arxiv.url}"\nrss_url = "{arxiv.rss_url}"\n'
        "request_interval = 0\n[webhook]\ninterval = 0\n[digest]\nfirst_run_papers = 100\n"
        f'[[subscriptions]]\nplatform = "webhook"\nchannel = "{hook.url(SECRET)}"\n'
        'keywords = ["reward model"]\n'
    )
    # main() runs its own event loop: run it in a thread so this test's loop serves the hook.
    code = await asyncio.to_thread(main, ["--config", str(config), "digest"])
    assert code == 0
    assert len(linked_ids(hook.texts(SECRET))) == 25
    assert await asyncio.to_thread(main, ["--config", str(config), "digest"]) == 0
    assert len(linked_ids(hook.texts(SECRET))) == 25  # nothing twice
    out, err = capsys.readouterr()
    assert SECRET not in out + err


@pytest.fixture
def redis_url(redis_server: RedisServer, redis_store: RedisStore) -> str:
    return redis_server.url  # emptied by redis_store


# -- issue 22, finding 4: a Retry-After can't stall the run ----------------------------------


def runner_for(
    settings: Settings, store: RedisStore, output: WebhookPublisher, **options: float
) -> DigestRunner:
    source = ArxivSource(settings.arxiv)
    return DigestRunner(settings, store, source, {"webhook": output}, clock=lambda: NOW, **options)


@pytest.mark.parametrize(
    ("headers", "body"),
    [({"Retry-After": "86400"}, ""), ({"Retry-After": "inf"}, ""), ({}, {"retry_after": 1e12})],
)
async def test_a_retry_after_beyond_the_cap_fails_that_channel_at_once(
    arxiv: FakeArxiv,
    hook: FakeWebhook,
    redis_store: RedisStore,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    body: object,
) -> None:
    settings = settings_for(arxiv)
    team, other = Channel("webhook", hook.url(SECRET)), Channel("webhook", hook.url("other"))
    hook.fail_next(429, headers=headers, body=body)
    started = asyncio.get_running_loop().time()
    report = await asyncio.wait_for(
        digest(settings, redis_store, {team: ["reward model"], other: ["optics"]}), 10
    )
    assert asyncio.get_running_loop().time() - started < 5
    by_channel = {c.channel: c for c in report.channels}
    assert "max_retry_after (60s)" in (by_channel[team].error or "")
    assert by_channel[team].delivered == 0 and by_channel[other].delivered == 1
    (line,) = [r.message for r in caplog.records if r.message.startswith("channel_failed")]
    assert "max_retry_after" in line and SECRET not in line
    again = await digest(settings, redis_store, {team: ["reward model"], other: ["optics"]})
    assert again.ok and len(linked_ids(hook.texts(SECRET))) == 25  # all of them, next run


async def test_a_stop_ends_a_rate_limit_wait(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore
) -> None:
    settings = settings_for(arxiv)
    team = Channel("webhook", hook.url("team"))
    hook.fail_next(429, headers={"Retry-After": "30"})  # within max_retry_after
    output = WebhookPublisher(settings.webhook)
    runner = runner_for(settings, redis_store, output)
    try:
        run = asyncio.create_task(runner.run({team: ["reward model"]}))
        while not hook.requests:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        runner.stop()
        (outcome,) = (await asyncio.wait_for(run, 3)).channels
    finally:
        await output.aclose()
    assert outcome.error is not None and "stopped" in outcome.error
    assert outcome.delivered == 0 and hook.requests == 1


async def test_a_channel_past_its_deadline_fails_alone(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore
) -> None:
    settings = settings_for(arxiv, max_retries=10)
    slow, other = Channel("webhook", hook.url("slow")), Channel("webhook", hook.url("other"))
    hook.fail_next(429, times=10, headers={"Retry-After": "0.4"}, name="slow")  # 4 s in all
    output = WebhookPublisher(settings.webhook)
    runner = runner_for(settings, redis_store, output, channel_deadline=1.0)
    try:
        started = asyncio.get_running_loop().time()
        report = await runner.run({slow: ["reward model"], other: ["optics"]})
    finally:
        await output.aclose()
    assert asyncio.get_running_loop().time() - started < 3
    by_channel = {c.channel: c for c in report.channels}
    assert "channel_deadline (1s)" in (by_channel[slow].error or "")
    assert by_channel[other].error is None and by_channel[other].delivered == 1


def test_the_deadline_leaves_a_second_per_paper() -> None:
    with pytest.raises(ValueError, match="a second per paper"):
        Settings.model_validate(
            {"digest": {"max_papers_per_channel": 1000, "channel_deadline": 600}}
        )
    with pytest.raises(ValueError):
        Settings.model_validate({"webhook": {"max_retry_after": 86400}})


# -- issue 22, point 16: a lost lock, a timed-out post ------------------------------------------


async def test_a_replica_that_paused_past_its_lock_stops_posting(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore, redis_server: RedisServer
) -> None:
    """Fencing, as far as it goes without the platform's help: the process pauses (the fake
    blocks the event loop) longer than `lock_ttl` while its first message is answered, the
    lock expires and another replica takes it; the next `delivered` asks Redis, finds the
    lock gone and posts nothing more. The message in flight during the pause is out."""
    settings = Settings.model_validate(
        {
            **settings_for(arxiv, max_chars=600).model_dump(mode="json"),
            "service": {"lock_ttl": 1},
        }
    )
    team = Channel("webhook", hook.url("team"))
    other_replica = redis.Redis.from_url(redis_server.url, decode_responses=True)

    def pause_then_lose_the_lock(accepted: int) -> None:
        if accepted == 1:
            time.sleep(1.3)  # the whole process stops: no renewal runs
            lock = f"test:lock:channel:{{{team.key}}}"
            assert other_replica.set(lock, "another-replica", nx=True, px=60_000)

    hook.on_accept = pause_then_lose_the_lock
    try:
        report = await digest(settings, redis_store, {team: ["reward model"]})
    finally:
        other_replica.close()
    (outcome,) = report.channels
    assert outcome.error is not None and "took the channel's lock" in outcome.error
    assert len(hook.texts("team")) == 1  # 25 papers need several messages: one went out
    assert outcome.delivered == len(linked_ids(hook.texts("team")))


async def test_a_post_that_times_out_is_sent_again_next_run(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore
) -> None:
    """Doubles (docs/reliability.md): a webhook has no idempotency key and no way to look a
    message up, so a post the server took but answered after `timeout` fails the channel
    and the next run sends it again. Only that message: the rest wait for the next run."""
    settings = settings_for(arxiv, max_chars=1000, timeout=0.3)
    team = Channel("webhook", hook.url("team"))
    hook.answer_delay = 0.6
    first = await digest(settings, redis_store, {team: ["reward model"]})
    (outcome,) = first.channels
    assert outcome.error == "cannot reach the webhook: TimeoutError" and outcome.delivered == 0
    assert len(hook.texts("team")) == 1  # accepted, but the bot never heard so
    hook.answer_delay = 0
    again = await digest(settings, redis_store, {team: ["reward model"]})
    assert again.ok
    posted = linked_ids(hook.texts("team"))
    doubled = {i for i in posted if posted.count(i) > 1}
    assert doubled == set(linked_ids(hook.texts("team")[:1]))  # the first message, twice
    assert set(posted) == {f"2611.{n:05d}" for n in range(1, 26)}


async def test_a_429_wait_is_shown_with_its_reason(
    arxiv: FakeArxiv, hook: FakeWebhook, redis_store: RedisStore
) -> None:
    team = Channel("webhook", hook.url("team"))
    hook.fail_next(429, headers={"Retry-After": "0.05"})
    shown = Recorded()
    with reporting_to(shown):
        assert (await digest(settings_for(arxiv), redis_store, {team: ["reward model"]})).ok
    assert shown.waits == [("webhook: HTTP 429 (Retry-After)", 0.05)]
    assert shown.done == [False] and len(shown.messages) == hook.requests - 1
