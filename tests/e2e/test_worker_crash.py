"""A real Celery worker: killed mid-backup, the reaper fails the operation and removes the
partial artifact, and the next run works. Cancelling mid-way leaves nothing behind."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.utils import timezone

from backups.models import Backup, Operation
from backups.services.operations import operation_cancel, operation_reap
from tests.support.workers import wait_for

from .conftest import PG, needs_pg

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def big_source_db(pg_source_db):
    with psycopg.connect(dbname=pg_source_db, **PG) as conn:
        conn.execute(
            "CREATE TABLE noise AS SELECT n, md5(random()::text) || md5(random()::text) AS v "
            "FROM generate_series(1, 1500000) n"
        )
    return pg_source_db


def files_in(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def test_killed_worker_is_reaped_and_next_run_works(
    api, operator_a, pg_server_row, local_storage, big_source_db, start_worker
):
    worker = start_worker()
    body = {"server_id": pg_server_row.pk, "database_name": big_source_db}
    backup_id = api(operator_a).post("/api/v1/backups", body, format="json").json()["id"]
    op = wait_for(
        lambda: Operation.objects.filter(backup_id=backup_id, step="dumping_and_encrypting", status="running").first()
    )
    store = Path(local_storage.configuration["path"])
    wait_for(lambda: files_in(store))  # the partial artifact is being written
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    op.refresh_from_db()
    assert op.status == "running"  # nobody knows yet
    assert files_in(store), "a partial artifact was left by the dead worker"

    reaped = operation_reap(now=timezone.now() + timedelta(seconds=121))
    assert op.public_id in reaped
    op.refresh_from_db()
    backup = Backup.objects.get(pk=backup_id)
    assert op.status == "failed" and backup.status == "failed"
    assert "stopped responding" in backup.error_message
    assert files_in(store) == []

    start_worker()
    second = api(operator_a).post("/api/v1/backups", body, format="json").json()["id"]
    done = wait_for(lambda: Backup.objects.filter(pk=second, status__in=["completed", "failed"]).first(), timeout=120)
    assert done.status == "completed", done.error_message
    assert [p.name for p in files_in(store)] == [Path(done.storage_path).name]


def test_cancel_mid_way_with_a_real_worker_leaves_nothing(
    api, operator_a, pg_server_row, local_storage, big_source_db, start_worker
):
    start_worker()
    body = {"server_id": pg_server_row.pk, "database_name": big_source_db}
    backup_id = api(operator_a).post("/api/v1/backups", body, format="json").json()["id"]
    op = wait_for(
        lambda: Operation.objects.filter(backup_id=backup_id, status="running", step="dumping_and_encrypting").first()
    )
    operation_cancel(tenant=op.tenant, public_id=op.public_id, reason="test")
    backup = wait_for(
        lambda: Backup.objects.filter(pk=backup_id, status__in=["cancelled", "completed", "failed"]).first(), timeout=60
    )
    assert backup.status == "cancelled"
    assert files_in(Path(local_storage.configuration["path"])) == []
    op.refresh_from_db()
    assert op.status == "cancelled"
