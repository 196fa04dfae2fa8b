"""Celery tasks of the backups domain: thin, take ids, call one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from backupplatform import heartbeats
from backups.services.backups import backup_run
from backups.services.commands import command_run
from backups.services.copies import sync_run
from backups.services.imports import import_run
from backups.services.operations import OperationHeartbeat, operation_reap
from backups.services.restores import restore_run
from backups.services.servers import server_check_all_health
from backups.services.snapshots import snapshot_restore_run
from backups.services.storages import storage_sweep_abandoned_uploads
from backups.services.verifications import verification_run
from backups.storage.errors import StorageUnavailable


@shared_task(name="backups.check_server_health", ignore_result=True, soft_time_limit=240, time_limit=300)
def check_server_health() -> dict[str, int]:
    """Beat (every 5 minutes): probe every server, publish ``server_health`` on a change."""
    return server_check_all_health()


# --- backups, restores, verifications (DESIGN.md "Work and progress") -------------------------
# acks_late (settings) + an idempotent claim in each service: a task redelivered after its
# worker died finds the operation no longer pending and does nothing; the reaper fails it.
# OperationHeartbeat keeps the operation's heartbeat fresh for as long as this process runs it.


# A storage that is down (StorageUnavailable, after the writer's own per-request retries) is
# retried as a whole backup, with exponential backoff and jitter, a bounded number of times:
# backup_run cleans up and puts the operation back to pending first. The last attempt fails
# the backup like any other error.
@shared_task(
    bind=True,
    name="backups.tasks.run_backup",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(StorageUnavailable,),
    retry_backoff=settings.BACKUP_TASK_RETRY_BACKOFF,
    retry_backoff_max=settings.BACKUP_TASK_RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=settings.BACKUP_TASK_MAX_RETRIES,
)
def run_backup(self, operation_id: int) -> None:

    last_attempt = self.request.called_directly or self.request.retries >= self.max_retries
    with OperationHeartbeat(operation_id):
        backup_run(operation_id=operation_id, retry_transient=not last_attempt)


@shared_task(name="backups.tasks.run_restore", ignore_result=True, acks_late=True)
def run_restore(operation_id: int) -> None:

    with OperationHeartbeat(operation_id):
        restore_run(operation_id=operation_id)


@shared_task(name="backups.tasks.run_verify", ignore_result=True, acks_late=True)
def run_verify(operation_id: int) -> None:

    with OperationHeartbeat(operation_id):
        verification_run(operation_id=operation_id)


@shared_task(name="backups.tasks.reap_operations", ignore_result=True, soft_time_limit=120, time_limit=180)
def reap_operations() -> list[str]:
    """Beat (every minute): fail operations whose worker died and delete their partial artifacts.

    Records its own run for ``/health/`` ("reaper"): it runs on a worker, so when no worker
    is healthy nothing reaps, and the health check says so.
    """

    reaped = operation_reap()
    heartbeats.mark_reaper_run()
    return reaped


@shared_task(name="backups.tasks.sweep_abandoned_uploads", ignore_result=True, soft_time_limit=600, time_limit=900)
def sweep_abandoned_uploads() -> int:
    """Beat (hourly): abort incomplete uploads older than ``STORAGE_ABANDONED_UPLOAD_AGE``."""

    return storage_sweep_abandoned_uploads()


# --- console: sync, import, snapshot restore (system-backup-recovery.rst) -----------------------


@shared_task(name="backups.tasks.run_sync", ignore_result=True, acks_late=True)
def run_sync(operation_id: int) -> None:

    sync_run(operation_id=operation_id)


@shared_task(name="backups.tasks.run_import", ignore_result=True, acks_late=True)
def run_import(operation_id: int) -> None:

    import_run(operation_id=operation_id)


@shared_task(name="backups.tasks.run_snapshot_restore", ignore_result=True, acks_late=True)
def run_snapshot_restore(operation_id: int) -> None:

    snapshot_restore_run(operation_id=operation_id)


@shared_task(
    name="backups.tasks.run_command",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=settings.COMMAND_MAX_TIMEOUT + 60,
    time_limit=settings.COMMAND_MAX_TIMEOUT + 120,
)
def run_command(execution_id: int) -> None:
    """Run a remote command execution (db-backup-platform.md "Execute Command")."""

    command_run(execution_id=execution_id)
