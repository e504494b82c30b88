"""A digest ranked by the channel's earlier votes: real Redis, the real arXiv client against
the fake arXiv, the runner's own cap."""

from collections.abc import Iterator

import pytest

from bot.arxiv_source import ArxivSource
from bot.digest import DigestRunner
from bot.models import Channel, Paper
from bot.settings import Settings
from bot.state.redis import RedisStore
from tests.factories import paper
from tests.fakes.arxiv_server import FakeArxiv, make_paper
from tests.test_digest import Clock, Recorder

SLACK = Channel("slack", "C1")
OTHER = Channel("slack", "C2")
AGENTS = "reward model for language agents trained with preference optimization on web tasks"
NEWEST = ["Grasping 6", "Grasping 5", "Grasping 4"]
ROBOTS = "reward model for robot grasping learned from tactile sensing in cluttered bins"


@pytest.fixture
def fake() -> Iterator[FakeArxiv]:
    # The robot papers are the newest: a newest-first cap keeps them.
    papers = [make_paper(n, title=f"Agents {n}", summary=AGENTS) for n in (1, 2, 3)]
    papers += [make_paper(n, title=f"Grasping {n}", summary=ROBOTS) for n in (4, 5, 6)]
    with FakeArxiv(papers) as server:
        yield server


def runner(
    fake: FakeArxiv, store: RedisStore, out: Recorder, clock: Clock, **signals: bool
) -> DigestRunner:
    settings = Settings.model_validate(
        {
            "arxiv": fake.settings(),
            "digest": {"first_run_papers": 100, "max_papers_per_channel": 3},
            "signals": signals,
        }
    )
    return DigestRunner(settings, store, ArxivSource(settings.arxiv), {"slack": out}, clock=clock)


def liked(n: int, summary: str) -> Paper:
    return paper(100 + n, title="An earlier paper", summary=summary)


async def test_the_cap_keeps_what_the_channel_voted_for(
    fake: FakeArxiv, redis_store: RedisStore
) -> None:
    clock = Clock()
    for n in range(2):
        await redis_store.signals.vote(SLACK, liked(n, AGENTS), "U1", up=True)
    out = Recorder(per_message=10)
    report = await runner(fake, redis_store, out, clock).run(
        {SLACK: ["reward model"], OTHER: ["reward model"]}
    )
    assert report.ok
    voted, unvoted = out.digests if out.digests[0].channel == SLACK else out.digests[::-1]
    assert [i.paper.title for i in voted.items] == ["Agents 3", "Agents 2", "Agents 1"]
    assert voted.more == 3
    assert [i.paper.title for i in unvoted.items] == NEWEST


async def test_less_like_this_pushes_a_topic_down(fake: FakeArxiv, redis_store: RedisStore) -> None:
    await redis_store.signals.vote(SLACK, liked(0, ROBOTS), "U1", up=False)
    out = Recorder(per_message=10)
    await runner(fake, redis_store, out, Clock()).run({SLACK: ["reward model"]})
    assert [i.paper.title for i in out.digests[0].items] == ["Agents 3", "Agents 2", "Agents 1"]


async def test_ranking_can_be_turned_off(fake: FakeArxiv, redis_store: RedisStore) -> None:
    await redis_store.signals.vote(SLACK, liked(0, AGENTS), "U1", up=True)
    out = Recorder(per_message=10)
    await runner(fake, redis_store, out, Clock(), rank=False).run({SLACK: ["reward model"]})
    assert [i.paper.title for i in out.digests[0].items] == [
        "Grasping 6",
        "Grasping 5",
        "Grasping 4",
    ]


async def test_a_run_remembers_its_papers_for_the_buttons(
    fake: FakeArxiv, redis_store: RedisStore
) -> None:
    await runner(fake, redis_store, Recorder(), Clock()).run({SLACK: ["reward model"]})
    found = await redis_store.signals.paper("2611.00004")
    assert found is not None and found.title == "Grasping 4"
    assert await redis_store.signals.paper("2611.00099") is None
