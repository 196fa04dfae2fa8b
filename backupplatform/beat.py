"""The beat scheduler: django-celery-beat's ``DatabaseScheduler`` that records its ticks.

``/health/`` reports beat as down when no tick was recorded for ``HEALTH_BEAT_STALE_AFTER``
seconds: beat died, or hangs (e.g. on its database). Selected by ``CELERY_BEAT_SCHEDULER``.
"""

from __future__ import annotations

import time
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

from backupplatform import heartbeats


class Scheduler(DatabaseScheduler):
    _last_mark = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._last_mark >= heartbeats.heartbeat_interval():
            self._last_mark = now
            heartbeats.mark_beat()
        return interval
