"""Backups through a storage that fails: the whole backup is retried by the Celery task (a real
worker), a storage that stays down fails the backup cleanly, and the sweep removes the
multipart upload whose abort could not get through."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from audit.models import AuditEvent
from backups.models import Backup, Operation, Storage
from backups.services.storages import storage_sweep_abandoned_uploads
from tests.e2e.conftest import PG, needs_pg
from tests.e2e.test_postgres_roundtrip import backup_through_api
from tests.fixtures.services import FaultProxy, S3Bucket
from tests.support.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg]
MiB = 1024 * 1024


def s3_storage(tenant: Any, bucket: S3Bucket) -> Storage:
    return Storage.objects.create(
        tenant=tenant, name="s3", type="s3", configuration=bucket.configuration, credentials=bucket.credentials
    )


def uploads_and_objects(bucket: S3Bucket) -> tuple[list[str], list[str]]:
    client = bucket.client()
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])]
    objects = [o["Key"] for o in client.list_objects_v2(Bucket=bucket.name).get("Contents", [])]
    return uploads, objects


@pytest.fixture
def noisy_source_db(pg_source_db: str) -> str:
    """About 20 MB of random bytes that compression cannot shrink: several 8 MiB parts."""
    with psycopg.connect(dbname=pg_source_db, **PG) as conn:
        conn.execute(
            "CREATE TABLE noise AS SELECT n, decode(md5(random()::text) || md5(random()::text), 'hex') "
            "AS v FROM generate_series(1, 600000) n"
        )
    return pg_source_db


def test_storage_down_mid_upload_fails_the_backup_and_the_sweep_aborts_the_upload_later(
    api: Any,
    operator_a: Any,
    tenant_a: Any,
    pg_server_row: Any,
    noisy_source_db: str,
    settings: Any,
    s3_bucket: S3Bucket,
    s3_proxy: FaultProxy,
    s3_proxied_bucket: S3Bucket,
) -> None:
    settings.STORAGE_RETRY_ATTEMPTS, settings.STORAGE_RETRY_INITIAL = 3, 0.01
    settings.STORAGE_RETRY_MAX, settings.STORAGE_RETRY_DEADLINE = 0.05, 5
    storage = s3_storage(tenant_a, s3_proxied_bucket)
    s3_proxy.go_down_after(12 * MiB)  # one part through, the second cut off, then refused
    backup = backup_through_api(api, operator_a, pg_server_row, noisy_source_db, storage=storage)

    assert backup.status == "failed"
    assert "Could not connect" in backup.error_message or "unavailable" in backup.error_message
    assert Operation.objects.get(backup=backup).status == "failed"
    assert AuditEvent.objects.filter(action="backup_failed", resource_id=str(backup.pk)).exists()
    # The abort could not get through either: the upload (and its stored part) is still there.
    assert uploads_and_objects(s3_bucket) == ([backup.storage_path], [])

    s3_proxy.up()
    assert storage_sweep_abandoned_uploads(older_than=timedelta(0)) == 1
    assert uploads_and_objects(s3_bucket) == ([], [])
    assert AuditEvent.objects.filter(action="storage_sweep", resource_id=str(storage.pk)).exists()


# -- the Celery task, in a real worker ----------------------------------------------------


# Storage retries that give up within seconds, and task retries a second apart.
RETRY_ENV = {
    "STORAGE_RETRY_ATTEMPTS": "2",
    "STORAGE_RETRY_INITIAL": "0.05",
    "STORAGE_RETRY_MAX": "0.1",
    "STORAGE_RETRY_DEADLINE": "3",
    "BACKUP_TASK_RETRY_BACKOFF": "1",
    "BACKUP_TASK_RETRY_BACKOFF_MAX": "2",
}


def start_backup(api: Any, user: Any, server: Any, database: str, storage: Storage) -> int:
    body = {"server_id": server.pk, "database_name": database, "storage_id": storage.pk}
    response = api(user).post("/api/v1/backups", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_the_backup_task_retries_until_the_storage_is_back(
    api: Any,
    operator_a: Any,
    tenant_a: Any,
    pg_server_row: Any,
    pg_source_db: str,
    start_worker: Any,
    s3_bucket: S3Bucket,
    s3_proxy: FaultProxy,
    s3_proxied_bucket: S3Bucket,
) -> None:
    start_worker(**RETRY_ENV, BACKUP_TASK_MAX_RETRIES="10")
    storage = s3_storage(tenant_a, s3_proxied_bucket)
    s3_proxy.set_mode("refuse")
    backup_id = start_backup(api, operator_a, pg_server_row, pg_source_db, storage)
    op = wait_for(
        lambda: Operation.objects.filter(backup_id=backup_id, status="pending", step="waiting_for_storage").first()
    )
    assert "Could not connect" in op.details["last_error"]

    s3_proxy.up()
    op = wait_for(lambda: Operation.objects.filter(backup_id=backup_id, status__in=["completed", "failed"]).first(), 90)
    backup = Backup.objects.get(pk=backup_id)
    assert op.status == "completed" and backup.status == "completed", backup.error_message
    stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=backup.storage_path)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == backup.checksum
    assert AuditEvent.objects.filter(action="backup_retry", resource_id=str(backup_id)).exists()


def test_a_storage_down_for_the_whole_retry_window_fails_the_backup_cleanly(
    api: Any,
    operator_a: Any,
    tenant_a: Any,
    pg_server_row: Any,
    pg_source_db: str,
    start_worker: Any,
    s3_bucket: S3Bucket,
    s3_proxy: FaultProxy,
    s3_proxied_bucket: S3Bucket,
) -> None:
    start_worker(**RETRY_ENV, BACKUP_TASK_MAX_RETRIES="2")
    storage = s3_storage(tenant_a, s3_proxied_bucket)
    s3_proxy.set_mode("refuse")
    backup_id = start_backup(api, operator_a, pg_server_row, pg_source_db, storage)
    op = wait_for(lambda: Operation.objects.filter(backup_id=backup_id, status__in=["completed", "failed"]).first(), 90)
    assert op.status == "failed"
    wait_for(lambda: AuditEvent.objects.filter(action="backup_failed", resource_id=str(backup_id)).exists(), 90)
    backup = Backup.objects.get(pk=backup_id)
    assert backup.status == "failed" and op.error_message == backup.error_message
    assert "Could not connect" in backup.error_message and "gave up after 3 attempts" in backup.error_message
    assert AuditEvent.objects.filter(action="backup_retry", resource_id=str(backup_id)).count() == 2
    s3_proxy.up()
    assert uploads_and_objects(s3_bucket) == ([], [])
