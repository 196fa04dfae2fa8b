"""The platform's own PostgreSQL connection killed (``pg_terminate_backend``) during work.

A failed progress write does not abort a healthy dump; a failure is recorded on a fresh
connection (retried while the database briefly refuses connections) instead of leaving the
backup ``running`` until the reaper blames the worker.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from backups.models import Backup, Operation
from backups.services.backups import backup_start
from backups.services.operations import operation_claim, operation_finish

from .conftest import needs_pg, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg]

ENDED = ["completed", "failed", "cancelled"]


def _dumping(op: Operation) -> None:
    wait_for(
        lambda: Operation.objects.filter(pk=op.pk, status="running", step="dumping_and_encrypting").exists(),
        what="the dump running",
    )


@pytest.mark.slow
def test_a_killed_connection_during_progress_does_not_abort_the_dump(
    tenant_a, pg_server_row, local_storage, big_pg_db, start_worker, db_faults
):
    worker = start_worker()
    op = backup_start(tenant=tenant_a, server=pg_server_row, database_name=big_pg_db, storage=local_storage)
    wait_for(lambda: db_faults.tool_connections(big_pg_db, "pg_dump"), what="pg_dump connected")
    # Hold the dump (its server process paused) while the worker's connection is killed, so
    # the kill lands mid-dump however fast the machine is; the pipeline keeps polling the
    # operation (cancel check, heartbeat) meanwhile and meets the dead connection.
    with db_faults.stalled_backends(big_pg_db, "pg_dump"):
        _dumping(op)
        assert db_faults.terminate_others() >= 1  # the worker's connection(s) to the platform database
        time.sleep(1.5)
    backup = wait_for(
        lambda: Backup.objects.filter(pk=op.backup_id, status__in=ENDED).first(), timeout=120, what="the backup ending"
    )
    assert backup.status == "completed", backup.error_message + worker.output()
    assert backup.checksum and backup.stored_bytes > 0
    op.refresh_from_db()
    assert op.status == "completed" and op.progress == 100


@pytest.mark.slow
def test_a_failure_is_recorded_on_a_fresh_connection(
    tenant_a, pg_server_row, local_storage, big_pg_db, start_worker, db_faults
):
    worker = start_worker()
    op = backup_start(tenant=tenant_a, server=pg_server_row, database_name=big_pg_db, storage=local_storage)
    wait_for(lambda: db_faults.tool_connections(big_pg_db, "pg_dump"), what="pg_dump connected")
    # The platform database goes away for a moment (connections killed, new ones refused)
    # and, meanwhile, the dump itself fails.
    try:
        with db_faults.stalled_backends(big_pg_db, "pg_dump"):
            _dumping(op)
            db_faults.allow_connections(False)
            assert db_faults.terminate_others() >= 1
            assert db_faults.terminate_tool(big_pg_db, "pg_dump") == 1  # takes effect when it resumes
        time.sleep(1.5)  # pg_dump fails now; the worker records that while new connections are refused
    finally:
        db_faults.allow_connections(True)
    backup = wait_for(
        lambda: Backup.objects.filter(pk=op.backup_id, status__in=ENDED).first(),
        timeout=60,
        what="the failure being recorded",
    )
    assert backup.status == "failed", worker.output()
    assert "pg_dump failed" in backup.error_message and "stopped responding" not in backup.error_message
    op.refresh_from_db()
    assert op.status == "failed" and op.error_message == backup.error_message


def test_operation_outcome_survives_a_killed_connection(tenant_a, pg_server_row, local_storage, db_faults):
    op = backup_start(tenant=tenant_a, server=pg_server_row, database_name="db", storage=local_storage, queue=False)
    op = operation_claim(operation_id=op.pk)
    connection.ensure_connection()
    db_faults.terminate(connection.connection.info.backend_pid)

    operation_finish(op=op, status="failed", error="pg_dump failed (exit code 1)", step="failed")

    op.refresh_from_db()
    assert op.status == "failed" and op.error_message == "pg_dump failed (exit code 1)"
