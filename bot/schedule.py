"""When the daily digest runs: pure functions over a time of day, a zone and weekdays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.settings import WEEKDAYS, ScheduleSettings

CATCH_UP_MARGIN = timedelta(hours=1)
"""A slot missed while no replica ran is made up at start-up only if the next slot is at
least this far away. The next run reads the day's listing and catches up, with window
queries, whatever the channels missed, so a catch-up just before it would only split the
same papers into two posts minutes apart; an hour is the most a paper waits for that."""


@dataclass(frozen=True, slots=True)
class Schedule:
    at: time
    zone: ZoneInfo
    weekdays: frozenset[int]
    """Monday is 0."""

    @classmethod
    def from_settings(cls, cfg: ScheduleSettings) -> Schedule:
        hour, minute = (int(part) for part in cfg.time.split(":"))
        return cls(
            at=time(hour, minute),
            zone=ZoneInfo(cfg.timezone),
            weekdays=frozenset(WEEKDAYS.index(day) for day in cfg.weekdays),
        )

    @classmethod
    def weekly(cls, cfg: ScheduleSettings) -> Schedule:
        """When the week's papers are posted: `weekly_day` at `weekly_time`, in `timezone`."""
        hour, minute = (int(part) for part in cfg.weekly_time.split(":"))
        return cls(
            at=time(hour, minute),
            zone=ZoneInfo(cfg.timezone),
            weekdays=frozenset({WEEKDAYS.index(cfg.weekly_day)}),
        )

    def week_id(self, slot: datetime) -> str:
        """`2026-W45`: the ISO week of `slot` in the schedule's zone, the same on every replica."""
        year, week, _ = slot.astimezone(self.zone).isocalendar()
        return f"{year}-W{week:02d}"

    def _slot_on(self, day: date) -> datetime | None:
        if day.weekday() not in self.weekdays:
            return None
        # fold=0 and a round trip through UTC settle DST gaps and repeats.
        local = datetime.combine(day, self.at, tzinfo=self.zone)
        return local.astimezone(UTC)

    def latest(self, now: datetime) -> datetime | None:
        """The last scheduled moment at or before `now` (within the past 8 days)."""
        today = now.astimezone(self.zone).date()
        for back in range(8):
            slot = self._slot_on(today - timedelta(days=back))
            if slot is not None and slot <= now:
                return slot
        return None

    def missed(self, now: datetime, margin: timedelta = CATCH_UP_MARGIN) -> datetime | None:
        """The slot to make up when a replica starts at `now`: the latest one, unless the
        next slot is less than `margin` away (that run delivers what the latest one would)."""
        latest = self.latest(now)
        if latest is None or self.next(now) - now < margin:
            return None
        return latest

    def next(self, after: datetime) -> datetime:
        """The first scheduled moment strictly after `after`."""
        today = after.astimezone(self.zone).date()
        for ahead in range(9):
            slot = self._slot_on(today + timedelta(days=ahead))
            if slot is not None and slot > after:
                return slot
        raise AssertionError("a schedule has at least one weekday")


def slot_id(slot: datetime) -> str:
    """A predictable name for one scheduled run, the same on every replica."""
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
