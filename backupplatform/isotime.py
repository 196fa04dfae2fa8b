"""Times as the APIs, events and reports write them: ISO 8601 in UTC with a ``Z``.

Seconds by default (``2024-01-15T14:30:00Z``, as the documents' examples); ``micro=True``
keeps microseconds where ordering within a second matters (events, notifications).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone


def utc_iso(value: datetime | None, *, micro: bool = False) -> str | None:
    """``value`` in UTC with a ``Z``; ``None`` stays ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds" if micro else "seconds").replace("+00:00", "Z")


def utc_now_iso(*, micro: bool = False) -> str:
    return utc_iso(timezone.now(), micro=micro)
