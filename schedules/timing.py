"""When does a backup job run next: cron parsing, frequencies, time zones, DST.

Pure functions (no ORM) shared by the schedules services, the facades that
show ``next_run`` / ``next_backup`` / ``next_execution`` and the beat
synchronisation that writes django-celery-beat ``CrontabSchedule`` rows.

Seeds implemented:

* db-backup-platform.md, "Schedules": ``cron_expression`` + ``timezone``.
* workspace-backup-api.md, "Backup Policy": ``frequency`` (daily, weekly,
  monthly, custom), ``time`` "HH:MM", ``timezone``, ``days_of_week``.
* api-layer.md, backup jobs: ``schedule_type`` + ``schedule_time``.
* system-backup-recovery.rst, "Scheduled Backups": ``frequency`` + ``time``
  (+ ``timezone``).

Cron dialect
------------
Five fields, ``minute hour day-of-month month day-of-week``, evaluated on the
job's local wall clock. Numbers, ``*``, ranges, lists, steps, month and day
names, ``7`` for Sunday, ``?`` (read as ``*``) and the aliases ``@hourly``,
``@daily``/``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``
are accepted. Rejected with a ``ValueError`` because Celery beat (which
actually fires the jobs) cannot run them: seconds/year fields, ``L``, ``W``,
``#``, ``H`` hashes, ``@reboot``, dates that never occur (``0 2 30 2 *``) and
expressions that restrict *both* day-of-month and day-of-week (classic cron
ORs the two, Celery ANDs them, so the shown next run would lie).

Daylight saving time (the rules of Vixie/ISC cron, see cron(8))
-----------------------------------------------------------------
A job is *fixed-time* when neither its minute nor its hour field starts with
``*`` (``30 2 * * *``, ``0 3 * * 1-5``); otherwise it is *periodic*
(``0 * * * *``, ``*/15 * * * *``).

* Spring forward (wall-clock hour skipped, e.g. ``America/New_York`` on
  2024-03-10, 02:00 -> 03:00): a fixed-time job whose time falls in the gap
  runs **once, at the first instant after the gap** (``30 2 * * *`` runs at
  03:00 EDT that day, 07:00 UTC), which is what croniter produces and what a
  user expects from a nightly backup: it is late, never missing. Periodic
  jobs are not caught up: the hour that did not exist has no runs.
* Fall back (wall-clock hour repeated, 2024-11-03, 01:00-01:59 twice): a
  fixed-time job runs **once, at the first occurrence** (``30 1 * * *`` runs at
  01:30 EDT = 05:30 UTC only; croniter alone would also yield 01:30 EST, which
  we drop). Periodic jobs follow real elapsed time and run in both
  occurrences (``0 * * * *`` runs at 05:00 and 06:00 UTC), so an hourly job
  never has a two-hour hole.

All returned datetimes are aware and in UTC, strictly after ``after``,
strictly increasing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

logger = logging.getLogger(__name__)

__all__ = [
    "CRON_ALIASES",
    "FREQUENCIES",
    "cron_next_run",
    "cron_next_runs",
    "cron_to_celery_fields",
    "frequency_to_cron",
    "validate_cron",
    "validate_timezone",
]

CRON_ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

FREQUENCIES = ("hourly", "daily", "weekly", "monthly", "custom")

_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
# Days per month in a leap year: a day-of-month/month pair that fits nowhere
# here never fires (Celery refuses it too).
_DAYS_IN_MONTH = {
    1: 31,
    2: 29,
    3: 31,
    4: 30,
    5: 31,
    6: 30,
    7: 31,
    8: 31,
    9: 30,
    10: 31,
    11: 30,
    12: 31,
}
_FIELD_CHARS = re.compile(r"^[0-9a-z*/,\-]+$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
# A cron expression that matches at least once a year yields a run within
# ~366 days of candidates; croniter needs far fewer iterations than this, the
# bound only stops a pathological loop.
_MAX_CANDIDATES = 100_000


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


# Present in some tz databases but not places: the host's own zone and tzdata's
# placeholder zone.
_NOT_TIMEZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_TIMEZONES


def validate_timezone(tz: str) -> ZoneInfo:
    """Return the ``ZoneInfo`` for IANA name ``tz`` or raise ``ValueError``.

    Only names of the IANA database are accepted (``UTC``,
    ``America/New_York``, ``Europe/Berlin``...), not file paths, abbreviations
    such as ``EST`` that are not zone names, or the host's ``localtime``.
    """
    if not isinstance(tz, str) or not tz.strip():
        raise ValueError("timezone must be a non-empty IANA time zone name such as 'UTC'")
    name = tz.strip()
    if name not in _known_timezones():
        raise ValueError(f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - listed but unreadable
        raise ValueError(f"unknown time zone {tz!r}") from exc


@dataclass(frozen=True, slots=True)
class _CronSpec:
    """A validated five-field expression and its expanded value sets."""

    fields: tuple[str, str, str, str, str]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None = any day of month
    months: frozenset[int]
    weekdays: frozenset[int] | None  # cron numbering, Sunday = 0; None = any

    @property
    def expression(self) -> str:
        return " ".join(self.fields)

    @property
    def fixed_time(self) -> bool:
        """Vixie cron's test: neither minute nor hour starts with ``*``."""
        return not (self.fields[0].startswith("*") or self.fields[1].startswith("*"))

    def matches_wall_clock(self, local: datetime) -> bool:
        """Whether the wall-clock reading ``local`` (any tzinfo) is a cron match."""
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and local.month in self.months
            and (self.days is None or local.day in self.days)
            and (self.weekdays is None or local.isoweekday() % 7 in self.weekdays)
        )


def _values(expanded: list, low: int, high: int) -> frozenset[int]:
    if expanded == ["*"]:
        return frozenset(range(low, high + 1))
    return frozenset(int(v) for v in expanded)


@lru_cache(maxsize=512)
def _parse_cron(expr: str) -> _CronSpec:
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("cron expression must be a non-empty string such as '0 2 * * *'")
    text = " ".join(expr.lower().split())
    if text.startswith("@"):
        if text not in CRON_ALIASES:
            raise ValueError(f"unsupported cron alias {expr!r}: use one of {', '.join(sorted(CRON_ALIASES))}")
        text = CRON_ALIASES[text]
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"invalid cron expression {expr!r}: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    # Quartz users write '?' for "no specific value"; it means '*' here.
    fields = ["*" if f == "?" else f for f in fields]
    for name, field in zip(_FIELD_NAMES, fields, strict=True):
        if "#" in field:
            raise ValueError(
                f"invalid cron expression {expr!r}: '#' (nth weekday) is not supported (Celery beat cannot run it)"
            )
        if not _FIELD_CHARS.match(field):
            raise ValueError(
                f"invalid cron expression {expr!r}: {name} field {field!r} may only use "
                "numbers, names, '*', ',', '-' and '/'"
            )
    if re.search(r"[a-z]", fields[0] + fields[1] + fields[2]):
        raise ValueError(
            f"invalid cron expression {expr!r}: 'L', 'W' and 'H' are not supported (Celery beat cannot run them)"
        )
    try:
        expanded, nth_weekday = croniter.expand(" ".join(fields))
    except CroniterError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"invalid cron expression {expr!r}: {detail}") from exc
    if nth_weekday or any("l" in map(str, values) for values in expanded):
        raise ValueError(f"invalid cron expression {expr!r}: 'L' and '#' are not supported")
    minute, hour, dom, month, dow = expanded
    days = None if dom == ["*"] else frozenset(int(v) for v in dom)
    weekdays = None if dow == ["*"] else frozenset(int(v) % 7 for v in dow)
    if days is not None and weekdays is not None:
        raise ValueError(
            f"invalid cron expression {expr!r}: restrict day-of-month or day-of-week, not both "
            "(cron runs on either, Celery beat only on days matching both)"
        )
    months = _values(month, 1, 12)
    if days is not None and not any(d <= _DAYS_IN_MONTH[m] for m in months for d in days):
        raise ValueError(f"invalid cron expression {expr!r}: that day never occurs in those months")
    return _CronSpec(
        fields=tuple(fields),  # type: ignore[arg-type]
        minutes=_values(minute, 0, 59),
        hours=_values(hour, 0, 23),
        days=days,
        months=months,
        weekdays=weekdays,
    )


def validate_cron(expr: str) -> str:
    """Validate a cron expression; return it normalised (aliases expanded,
    lower case, single spaces), or raise ``ValueError`` saying what is wrong.
    """
    return _parse_cron(expr).expression


# --------------------------------------------------------------------------- #
# Next runs
# --------------------------------------------------------------------------- #


def _is_repeated_second_pass(local: datetime) -> bool:
    """True for the *second* occurrence of a wall-clock time in a fall-back overlap."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _second_pass_matches(spec: _CronSpec, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Periodic-job runs in fall-back overlaps strictly between ``start`` and ``end``.

    croniter repeats whole-hour overlaps (New York, Berlin) itself but misses
    the second pass of overlaps that do not start on the hour (Chatham Islands,
    03:45 -> 02:45). Each day in the interval is probed for a drop of the UTC
    offset; the overlap after such a drop is scanned minute by minute.
    """
    found: list[datetime] = []
    probe = start
    offset = start.astimezone(zone).utcoffset()
    while probe < end:
        step_end = min(probe + timedelta(days=1), end)
        step_offset = step_end.astimezone(zone).utcoffset()
        if step_offset is not None and offset is not None and step_offset < offset:
            low, high = probe, step_end  # offset(low) > offset(high): find the transition
            while high - low > timedelta(minutes=1):
                mid = low + (high - low) / 2
                if mid.astimezone(zone).utcoffset() == offset:
                    low = mid
                else:
                    high = mid
            # Whole minutes from just before the transition to the end of the
            # overlap; the fold test below keeps only second-pass instants.
            t = low.replace(second=0, microsecond=0)
            while t < high + (offset - step_offset):
                if start < t < end:
                    local = t.astimezone(zone)
                    if _is_repeated_second_pass(local) and spec.matches_wall_clock(local):
                        found.append(t)
                t += timedelta(minutes=1)
        probe, offset = step_end, step_offset
    return found


def cron_next_runs(expr: str, tz: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` run times of ``expr`` in time zone ``tz`` after ``after``.

    ``after`` must be aware (any zone). Returns aware UTC datetimes, strictly
    after ``after`` and strictly increasing. The expression is evaluated on
    the wall clock of ``tz`` with the DST rules of the module docstring
    (fixed-time jobs: late in a spring-forward gap, once in a fall-back
    overlap; periodic jobs: real elapsed time). Raises ``ValueError`` for an
    invalid expression or time zone, a naive ``after`` or a negative count.
    """
    spec = _parse_cron(expr)
    zone = validate_timezone(tz)
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("'after' must be an aware datetime")
    if count < 0:
        raise ValueError("count must be >= 0")
    after_utc = after.astimezone(UTC)
    iterator = croniter(spec.expression, after_utc.astimezone(zone))
    runs: list[datetime] = []
    last = after_utc
    for _ in range(_MAX_CANDIDATES):
        if len(runs) >= count:
            break
        candidate = iterator.get_next(datetime).astimezone(UTC)
        if candidate <= last:
            continue  # two gap times moved onto the same instant
        local = candidate.astimezone(zone)
        if spec.matches_wall_clock(local):
            if spec.fixed_time and _is_repeated_second_pass(local):
                continue  # fall back: a fixed-time job already ran in the first pass
        elif not spec.fixed_time:
            continue  # croniter moved a gap time forward; periodic jobs are not caught up
        if not spec.fixed_time:
            runs.extend(_second_pass_matches(spec, zone, last, candidate)[: count - len(runs)])
            if len(runs) >= count:
                break
        runs.append(candidate)
        last = candidate
    else:  # pragma: no cover - a valid expression always yields runs
        raise ValueError(f"cron expression {expr!r} yields no run times")
    return runs


def cron_next_run(expr: str, tz: str, after: datetime) -> datetime:
    """Convenience: the single next run of :func:`cron_next_runs`."""
    return cron_next_runs(expr, tz, after, 1)[0]


# --------------------------------------------------------------------------- #
# Frequencies of the seeds -> cron
# --------------------------------------------------------------------------- #


def _parse_time(time: str | None, *, required: bool) -> tuple[int, int]:
    if time is None or (isinstance(time, str) and not time.strip()):
        if required:
            raise ValueError("time is required, as 'HH:MM' (24-hour clock)")
        return 0, 0
    match = _TIME.match(time.strip()) if isinstance(time, str) else None
    if not match:
        raise ValueError(f"invalid time {time!r}: expected 'HH:MM' (24-hour clock)")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"invalid time {time!r}: hour must be 00-23 and minute 00-59")
    return hour, minute


def _compress(values: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3,5"`` (sorted, unique)."""
    runs: list[list[int]] = []
    for value in sorted(set(values)):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


def _cron_weekdays(days_of_week: list[int] | tuple[int, ...] | None) -> str:
    """ISO weekdays (1 = Monday ... 7 = Sunday) -> cron day-of-week field."""
    if days_of_week is None:
        return "*"
    days = list(days_of_week)
    if not days:
        raise ValueError("days_of_week must not be empty (omit it for every day)")
    for day in days:
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 7:
            raise ValueError(f"invalid day of week {day!r}: use 1 (Monday) to 7 (Sunday), ISO 8601 numbering")
    cron_days = {day % 7 for day in days}  # ISO 7 (Sunday) -> cron 0
    if len(cron_days) == 7:
        return "*"
    return _compress(cron_days)


def frequency_to_cron(
    frequency: str,
    time: str | None = None,
    days_of_week: list[int] | tuple[int, ...] | None = None,
    day_of_month: int | None = None,
    cron: str | None = None,
) -> str:
    """Map a seed's frequency/time/days to a five-field cron expression.

    Reading of the seeds (workspace-backup-api.md "Backup Policy",
    api-layer.md ``schedule_type``/``schedule_time``,
    system-backup-recovery.rst "Scheduled Backups"):

    * ``days_of_week`` are ISO 8601 weekdays, **1 = Monday ... 7 = Sunday**
      (the workspace seed's ``[1, 2, 3, 4, 5]`` is "weekdays"); they become
      cron's 0-6 with Sunday = 0. ``None`` or all seven days means every day.
    * ``hourly``: at minute MM of ``time`` every hour (``time`` optional,
      default minute 0; its hour is ignored), optionally only on
      ``days_of_week``.
    * ``daily``: at ``time`` every day, or only on ``days_of_week``.
    * ``weekly``: at ``time`` on ``days_of_week``; without days, on Sunday
      (the day of cron's ``@weekly``).
    * ``monthly``: at ``time`` on ``day_of_month`` (default 1). Only 1-28 are
      accepted so that every month has its backup; for "last day" use a
      custom schedule. ``days_of_week`` is refused: it would AND/OR with the
      day of month differently in cron and Celery.
    * ``custom``: ``cron`` is validated and returned normalised; ``time`` and
      days must not be given.

    ``frequency`` is case-insensitive. Raises ``ValueError`` with a message
    fit for an API error body.
    """
    if not isinstance(frequency, str):
        raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}")
    kind = frequency.strip().lower()
    if kind == "custom":
        if not cron:
            raise ValueError("a custom schedule needs a cron expression")
        if days_of_week is not None or day_of_month is not None:
            raise ValueError("a custom schedule takes its days from the cron expression")
        return validate_cron(cron)
    if cron:
        raise ValueError(f"a cron expression is only allowed with frequency 'custom', not {frequency!r}")
    if kind == "hourly":
        if day_of_month is not None:
            raise ValueError("day_of_month only applies to monthly schedules")
        _, minute = _parse_time(time, required=False)
        return f"{minute} * * * {_cron_weekdays(days_of_week)}"
    hour, minute = _parse_time(time, required=True)
    if kind in ("daily", "weekly"):
        if day_of_month is not None:
            raise ValueError("day_of_month only applies to monthly schedules")
        weekdays = _cron_weekdays(days_of_week)
        if kind == "weekly" and days_of_week is None:
            weekdays = "0"
        return f"{minute} {hour} * * {weekdays}"
    if kind == "monthly":
        if days_of_week is not None:
            raise ValueError("days_of_week cannot be combined with a monthly schedule")
        day = 1 if day_of_month is None else day_of_month
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 28:
            raise ValueError(
                f"invalid day_of_month {day_of_month!r}: use 1-28 so that every month has a "
                "backup (use a custom cron expression for other days)"
            )
        return f"{minute} {hour} {day} * *"
    raise ValueError(f"unknown frequency {frequency!r}: use one of {', '.join(FREQUENCIES)}")


# --------------------------------------------------------------------------- #
# django-celery-beat
# --------------------------------------------------------------------------- #


def cron_to_celery_fields(expr: str) -> dict[str, str]:
    """Split a cron expression into django-celery-beat ``CrontabSchedule`` fields.

    Returns ``minute``, ``hour``, ``day_of_week``, ``day_of_month`` and
    ``month_of_year``. A field is kept as written when Celery's own parser
    reads it as the same set of values; otherwise (``7`` or ``sun-sat`` style
    day ranges Celery rejects, ``?``...) it is rewritten as an explicit list
    with ranges (``5-7`` -> ``0,5-6``). Raises ``ValueError`` like
    :func:`validate_cron`.
    """
    from celery.schedules import ParseException, crontab_parser

    spec = _parse_cron(expr)
    minute, hour, dom, month, dow = spec.fields
    wanted: dict[str, tuple[str, frozenset[int] | None, int, int]] = {
        "minute": (minute, spec.minutes, 60, 0),
        "hour": (hour, spec.hours, 24, 0),
        "day_of_week": (dow, spec.weekdays, 7, 0),
        "day_of_month": (dom, spec.days, 31, 1),
        "month_of_year": (month, spec.months, 12, 1),
    }
    result: dict[str, str] = {}
    for name, (text, values, max_, min_) in wanted.items():
        full = frozenset(range(min_, min_ + max_))
        values = full if values is None else values
        if text == "*":
            result[name] = "*"
            continue
        try:
            same = crontab_parser(max_, min_).parse(text) == set(values)
        except (ParseException, ValueError, KeyError):
            same = False
        result[name] = text if same else ("*" if values == full else _compress(values))
    return result
