"""Sizes, rates and durations the way the seeds show them to people.

system-backup-recovery.rst writes ``"size": 220000000`` next to ``"size_display": "220 MB"``,
so sizes are decimal (1 MB = 1,000,000 bytes): under 10 of a unit with one decimal
(``"1.4 GB"``), from 10 up without (``"220 MB"``). Durations are ``HH:MM:SS`` (``"00:01:30"``;
past a day the hours keep counting). Every human value an API shows sits next to the exact
number it was made from (``..._bytes``, ``..._seconds``), so programs never parse these.
"""

from __future__ import annotations

from typing import Any

UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def size(value: int | float | None) -> str | None:
    """``220000000`` -> ``"220 MB"``; ``None`` stays ``None``."""
    if value is None:
        return None
    amount = float(max(0, value))
    for unit in UNITS:
        if amount < 1000 or unit == UNITS[-1]:
            if unit == "B":
                return f"{int(amount)} B"
            return f"{amount:.1f} {unit}" if amount < 10 else f"{amount:.0f} {unit}"
        amount /= 1000
    return f"{value} B"  # pragma: no cover - the loop always returns


def rate(bytes_per_second: int | float | None) -> str | None:
    """``15000000`` -> ``"15 MB/s"``."""
    text = size(bytes_per_second)
    return None if text is None else f"{text}/s"


def clock(seconds: int | float | None) -> str | None:
    """``90`` -> ``"00:01:30"``."""
    if seconds is None:
        return None
    hours, rest = divmod(max(0, round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def spoken(seconds: int | float | None) -> str | None:
    """An estimate in words, as the seed's ``estimated_duration`` (``"5 minutes"``)."""
    if seconds is None:
        return None
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{max(1, seconds)} second{'s' if seconds != 1 else ''}"
    if seconds < 3600:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours < 10 else f"{round(hours)} hours"


def percent(value: float | None, digits: int = 1) -> str | None:
    """``96.666`` -> ``"96.7%"``; whole numbers lose the decimal (``"14%"``)."""
    if value is None:
        return None
    rounded = round(float(value), digits)
    return f"{int(rounded)}%" if rounded == int(rounded) else f"{rounded}%"


def badge(status: str | None, text: str | None = None, **data: Any) -> str:
    """A coloured status badge for admin lists and pages (``console/console.css``)."""
    from django.utils.html import format_html, format_html_join

    status = status or "unknown"
    attrs = format_html_join("", ' data-{}="{}"', ((k.replace("_", "-"), v) for k, v in data.items()))
    return format_html('<span class="badge badge-{}"{}>{}</span>', status, attrs, text or status)
