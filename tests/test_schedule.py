from datetime import UTC, datetime, timedelta

import pytest

from bot.schedule import Schedule, slot_id
from bot.settings import ScheduleSettings


def schedule(time: str = "08:00", tz: str = "UTC", days: tuple[str, ...] = ()) -> Schedule:
    cfg = ScheduleSettings.model_validate(
        {"time": time, "timezone": tz, **({"weekdays": list(days)} if days else {})}
    )
    return Schedule.from_settings(cfg)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-23 07:59", "2026-11-23 08:00"),  # Monday, before the time
        ("2026-11-23 08:00", "2026-11-24 08:00"),  # strictly after
        ("2026-11-27 09:00", "2026-11-30 08:00"),  # Friday after -> Monday
        ("2026-11-28 12:00", "2026-11-30 08:00"),  # Saturday -> Monday
    ],
)
def test_next_run_on_weekdays(now: str, expected: str) -> None:
    assert schedule().next(utc(now)) == utc(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-23 08:00", "2026-11-23 08:00"),
        ("2026-11-23 07:59", "2026-11-20 08:00"),  # Monday early -> Friday
        ("2026-11-29 23:00", "2026-11-27 08:00"),  # Sunday -> Friday
    ],
)
def test_latest_run_for_catching_up(now: str, expected: str) -> None:
    assert schedule().latest(utc(now)) == utc(expected)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-23 07:00", "2026-11-20 08:00"),  # Monday, an hour before: Friday's is made up
        ("2026-11-23 07:01", None),  # 59 minutes before Monday's, which delivers the same
        ("2026-11-23 07:59", None),
        ("2026-11-23 08:00", "2026-11-23 08:00"),  # the slot itself is due
        ("2026-11-23 08:30", "2026-11-23 08:00"),
        ("2026-11-24 07:30", None),  # Tuesday: Monday's would come half an hour early
        ("2026-11-29 23:00", "2026-11-27 08:00"),  # Sunday night: Monday is 9 hours away
    ],
)
def test_a_missed_slot_is_made_up_only_when_the_next_is_an_hour_away(
    now: str, expected: str | None
) -> None:
    assert schedule().missed(utc(now)) == (utc(expected) if expected else None)


def test_the_catch_up_margin_is_a_parameter() -> None:
    assert schedule().missed(utc("2026-11-23 05:00"), timedelta(hours=4)) is None
    assert schedule().missed(utc("2026-11-23 05:00"), timedelta(0)) == utc("2026-11-20 08:00")


def test_time_zone_and_daylight_saving() -> None:
    berlin = schedule("08:00", "Europe/Berlin", ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    assert berlin.next(utc("2026-03-28 12:00")) == utc("2026-03-29 06:00")  # CEST from the 29th
    assert berlin.next(utc("2026-03-27 12:00")) == utc("2026-03-28 07:00")
    gap = schedule("02:30", "Europe/Berlin", ("sun",))
    assert gap.next(utc("2026-03-28 00:00")) == utc("2026-03-29 01:30")  # 02:30 is skipped


def test_weekend_only_schedule() -> None:
    assert schedule(days=("sat",)).next(utc("2026-11-23 00:00")) == utc("2026-11-28 08:00")


def test_slot_ids_are_the_same_in_any_zone() -> None:
    slot = schedule("09:15", "Asia/Tokyo").next(utc("2026-11-23 00:00"))
    assert slot_id(slot) == "2026-11-23T00:15Z"


@pytest.mark.parametrize(
    "bad", [{"time": "8am"}, {"time": "24:00"}, {"timezone": "Mars/Base"}, {"weekdays": []}]
)
def test_bad_schedule_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ScheduleSettings.model_validate(bad)
