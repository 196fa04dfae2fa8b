"""Next-run computation: cron, frequencies of the seeds, time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schedules.timing import (
    _parse_cron,
    cron_next_run,
    cron_next_runs,
    cron_to_celery_fields,
    frequency_to_cron,
    validate_cron,
    validate_timezone,
)

NY = "America/New_York"
BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)


# --------------------------------------------------------------------------- #
# The seeds' own examples
# --------------------------------------------------------------------------- #


def test_platform_seed_daily_schedule_runs_next_day_at_two_utc():
    # db-backup-platform.md "Schedules": last_run 2024-01-15T02:00Z, next_run 2024-01-16T02:00Z
    assert cron_next_runs("0 2 * * *", "UTC", utc(2024, 1, 15, 2, 0)) == [utc(2024, 1, 16, 2, 0)]


def test_console_seed_nightly_schedule_next_execution():
    # system-backup-recovery.rst "Scheduled Backups": daily 02:00 UTC
    cron = frequency_to_cron("daily", "02:00", None)
    assert cron_next_run(cron, "UTC", utc(2025, 6, 12, 2, 0)) == utc(2025, 6, 13, 2, 0)


def test_workspace_policy_weekdays_at_two_in_new_york_skip_the_weekend():
    # workspace-backup-api.md "Backup Policy": daily, 02:00, America/New_York, days 1-5
    cron = frequency_to_cron("daily", "02:00", [1, 2, 3, 4, 5])
    assert cron == "0 2 * * 1-5"
    friday_after_backup = local(NY, 2024, 1, 19, 3, 0)
    runs = cron_next_runs(cron, NY, friday_after_backup, count=2)
    # Monday and Tuesday 02:00 EST = 07:00 UTC
    assert runs == [utc(2024, 1, 22, 7, 0), utc(2024, 1, 23, 7, 0)]


# --------------------------------------------------------------------------- #
# Basic contract
# --------------------------------------------------------------------------- #


def test_runs_are_aware_utc_strictly_after_and_increasing():
    on_a_run = utc(2024, 5, 1, 0, 0)  # 02:00 CEST: that run is not "next"
    runs = cron_next_runs("0 2 * * *", BERLIN, on_a_run, count=5)
    assert all(r.tzinfo is UTC for r in runs)
    assert runs == sorted(set(runs))
    assert runs[0] == utc(2024, 5, 2, 0, 0)
    just_before = on_a_run - timedelta(microseconds=1)
    assert cron_next_run("0 2 * * *", BERLIN, just_before) == on_a_run


def test_after_may_be_given_in_any_time_zone():
    after_tokyo = datetime(2024, 5, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 00:00 UTC
    assert cron_next_run("30 0 * * *", "UTC", after_tokyo) == utc(2024, 5, 1, 0, 30)
    after_fixed = datetime(2024, 5, 1, 5, 0, tzinfo=timezone(timedelta(hours=5)))
    assert cron_next_run("30 0 * * *", "UTC", after_fixed) == utc(2024, 5, 1, 0, 30)


def test_count_zero_returns_nothing_and_negative_count_is_refused():
    assert cron_next_runs("0 2 * * *", "UTC", utc(2024, 1, 1), count=0) == []
    with pytest.raises(ValueError, match="count"):
        cron_next_runs("0 2 * * *", "UTC", utc(2024, 1, 1), count=-1)


def test_naive_after_is_refused():
    with pytest.raises(ValueError, match="aware"):
        cron_next_runs("0 2 * * *", "UTC", datetime(2024, 1, 1))


def test_leap_day_schedule_waits_for_the_next_leap_year():
    assert cron_next_runs("0 0 29 2 *", "UTC", utc(2024, 3, 1), count=2) == [
        utc(2028, 2, 29),
        utc(2032, 2, 29),
    ]


# --------------------------------------------------------------------------- #
# DST: America/New_York
# --------------------------------------------------------------------------- #


def test_new_york_spring_forward_nightly_job_at_0230_runs_at_0300_once():
    runs = cron_next_runs("30 2 * * *", NY, local(NY, 2024, 3, 8, 12, 0), count=4)
    assert runs == [
        utc(2024, 3, 9, 7, 30),  # 02:30 EST
        utc(2024, 3, 10, 7, 0),  # 02:30 does not exist: 03:00 EDT
        utc(2024, 3, 11, 6, 30),  # 02:30 EDT
        utc(2024, 3, 12, 6, 30),
    ]
    assert runs[1].astimezone(ZoneInfo(NY)).strftime("%H:%M %Z") == "03:00 EDT"


def test_new_york_spring_forward_two_gap_times_make_one_run():
    runs = cron_next_runs("0,30 2 * * *", NY, local(NY, 2024, 3, 10, 0, 0), count=2)
    assert runs == [utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 0)]


def test_new_york_spring_forward_hourly_job_has_no_run_in_the_missing_hour():
    runs = cron_next_runs("0 * * * *", NY, local(NY, 2024, 3, 10, 0, 30), count=3)
    # 01:00 EST, (02:00 does not exist), 03:00 EDT, 04:00 EDT: one real hour apart
    assert runs == [utc(2024, 3, 10, 6, 0), utc(2024, 3, 10, 7, 0), utc(2024, 3, 10, 8, 0)]


def test_new_york_spring_forward_periodic_job_is_not_caught_up():
    runs = cron_next_runs("15,45 * * * *", NY, local(NY, 2024, 3, 10, 1, 30), count=2)
    assert runs == [utc(2024, 3, 10, 6, 45), utc(2024, 3, 10, 7, 15)]  # 01:45 EST, 03:15 EDT


def test_new_york_fall_back_nightly_job_at_0130_runs_once():
    runs = cron_next_runs("30 1 * * *", NY, local(NY, 2024, 11, 2, 12, 0), count=3)
    assert runs == [
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT, first pass only
        utc(2024, 11, 4, 6, 30),  # 01:30 EST next day
        utc(2024, 11, 5, 6, 30),
    ]


def test_new_york_fall_back_asking_during_the_repeated_hour_does_not_rerun():
    during_second_pass = local(NY, 2024, 11, 3, 1, 0, fold=1)  # 06:00 UTC
    assert cron_next_run("30 1 * * *", NY, during_second_pass) == utc(2024, 11, 4, 6, 30)


def test_new_york_fall_back_hourly_job_runs_every_real_hour():
    runs = cron_next_runs("0 * * * *", NY, local(NY, 2024, 11, 3, 0, 30), count=3)
    # 01:00 EDT, 01:00 EST, 02:00 EST
    assert runs == [utc(2024, 11, 3, 5, 0), utc(2024, 11, 3, 6, 0), utc(2024, 11, 3, 7, 0)]


# --------------------------------------------------------------------------- #
# DST: Europe/Berlin, UTC, an odd zone
# --------------------------------------------------------------------------- #


def test_berlin_spring_forward_and_fall_back_for_a_0230_job():
    spring = cron_next_runs("30 2 * * *", BERLIN, local(BERLIN, 2024, 3, 30, 12, 0), count=3)
    assert spring == [utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 30), utc(2024, 4, 2, 0, 30)]
    autumn = cron_next_runs("30 2 * * *", BERLIN, local(BERLIN, 2024, 10, 26, 12, 0), count=2)
    assert autumn == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]


def test_utc_schedule_ignores_every_dst_change():
    runs = cron_next_runs("30 2 * * *", "UTC", utc(2024, 3, 9), count=3)
    assert runs == [utc(2024, 3, 9, 2, 30), utc(2024, 3, 10, 2, 30), utc(2024, 3, 11, 2, 30)]


def test_chatham_islands_quarter_hour_overlap_repeats_periodic_runs():
    # Pacific/Chatham falls back 03:45 -> 02:45 (+13:45 -> +12:45).
    runs = cron_next_runs("*/15 2 * * *", "Pacific/Chatham", utc(2024, 4, 6, 12, 10), count=5)
    assert runs[:3] == [utc(2024, 4, 6, 12, 15), utc(2024, 4, 6, 12, 30), utc(2024, 4, 6, 12, 45)]
    assert runs[3:] == [utc(2024, 4, 6, 13, 0), utc(2024, 4, 6, 14, 0)]  # 02:45 twice


# --------------------------------------------------------------------------- #
# Against a brute-force reference (minute by minute) around DST changes
# --------------------------------------------------------------------------- #


def _reference_runs(expr: str, tz: str, after: datetime, end: datetime) -> list[datetime]:
    """The documented rules, checked for every UTC minute in (after, end]."""
    spec = _parse_cron(expr)
    zone = ZoneInfo(tz)
    t = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    previous_wall = (t - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
    runs = []
    while t <= end:
        here = t.astimezone(zone)
        wall = here.replace(tzinfo=None)
        second_pass = here.fold == 1 and here.replace(fold=0).utcoffset() != here.utcoffset()
        run = spec.matches_wall_clock(here) and not (spec.fixed_time and second_pass)
        if spec.fixed_time and wall - previous_wall > timedelta(minutes=1):  # a gap ended
            skipped = previous_wall + timedelta(minutes=1)
            while skipped < wall and not run:
                run = spec.matches_wall_clock(skipped)
                skipped += timedelta(minutes=1)
        if run:
            runs.append(t)
        previous_wall = wall
        t += timedelta(minutes=1)
    return runs


def _transitions(tz: str, year: int = 2024) -> list[datetime]:
    zone = ZoneInfo(tz)
    found, t = [], utc(year, 1, 1)
    offset = t.astimezone(zone).utcoffset()
    while t.year == year:
        t += timedelta(minutes=15)
        if t.astimezone(zone).utcoffset() != offset:
            found.append(t)
            offset = t.astimezone(zone).utcoffset()
    return found or [utc(year, 3, 10)]


ZONES = [
    "UTC",
    NY,
    BERLIN,
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
    "Europe/Dublin",  # "negative" DST
    "Pacific/Chatham",  # +12:45/+13:45
    "Asia/Kolkata",  # no DST, half-hour offset
]
_TRANSITIONS = {tz: _transitions(tz) for tz in ZONES}


@st.composite
def expressions(draw) -> str:
    minute = draw(st.sampled_from(["0", "30", "15,45", "*/15", "*/30", "*", "5", "0-59/20"]))
    hour = draw(st.sampled_from(["*", "0", "1", "2", "3", "23", "1,2", "*/2", "1-3"]))
    dom = draw(st.sampled_from(["*", "*", "1", "15", "31", "*/2"]))
    dow = "*" if dom != "*" else draw(st.sampled_from(["*", "0", "1-5", "6", "sun", "7"]))
    return f"{minute} {hour} {dom} * {dow}"


@st.composite
def moments_near_dst(draw) -> tuple[str, datetime]:
    tz = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(_TRANSITIONS[tz]))
    shift = timedelta(minutes=draw(st.integers(-2000, 1500)), seconds=draw(st.integers(0, 59)))
    return tz, change + shift


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions(), where=moments_near_dst())
def test_next_runs_match_the_minute_by_minute_reference(expr, where):
    tz, after = where
    end = after + timedelta(days=2)
    runs = cron_next_runs(expr, tz, after, count=10)
    in_window = [r for r in runs if r <= end]
    reference = _reference_runs(expr, tz, after, end)
    assert in_window == reference[: len(in_window)]
    if len(in_window) < len(runs):  # the library went past the window: nothing was missed
        assert len(reference) == len(in_window)


@settings(max_examples=100, deadline=None)
@given(expr=expressions(), where=moments_near_dst())
def test_fixed_time_jobs_run_at_most_once_per_local_day(expr, where):
    tz, after = where
    spec = _parse_cron(expr)
    assume(spec.fixed_time and len(spec.hours) == 1)
    runs = cron_next_runs(expr, tz, after, count=6)
    days = [r.astimezone(ZoneInfo(tz)).date() for r in runs]
    assert all(days.count(day) <= len(spec.minutes) for day in days)


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "non-empty"),
        ("0 2 * *", "expected 5 fields"),
        ("0 0 2 * * *", "expected 5 fields"),
        ("61 2 * * *", "out of range"),
        ("0 24 * * *", "out of range"),
        ("0 2 L * *", "not supported"),
        ("0 2 15W * *", "not supported"),
        ("H 2 * * *", "not supported"),
        ("0 2 * * 5#3", "not supported"),
        ("0 2 1 * 1", "not both"),
        ("0 2 30 2 *", "never occurs"),
        ("@reboot", "unsupported cron alias"),
        ("0 2 * * mon;rm", "may only use"),
        ("every day", "expected 5 fields"),
    ],
)
def test_invalid_cron_expressions_are_refused_with_a_clear_message(expr, message):
    with pytest.raises(ValueError, match=message):
        validate_cron(expr)
    with pytest.raises(ValueError, match=message):
        cron_next_runs(expr, "UTC", utc(2024, 1, 1))


@pytest.mark.parametrize(
    ("expr", "normalised"),
    [
        ("0  2 * *  *", "0 2 * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("0 2 ? * MON-FRI", "0 2 * * mon-fri"),
    ],
)
def test_validate_cron_returns_the_normalised_expression(expr, normalised):
    assert validate_cron(expr) == normalised


@pytest.mark.parametrize("tz", ["UTC", NY, BERLIN, "Asia/Kolkata"])
def test_validate_timezone_accepts_iana_names(tz):
    assert validate_timezone(tz).key == tz


@pytest.mark.parametrize("tz", ["", "Mars/Olympus", "../../etc/passwd", "localtime", "Factory", "+02:00"])
def test_validate_timezone_refuses_anything_else(tz):
    with pytest.raises(ValueError, match="time zone"):
        validate_timezone(tz)
    with pytest.raises(ValueError, match="time zone"):
        cron_next_runs("0 2 * * *", tz, utc(2024, 1, 1))


# --------------------------------------------------------------------------- #
# Frequencies of the seeds
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("args", "kwargs", "cron"),
    [
        (("daily", "03:00", None), {}, "0 3 * * *"),  # api-layer.md schedule_type/schedule_time
        (("DAILY", "2:05", None), {}, "5 2 * * *"),
        (("daily", "02:00", [1, 2, 3, 4, 5]), {}, "0 2 * * 1-5"),
        (("daily", "02:00", [1, 2, 3, 4, 5, 6, 7]), {}, "0 2 * * *"),
        (("daily", "23:59", [6, 7]), {}, "59 23 * * 0,6"),
        (("weekly", "02:00", None), {}, "0 2 * * 0"),
        (("weekly", "02:00", [1]), {}, "0 2 * * 1"),
        (("weekly", "02:00", [7]), {}, "0 2 * * 0"),
        (("weekly", "02:00", [1, 3, 5]), {}, "0 2 * * 1,3,5"),
        (("monthly", "04:30", None), {}, "30 4 1 * *"),
        (("monthly", "04:30", None), {"day_of_month": 28}, "30 4 28 * *"),
        (("hourly", "00:15", None), {}, "15 * * * *"),
        (("hourly", None, [1, 2, 3, 4, 5]), {}, "0 * * * 1-5"),
        (("custom", None, None), {"cron": "*/30  * * * *"}, "*/30 * * * *"),
        (("custom", None, None), {"cron": "@daily"}, "0 0 * * *"),
    ],
)
def test_frequency_to_cron(args, kwargs, cron):
    assert frequency_to_cron(*args, **kwargs) == cron
    validate_cron(cron)


def test_iso_sunday_becomes_cron_sunday():
    cron = frequency_to_cron("weekly", "10:00", [7])
    sunday = cron_next_run(cron, "UTC", utc(2024, 1, 15))  # a Monday
    assert sunday == utc(2024, 1, 21, 10, 0)
    assert sunday.isoweekday() == 7


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("yearly", "02:00", None), {}, "unknown frequency"),
        (("daily", None, None), {}, "time is required"),
        (("daily", "25:00", None), {}, "hour must be"),
        (("daily", "2pm", None), {}, "HH:MM"),
        (("daily", "02:00", [0]), {}, "1 \\(Monday\\) to 7 \\(Sunday\\)"),
        (("daily", "02:00", [8]), {}, "1 \\(Monday\\) to 7 \\(Sunday\\)"),
        (("daily", "02:00", []), {}, "must not be empty"),
        (("daily", "02:00", None), {"day_of_month": 3}, "only applies to monthly"),
        (("monthly", "02:00", None), {"day_of_month": 31}, "1-28"),
        (("monthly", "02:00", None), {"day_of_month": 0}, "1-28"),
        (("monthly", "02:00", [1]), {}, "cannot be combined"),
        (("custom", None, None), {}, "needs a cron expression"),
        (("custom", None, None), {"cron": "0 2 * *"}, "expected 5 fields"),
        (("daily", "02:00", None), {"cron": "0 2 * * *"}, "only allowed with frequency 'custom'"),
    ],
)
def test_frequency_to_cron_refuses_what_it_cannot_honour(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        frequency_to_cron(*args, **kwargs)


# --------------------------------------------------------------------------- #
# django-celery-beat CrontabSchedule fields
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("expr", "fields"),
    [
        ("0 2 * * *", ("0", "2", "*", "*", "*")),
        ("*/15 * * * *", ("*/15", "*", "*", "*", "*")),
        ("0 2 * * 1-5", ("0", "2", "1-5", "*", "*")),
        ("0 2 * * 7", ("0", "2", "0", "*", "*")),  # Celery has no 7
        ("0 2 * * 5-7", ("0", "2", "0,5-6", "*", "*")),
        ("30 4 1 * *", ("30", "4", "*", "1", "*")),
        ("0 3 * jan,jul mon", ("0", "3", "mon", "*", "jan,jul")),
        ("@weekly", ("0", "0", "0", "*", "*")),
    ],
)
def test_cron_to_celery_fields(expr, fields):
    keys = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
    assert cron_to_celery_fields(expr) == dict(zip(keys, fields, strict=True))


@settings(max_examples=100, deadline=None)
@given(expr=expressions())
def test_celery_reads_the_fields_as_the_same_schedule(expr):
    spec = _parse_cron(expr)
    schedule = crontab(**cron_to_celery_fields(expr))
    assert schedule.minute == spec.minutes
    assert schedule.hour == spec.hours
    assert schedule.day_of_month == (spec.days or set(range(1, 32)))
    assert schedule.month_of_year == spec.months
    assert schedule.day_of_week == (spec.weekdays or set(range(7)))


def test_cron_to_celery_fields_refuses_invalid_expressions():
    with pytest.raises(ValueError, match="expected 5 fields"):
        cron_to_celery_fields("0 2 * *")
