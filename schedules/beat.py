"""django-celery-beat synchronisation: each enabled ``BackupJob`` is one ``PeriodicTask``.

Beat (``DatabaseScheduler``) is the only scheduler: the services below are called inside
the job's own transaction, so the job row and its ``PeriodicTask`` always agree. Saving a
``PeriodicTask`` (not a queryset ``update``) bumps ``PeriodicTasks.changed`` through
django-celery-beat's signals, which is how a running beat notices the change.

Priority: a job's ``priority`` is 1 (lowest) .. 10 (highest) as in api-layer.md; Celery on
Redis treats 0 as the highest priority and 9 as the lowest, so ``celery = 10 - priority``
(10 -> 0, 5 -> 5, 1 -> 9). The same number is used when a run is sent by hand.
"""

from __future__ import annotations

import json
import logging

from django_celery_beat.models import CrontabSchedule, PeriodicTask

from .models import BackupJob
from .timing import cron_to_celery_fields

logger = logging.getLogger(__name__)

RUN_JOB_TASK = "schedules.tasks.run_job"


def celery_priority(priority: int) -> int:
    """api-layer.md priority 1..10 (10 = most urgent) -> Celery/Redis priority 9..0."""
    return max(0, min(9, 10 - int(priority)))


def periodic_task_name(job: BackupJob) -> str:
    return f"backup-job-{job.pk}"


def _crontab(expr: str, tz: str) -> CrontabSchedule:
    fields = cron_to_celery_fields(expr)
    schedule = CrontabSchedule.objects.filter(timezone=tz, **fields).order_by("id").first()
    if schedule is None:
        schedule = CrontabSchedule.objects.create(timezone=tz, **fields)
    return schedule


def job_sync_periodic_task(*, job: BackupJob) -> PeriodicTask:
    """Create or update the job's ``PeriodicTask`` (enabled exactly when the job is)."""
    task = PeriodicTask.objects.filter(pk=job.periodic_task_id).first() if job.periodic_task_id else None
    if task is None:
        task = PeriodicTask.objects.filter(name=periodic_task_name(job)).first() or PeriodicTask(
            name=periodic_task_name(job))
    task.task = RUN_JOB_TASK
    task.crontab = _crontab(job.cron_expression, job.timezone)
    task.interval = task.solar = task.clocked = None
    task.args = json.dumps([job.pk])
    task.kwargs = "{}"
    task.enabled = bool(job.enabled)
    task.priority = celery_priority(job.priority)
    task.description = f"Backup job {job.public_id} ({job.name}) of tenant {job.tenant_id}"
    task.save()
    if job.periodic_task_id != task.pk:
        BackupJob.objects.filter(pk=job.pk).update(periodic_task=task)
        job.periodic_task = task
    return task


def job_remove_periodic_task(*, job: BackupJob) -> None:
    """Delete the job's ``PeriodicTask`` (its crontab row may be shared and stays)."""
    for task in PeriodicTask.objects.filter(name=periodic_task_name(job)):
        task.delete()  # model delete: the signal bumps PeriodicTasks.changed
    if job.periodic_task_id:
        PeriodicTask.objects.filter(pk=job.periodic_task_id).delete()
