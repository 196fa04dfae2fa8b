"""Redis (the broker) restarted while a worker runs a backup: the worker stays up, the
running backup completes, and the next backup is picked up and completes too."""

from __future__ import annotations

import pytest

from backups.models import Backup, Operation
from backups.services.backups import backup_start

from .conftest import needs_pg, send_task, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg, pytest.mark.slow]


def test_worker_survives_a_redis_restart_during_a_backup(
    tenant_a, pg_server_row, local_storage, big_pg_db, redis_server, start_worker, db_faults
):
    # Two processes, as `make run` starts: one runs the backup while the worker waits for more.
    worker = start_worker(redis_url=redis_server.url, concurrency=2)

    def backup() -> Operation:
        op = backup_start(
            tenant=tenant_a, server=pg_server_row, database_name=big_pg_db, storage=local_storage, queue=False
        )
        send_task(redis_server.url, "backups.tasks.run_backup", op.pk)
        return op

    first = backup()
    wait_for(lambda: db_faults.tool_connections(big_pg_db, "pg_dump"), what="pg_dump connected")
    with db_faults.stalled_backends(big_pg_db, "pg_dump"):  # the backup is surely still running
        wait_for(
            lambda: Operation.objects.filter(pk=first.pk, status="running", step="dumping_and_encrypting").exists(),
            what="the first backup dumping",
        )
        redis_server.restart()  # the broker goes away mid-backup and comes back empty

    done = wait_for(
        lambda: Backup.objects.filter(pk=first.backup_id, status__in=["completed", "failed"]).first(),
        timeout=120,
        what="the first backup ending",
    )
    assert done.status == "completed", done.error_message
    # The worker reconnects to the restarted broker instead of exiting.
    wait_for(
        lambda: worker.output(100000).count("Connected to") >= 2 or not worker.alive(),
        timeout=60,
        what="the worker reconnecting",
    )
    assert worker.alive(), worker.output()

    second = backup()
    done = wait_for(
        lambda: Backup.objects.filter(pk=second.backup_id, status__in=["completed", "failed"]).first(),
        timeout=120,
        what=f"the second backup ending; worker log:\n{worker.output()}",
    )
    assert done.status == "completed", done.error_message
    assert worker.alive(), worker.output()
