"""Celery tasks of the backups domain: thin, take ids, call one service."""

from __future__ import annotations

from celery import shared_task

from backups.services.servers import server_check_all_health


@shared_task(name="backups.check_server_health", ignore_result=True, soft_time_limit=240, time_limit=300)
def check_server_health() -> dict[str, int]:
    """Beat (every 5 minutes): probe every server, publish ``server_health`` on a change."""
    return server_check_all_health()


# --- backups, restores, verifications (DESIGN.md "Work and progress") -------------------------
# acks_late (settings) + an idempotent claim in each service: a task redelivered after its
# worker died finds the operation no longer pending and does nothing; the reaper fails it.


@shared_task(name="backups.tasks.run_backup", ignore_result=True, acks_late=True)
def run_backup(operation_id: int) -> None:
    from backups.services.backups import backup_run

    backup_run(operation_id=operation_id)


@shared_task(name="backups.tasks.run_restore", ignore_result=True, acks_late=True)
def run_restore(operation_id: int) -> None:
    from backups.services.restores import restore_run

    restore_run(operation_id=operation_id)


@shared_task(name="backups.tasks.run_verify", ignore_result=True, acks_late=True)
def run_verify(operation_id: int) -> None:
    from backups.services.verifications import verification_run

    verification_run(operation_id=operation_id)


@shared_task(name="backups.tasks.reap_operations", ignore_result=True, soft_time_limit=120, time_limit=180)
def reap_operations() -> list[str]:
    """Beat: fail operations whose worker died and delete their partial artifacts."""
    from backups.services.operations import operation_reap

    return operation_reap()
