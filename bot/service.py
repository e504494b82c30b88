"""`papers-bot run`: the chat adapters, the daily schedule, /healthz and /metrics in one event
loop."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, time, timedelta

from aiohttp import web

from bot.digest import DigestRunner, RunReport
from bot.listing import ARXIV_ZONE
from bot.listing import spec as listing_spec
from bot.listing_guard import ListingMemory
from bot.metrics import CONTENT_TYPE, Metrics, ScrapeState, reporting_to
from bot.models import utcnow
from bot.schedule import CATCH_UP_MARGIN, Schedule, slot_id
from bot.settings import Settings, SettingsError
from bot.state import STORE_ERRORS, Store, keys
from bot.state.locks import REPLICA_ID, held
from bot.weekly import WeeklyPoster

log = logging.getLogger(__name__)

Server = Callable[[], Awaitable[None]]
DONE_KEPT = timedelta(days=8)
RETRY_FAILED_RUN = 300.0
BUSY_POLL = 5.0
"""Seconds between two looks at a slot whose lock another replica holds."""
ADAPTER_RESTART = (5.0, 300.0)
"""Seconds before restarting a chat adapter that stopped on an error: first, at most (the
pause doubles while it keeps failing, and starts over once it ran that long)."""


class Service:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runner: DigestRunner,
        servers: Mapping[str, Server],
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
        weekly: WeeklyPoster | None = None,
    ) -> None:
        self._settings = settings
        self.metrics = metrics or Metrics()
        """What `/metrics` serves: this replica's own counts (`run` reports to them)."""
        self._store = store
        self._runner = runner
        self._servers = servers
        self._weekly = weekly
        """The week's papers (bot/weekly.py), on their own schedule; None: not posted."""
        self._schedule = Schedule.from_settings(settings.schedule)
        self._clock = clock
        self._sleep = sleep
        self._adapters: dict[str, asyncio.Task[None]] = {}
        self._restarting: dict[str, str] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.last_run: str | None = None
        self.next_run: datetime | None = None
        self.runs: list[RunReport] = []

    # schedule -------------------------------------------------------------
    async def run_slot(self, slot: datetime, *, reread: int = 0) -> RunReport | None:
        """Run the digest of one scheduled slot unless any replica already did or does
        (`reread`: the nth reading of a listing that was stale, a slot of its own)."""
        name = keys.digest_slot(slot_id(slot), reread)
        if await self._store.is_done(name):
            return None
        async with held(self._store, name, self._settings.service.lock_ttl) as mine:
            if not mine or await self._store.is_done(name):
                log.debug("digest_skipped slot=%s: another replica has it", slot_id(slot))
                return None
            log.info("digest_started slot=%s replica=%s", slot_id(slot), REPLICA_ID)
            self._idle.clear()
            try:
                report = await self._runner.run()
            finally:
                self._idle.set()
            if self._runner.stopping:
                # Cut short by a stop: the next start-up (this replica's or another's)
                # delivers the rest of this slot instead of waiting for the next one.
                log.info("digest_interrupted slot=%s", slot_id(slot))
                return report
            await self._store.mark_done(name, DONE_KEPT.total_seconds())
        self.last_run = slot_id(slot)
        self.runs.append(report)
        return report

    async def _run_until_done(self, slot: datetime) -> None:
        """Until this or another replica made the slot's digest, or the next slot is due. A
        run that failed (Redis down, say) is tried again after `RETRY_FAILED_RUN`; a slot
        whose lock another replica holds is looked at every `BUSY_POLL` seconds, so the run
        of a replica that died holding it is made once its lock has expired."""
        done = keys.digest_slot(slot_id(slot))
        while not self._runner.stopping:
            wait = RETRY_FAILED_RUN
            try:
                report = await self.run_slot(slot)
                if await self._store.is_done(done):
                    if report is not None and report.stale is not None:
                        await self._reread_stale(slot)
                    return
                wait = BUSY_POLL
            except STORE_ERRORS as err:
                log.error(
                    "digest_failed slot=%s error=%r: Redis is unreachable; trying again in %gs",
                    slot_id(slot),
                    str(err),
                    wait,
                )
            except Exception:
                log.exception("digest_failed slot=%s", slot_id(slot))
            # Stopping: no pause. The scheduler's cancellation is not enough on its own, as
            # redis-py can lose one that lands while it opens a connection.
            if self._runner.stopping:
                return
            if self._schedule.next(slot) <= self._clock() + timedelta(seconds=wait):
                return
            await self._sleep(wait)

    async def _reread_stale(self, slot: datetime) -> None:
        """Read a stale listing again every `stale_recheck_minutes`, at most `stale_rechecks`
        times and never past the next slot, until it is fresh (the day is then delivered);
        if it never is, the next run catches the day up."""
        cfg = self._settings.arxiv
        pause = timedelta(minutes=cfg.stale_recheck_minutes)
        for reread in range(1, cfg.stale_rechecks + 1):
            if self._runner.stopping or self._schedule.next(slot) <= self._clock() + pause:
                break
            await self._sleep(pause.total_seconds())
            report = await self.run_slot(slot, reread=reread)
            if report is None or report.stale is None:
                return
        log.warning("listing_still_stale slot=%s: the next run catches this day up", slot_id(slot))

    async def _sleep_until(self, when: datetime) -> None:
        while (left := (when - self._clock()).total_seconds()) > 0:
            await self._sleep(min(left, 60.0))

    async def run_startup(self) -> None:
        """The most recent scheduled run, if no replica made it (the process was down) and
        the next one is not due within `CATCH_UP_MARGIN` (it delivers the same papers)."""
        now = self._clock()
        missed = self._schedule.missed(now)
        if missed is not None:
            await self._run_until_done(missed)
        elif (latest := self._schedule.latest(now)) is not None:
            log.info(
                "digest_catch_up_skipped slot=%s next=%s: the next run is less than %gh away; "
                "it delivers whatever this slot missed, if no replica made it",
                slot_id(latest),
                slot_id(self._schedule.next(now)),
                CATCH_UP_MARGIN.total_seconds() / 3600,
            )

    async def scheduler(self) -> None:
        await self.run_startup()
        while not self._runner.stopping:
            self.next_run = self._schedule.next(self._clock())
            log.info("digest_scheduled at=%s", self.next_run.isoformat())
            await self._sleep_until(self.next_run)
            await self._run_until_done(self.next_run)

    # health ---------------------------------------------------------------
    async def health(self) -> tuple[int, dict[str, object]]:
        try:
            await asyncio.wait_for(self._store.ping(), timeout=2)
            memory = await asyncio.wait_for(self._store.memory(), timeout=2)
            # Redis refuses writes: papers can be posted but not remembered (they double).
            redis_state = "out of memory" if memory.full else "ok"
        except Exception as err:
            redis_state = f"unreachable: {type(err).__name__}"
        adapters = {
            name: self._restarting.get(name) or _task_state(task)
            for name, task in self._adapters.items()
        }
        body: dict[str, object] = {
            "status": "ok" if redis_state == "ok" else "degraded",
            "redis": redis_state,
            "adapters": adapters,
            "replica": REPLICA_ID,
            "last_run": self.last_run,
            "next_run": self.next_run.isoformat() if self.next_run else None,
        }
        return (200 if redis_state == "ok" else 503), body

    async def _healthz(self, _request: web.Request) -> web.Response:
        status, body = await self.health()
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    async def scrape_state(self) -> ScrapeState:
        """What a scrape reads from Redis: its memory, and the day of the last listing any
        replica received (a cluster's nodes each have their own memory: not shown)."""
        feed = listing_spec(self._settings.arxiv.categories)
        try:
            memory = await asyncio.wait_for(self._store.memory(), timeout=2)
            raw = await asyncio.wait_for(self._store.listing_memory(feed), timeout=2)
        except Exception:
            return ScrapeState(redis_up=False)
        listed = ListingMemory.loads(raw)
        age = None
        if listed is not None:
            start = datetime.combine(listed.day, time(0), ARXIV_ZONE)
            age = (self._clock() - start).total_seconds()
        said = memory.used > 0  # zeros: this Redis won't say
        return ScrapeState(
            redis_up=True,
            used_memory=memory.used if said else None,
            maxmemory=memory.limit if said else None,
            listing_age=age,
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = self.metrics.render(await self.scrape_state())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def start_health(self, host: str, port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner

    # lifecycle ------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        with reporting_to(self.metrics):  # the tasks started here inherit it
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        cfg = self._settings.service
        health = await self.start_health(cfg.health_host, cfg.health_port)
        for name, serve in self._servers.items():
            self._adapters[name] = asyncio.create_task(self.supervise(name, serve), name=name)
        scheduler = asyncio.create_task(self.scheduler(), name="scheduler")
        schedules = [scheduler]
        if self._weekly is not None:
            schedules.append(asyncio.create_task(self._weekly.scheduler(), name="weekly"))
        log.info(
            "service_ready adapters=%s health_port=%d",
            ",".join(self._servers) or "none",
            cfg.health_port,
        )
        await stop.wait()
        log.info("service_stopping")
        self._runner.stop()
        for task in self._adapters.values():
            task.cancel()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=cfg.shutdown_grace)
        except TimeoutError:
            log.warning("digest_abandoned: still running after %ss", cfg.shutdown_grace)
        for task in schedules:
            task.cancel()
        await asyncio.gather(*schedules, *self._adapters.values(), return_exceptions=True)
        await health.cleanup()
        log.info("service_stopped")

    async def supervise(self, name: str, serve: Server) -> None:
        """Run one chat adapter while the service runs. A refused token stops it for good
        (one line: restarting cannot help); any other failure (the platform unreachable, the
        connection dropped) restarts it after a pause that grows while it keeps failing."""
        first, longest = ADAPTER_RESTART
        pause = first
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await serve()
                return
            except asyncio.CancelledError:
                raise
            except SettingsError as err:
                log.error("adapter_failed adapter=%s error=%r", name, str(err))
                raise
            except Exception as err:
                if loop.time() - started >= longest:
                    pause = first
                log.exception("adapter_failed adapter=%s: restarting in %gs", name, pause)
                self._restarting[name] = f"restarting: {type(err).__name__}"
            await self._sleep(pause)
            self._restarting.pop(name, None)
            pause = min(pause * 2, longest)


def _task_state(task: asyncio.Task[None]) -> str:
    if not task.done():
        return "running"
    if task.cancelled():
        return "stopped"
    error = task.exception()
    return f"failed: {type(error).__name__}" if error else "stopped"
