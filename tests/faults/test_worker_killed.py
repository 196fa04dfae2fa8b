"""A worker SIGKILLed during a backup: its ``pg_dump`` dies with it, the reaper fails the
backup with the right reason and removes the partial file, and a scheduled run is retried
once by its job (a manual run is not, nor is a retry)."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from django.utils import timezone

from backups.models import Backup, Operation
from backups.services.backups import backup_start
from backups.services.operations import REAPED_MESSAGE, operation_claim, operation_reap
from schedules import services

from .conftest import files_in, needs_pg, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg]


def _dumps_of(pid: int, database: str) -> list[psutil.Process]:
    """The worker's ``pg_dump`` processes dumping ``database`` (not its ``pg_dump --version``)."""
    found = []
    for proc in psutil.Process(pid).children(recursive=True):
        try:
            if proc.name() == "pg_dump" and database in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_killed_worker_takes_its_pg_dump_along_and_the_scheduled_run_is_retried(
    tenant_a, pg_server_row, local_storage, big_pg_db, start_worker, db_faults
):
    job = services.job_create(
        tenant=tenant_a,
        name="nightly",
        server=pg_server_row,
        database_name=big_pg_db,
        storage=local_storage,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )
    worker = start_worker()
    op = services.job_run_scheduled(job_id=job.pk)  # what beat's run_job does
    assert op is not None
    wait_for(lambda: db_faults.tool_connections(big_pg_db, "pg_dump"), what="pg_dump connected to the source")
    dumps = wait_for(lambda: _dumps_of(worker.pid, big_pg_db), what="pg_dump among the worker's processes")

    # The source database stalls mid-dump (its backend stopped), so pg_dump sits waiting for
    # data instead of writing: nothing but its worker's death can end it now.
    with db_faults.stalled_backends(big_pg_db, "pg_dump"):
        wait_for(
            lambda: Operation.objects.filter(pk=op.pk, status="running", step="dumping_and_encrypting").exists(),
            what="the dump running",
        )
        store = Path(local_storage.configuration["path"])
        wait_for(lambda: files_in(store), what="a partial artifact")
        os.kill(worker.pid, signal.SIGKILL)
        worker.proc.wait(10)
        # The dump dies with its worker.
        wait_for(lambda: all(_gone(p) for p in dumps), timeout=10, what="pg_dump gone")
    # ... and so does its session on the source database once that resumes.
    wait_for(
        lambda: db_faults.tool_connections(big_pg_db, "pg_dump") == 0,
        timeout=10,
        what="pg_dump's connection to the source database gone",
    )
    op.refresh_from_db()
    assert op.status == "running"  # nobody knows yet
    assert files_in(store), "the dead worker left a partial artifact"

    reaped = operation_reap(now=timezone.now() + timedelta(seconds=61))
    assert op.public_id in reaped
    lost = Backup.objects.get(pk=op.backup_id)
    assert lost.status == "failed" and lost.error_message == REAPED_MESSAGE
    op.refresh_from_db()
    assert op.status == "failed" and "stopped responding" in op.error_message
    assert files_in(store) == []

    # The job runs once more, marked as the retry of the lost backup.
    retry = Backup.objects.filter(job=job).exclude(pk=lost.pk).get()
    assert retry.trigger == "scheduled"
    assert Operation.objects.get(backup=retry).details["options"]["retry_of"] == lost.pk
    start_worker()
    done = wait_for(
        lambda: Backup.objects.filter(pk=retry.pk, status__in=["completed", "failed"]).first(),
        timeout=120,
        what="the retry ending",
    )
    assert done.status == "completed", done.error_message
    assert [p.name for p in files_in(store)] == [Path(done.storage_path).name]


def _running_backup(tenant, job, server, storage, *, trigger: str, options: dict | None = None) -> Operation:
    op = backup_start(
        tenant=tenant,
        server=server,
        database_name="gone",
        storage=storage,
        job=job,
        trigger=trigger,
        options=options,
        queue=False,
    )
    assert operation_claim(operation_id=op.pk) is not None
    return op


def test_a_lost_scheduled_run_is_retried_once_and_a_manual_one_not(tenant_a, pg_server_row, local_storage):
    scheduled_job, manual_job = (
        services.job_create(
            tenant=tenant_a,
            name=name,
            server=pg_server_row,
            database_name="gone",
            storage=local_storage,
            schedule_type="custom",
            cron_expression="0 3 * * *",
        )
        for name in ("nightly", "adhoc")
    )
    lost = _running_backup(tenant_a, scheduled_job, pg_server_row, local_storage, trigger="scheduled")
    manual = _running_backup(tenant_a, manual_job, pg_server_row, local_storage, trigger="manual")
    reaped = operation_reap(now=timezone.now() + timedelta(seconds=61))
    assert set(reaped) == {lost.public_id, manual.public_id}

    retry = Backup.objects.filter(job=scheduled_job).exclude(pk=lost.backup_id).get()
    retry_op = Operation.objects.get(backup=retry)
    assert retry.trigger == "scheduled"
    assert retry_op.status == "pending" and retry_op.details["options"]["retry_of"] == lost.backup_id
    assert list(Backup.objects.filter(job=manual_job).values_list("status", flat=True)) == ["failed"]

    # The retry is lost as well: it is not retried again.
    assert operation_claim(operation_id=retry_op.pk) is not None
    assert operation_reap(now=timezone.now() + timedelta(seconds=61)) == [retry_op.public_id]
    assert Backup.objects.filter(job=scheduled_job).count() == 2
