"""Beat starts due jobs from one indexed column, whatever the number of jobs.

django-celery-beat stays the clock (its ``DatabaseScheduler`` runs the platform's own
periodic tasks), but backup jobs are not beat entries: with one ``PeriodicTask`` per job,
beat reloads every entry on each change and its due check walks all of them, which grows
with the number of jobs. Instead each job keeps ``next_run_at`` (its next run time in UTC,
computed in the job's timezone by ``schedules.timing``; ``NULL`` when disabled), written in
the job's own transaction by the services, and the beat scheduler below, on every tick
(at least once a second), dispatches what is due:

1. ``SELECT ... WHERE enabled AND next_run_at <= now ORDER BY next_run_at LIMIT n
   FOR UPDATE SKIP LOCKED``: one index range scan, however many jobs exist;
2. each job's ``next_run_at`` moves to its next run after now (runs missed while the
   platform was down collapse into one), in the same transaction;
3. after commit, ``schedules.tasks.run_job(job_id, scheduled_for=due)`` is sent with the
   job's priority.

Two beats, or a beat restarted around a due time, cannot both take a job's due time (the
row lock and the update), and ``run_job`` claims ``(job, due time)`` once more
(``ScheduledRun``), so a message delivered twice starts one backup.

Priority: a job's ``priority`` is 1 (lowest) .. 10 (highest) as in api-layer.md; Celery on
Redis treats 0 as the highest priority and 9 as the lowest, so ``celery = 10 - priority``
(10 -> 0, 5 -> 5, 1 -> 9). The same number is used when a run is sent by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from backupplatform import heartbeats
from backupplatform.celery import app

from .models import BackupJob
from .timing import cron_next_runs

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "schedules.tasks.run_job"
DISPATCH_BATCH = 500


def celery_priority(priority: int) -> int:
    """api-layer.md priority 1..10 (10 = most urgent) -> Celery/Redis priority 9..0."""
    return max(0, min(9, 10 - int(priority)))


def next_run_after(job: BackupJob, after: datetime) -> datetime | None:
    """The job's first run time strictly after ``after`` (``None``: disabled or no schedule)."""
    if not job.enabled or not job.cron_expression:
        return None
    runs = cron_next_runs(job.cron_expression, job.timezone or "UTC", after, 1)
    return runs[0] if runs else None


def job_schedule(*, job: BackupJob, now: datetime | None = None) -> datetime | None:
    """Set the job's ``next_run_at`` from its schedule (the services call this whenever a job
    is created, changed, enabled or disabled, in the same transaction)."""
    now = now or timezone.now()
    next_run = next_run_after(job, now)
    # The job's drills follow its changes too (none while it is disabled).
    next_drill = next_drill_after(job, now)
    BackupJob.objects.filter(pk=job.pk).update(next_run_at=next_run, drill_next_run_at=next_drill)
    job.next_run_at, job.drill_next_run_at = next_run, next_drill
    return next_run


def _send(job_id: int, due: datetime, priority: int) -> None:

    app.send_task(RUN_JOB_TASK, args=[job_id], kwargs={"scheduled_for": due.isoformat()}, priority=priority)


def dispatch_due_jobs(
    *, now: datetime | None = None, limit: int = DISPATCH_BATCH, send: Callable[[int, datetime, int], None] = _send
) -> list[tuple[int, datetime]]:
    """Take the jobs due at ``now``, move each one's ``next_run_at`` on, and send their runs
    after commit. Returns ``[(job_id, due time)]``. Safe to run from several processes."""
    now = now or timezone.now()
    taken: list[tuple[int, datetime, int]] = []
    with transaction.atomic():
        due_jobs = BackupJob.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            due_jobs = due_jobs.select_for_update(skip_locked=True)
        for job in due_jobs.only("pk", "cron_expression", "timezone", "enabled", "next_run_at", "priority")[:limit]:
            due = job.next_run_at
            # Conditional: where rows cannot be locked (SQLite), a second dispatcher that read
            # the same due time changes nothing and sends nothing.
            if BackupJob.objects.filter(pk=job.pk, next_run_at=due).update(next_run_at=next_run_after(job, now)):
                taken.append((job.pk, due, celery_priority(job.priority)))

        def send_all() -> None:
            for job_id, due, priority in taken:
                try:
                    send(job_id, due, priority)
                except Exception:  # the broker is down: the run is lost, say so (health shows it)
                    logger.exception("could not send the run of job %s due at %s", job_id, due.isoformat())

        transaction.on_commit(send_all)
    if taken:
        logger.info("dispatched %d due job(s)", len(taken))
    return [(job_id, due) for job_id, due, _ in taken]


# --- restore drills ----------------------------------------------------------------------------

RUN_DRILL_TASK = "schedules.tasks.run_scheduled_drill"


def next_drill_after(job: BackupJob, after: datetime) -> datetime | None:
    """The job's next drill time strictly after ``after`` (``None``: no drill schedule, or
    the job is disabled: a stopped job's backups are not drilled on a schedule)."""
    if not job.enabled or not job.drill_cron_expression:
        return None
    runs = cron_next_runs(job.drill_cron_expression, job.timezone or "UTC", after, 1)
    return runs[0] if runs else None


def drill_schedule(*, job: BackupJob, now: datetime | None = None) -> datetime | None:
    """Set the job's ``drill_next_run_at`` from its drill schedule (same transaction as the change)."""
    next_run = next_drill_after(job, now or timezone.now())
    BackupJob.objects.filter(pk=job.pk).update(drill_next_run_at=next_run)
    job.drill_next_run_at = next_run
    return next_run


def _send_drill(job_id: int, due: datetime, priority: int) -> None:

    app.send_task(RUN_DRILL_TASK, args=[job_id], kwargs={"scheduled_for": due.isoformat()}, priority=priority)


def dispatch_due_drills(
    *,
    now: datetime | None = None,
    limit: int = DISPATCH_BATCH,
    send: Callable[[int, datetime, int], None] = _send_drill,
) -> list[tuple[int, datetime]]:
    """As :func:`dispatch_due_jobs`, for drills: take the jobs whose ``drill_next_run_at`` has
    passed (``FOR UPDATE SKIP LOCKED``), move it on, send ``run_scheduled_drill`` after commit.
    The drill's own row is unique per job and due time, so a message sent twice drills once."""
    now = now or timezone.now()
    taken: list[tuple[int, datetime, int]] = []
    with transaction.atomic():
        due_jobs = BackupJob.objects.filter(enabled=True, drill_next_run_at__lte=now).order_by(
            "drill_next_run_at", "pk"
        )
        if connection.features.has_select_for_update_skip_locked:
            due_jobs = due_jobs.select_for_update(skip_locked=True)
        for job in due_jobs.only("pk", "drill_cron_expression", "timezone", "enabled", "drill_next_run_at", "priority")[
            :limit
        ]:
            due = job.drill_next_run_at
            if BackupJob.objects.filter(pk=job.pk, drill_next_run_at=due).update(
                drill_next_run_at=next_drill_after(job, now)
            ):
                taken.append((job.pk, due, celery_priority(job.priority)))

        def send_all() -> None:
            for job_id, due, priority in taken:
                try:
                    send(job_id, due, priority)
                except Exception:  # the broker is down: the drill is lost, say so
                    logger.exception("could not send the drill of job %s due at %s", job_id, due.isoformat())

        transaction.on_commit(send_all)
    if taken:
        logger.info("dispatched %d due drill(s)", len(taken))
    return [(job_id, due) for job_id, due, _ in taken]


class Scheduler(DatabaseScheduler):
    """django-celery-beat's scheduler that also dispatches due backup jobs and due restore
    drills on every tick and records its ticks for ``/health/`` (beat down means nothing is
    dispatched). Selected by ``CELERY_BEAT_SCHEDULER``; ``CELERY_BEAT_MAX_LOOP_INTERVAL`` (1 s) bounds the lateness."""

    _last_mark = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        try:
            dispatch_due_jobs()
        except Exception:  # the database is away: the next tick tries again
            logger.exception("dispatching due jobs failed")
        try:
            dispatch_due_drills()
        except Exception:
            logger.exception("dispatching due drills failed")
        now = time.monotonic()
        if now - self._last_mark >= heartbeats.heartbeat_interval():
            self._last_mark = now
            heartbeats.mark_beat()
        return min(interval, 1.0)
