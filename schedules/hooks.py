"""Schedules listen to what the backups domain announces (``backups.signals``), connected in
``SchedulesConfig.ready``: backups never import schedules."""

from __future__ import annotations

from typing import Any

from schedules import services


def on_backup_completed(sender: Any, *, backup: Any, **kwargs: Any) -> None:
    """A job's backup completed: record the run; ``auto_purge`` cleans up."""
    if backup.job_id:
        services.job_after_backup(backup=backup)


def on_backup_reaped(sender: Any, *, backup: Any, **kwargs: Any) -> None:
    """A job's scheduled backup was lost with its worker: run it once more
    (``services.job_retry_lost_run``; manual runs and retries are not repeated)."""
    if backup.job_id:
        services.job_retry_lost_run(backup=backup)
