"""The Celery application shared by the worker, beat and the web processes.

Workers write a heartbeat for ``/health/`` (:class:`HealthHeartbeat`); beat records its
ticks through ``schedules.beat.Scheduler`` (``CELERY_BEAT_SCHEDULER``). How the worker
survives a broker restart: ``backupplatform.broker`` and the ``CELERY_BROKER_*`` settings.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, bootsteps

from backupplatform import heartbeats

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")

app = Celery("backupplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class HealthHeartbeat(bootsteps.StartStopStep):
    """Every ``HEALTH_HEARTBEAT_INTERVAL`` seconds, record that this worker is alive.

    The beats come from the worker's timer, which its event loop drives: a worker that is
    wedged (or reconnecting to the broker forever) stops beating as well. With the ``solo``
    pool a running task blocks that loop, so use the default ``prefork`` pool in production.
    """

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker: Any) -> None:

        info = {"concurrency": getattr(worker, "concurrency", None)}
        heartbeats.mark_worker(worker.hostname, **info)
        self.tref = worker.timer.call_repeatedly(
            heartbeats.heartbeat_interval(), heartbeats.mark_worker, (worker.hostname,), info, priority=10
        )

    def stop(self, worker: Any) -> None:

        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        heartbeats.forget_worker(worker.hostname)


app.steps["worker"].add(HealthHeartbeat)
