"""Seeded rows for the console's tests: what an operator would find one morning.

Tenant alpha: a PostgreSQL server with a daily job on ``orders`` (backed up two hours ago:
up to date), an application ``shop`` with an hourly job whose last good backup is three days
old (stale), an application ``wiki`` with no job (unprotected), a failed backup with its
error, a passed verification. Tenant bravo: its own server, application and failed backup,
which alpha's staff must never see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from backups import services as backup_services
from backups.models import Backup, Operation, Restore, Server, Verification
from schedules import services as schedule_services

ALPHA_ERROR = 'pg_dump: error: connection to server failed: FATAL: database "ledger" does not exist'
BRAVO_ERROR = "bravo-only failure: disk quota exceeded on bravo-store"


@dataclass
class Seeded:
    pg: Server
    ok_backup: Backup
    failed_backup: Backup
    bravo_backup: Backup
    stale_app: object
    operation: Operation


def _backup(tenant, *, when, status="completed", **fields) -> Backup:
    backup = Backup.objects.create(
        tenant=tenant,
        status=status,
        stored_bytes=fields.pop("stored_bytes", 3_400_000),
        size_bytes=9_100_000,
        checksum="sha256:" + "ab" * 32,
        **fields,
    )
    Backup.objects.filter(pk=backup.pk).update(
        created_at=when, started_at=when, completed_at=when + timedelta(seconds=42)
    )
    backup.refresh_from_db()
    return backup


def seed(tenant_a, tenant_b, pg_host: str = "127.0.0.1", pg_port: int = 5432) -> Seeded:
    now = timezone.now()
    root_a, root_b = tenant_a.path_roots[0], tenant_b.path_roots[0]
    store = backup_services.storage_create(
        tenant=tenant_a, name="alpha-disk", type="local", is_default=True, configuration={"path": f"{root_a}/store"}
    )
    pg = backup_services.server_create(
        tenant=tenant_a,
        name="alpha-pg",
        type="postgresql",
        host=pg_host,
        port=pg_port,
        credentials={"username": "postgres"},
    )
    shop = backup_services.application_create(
        tenant=tenant_a,
        name="shop",
        sources=[
            {"name": "uploads", "type": "path", "path": f"{root_a}/uploads", "include": ["*.jpg"], "exclude": ["tmp/*"]}
        ],
    )
    backup_services.application_create(
        tenant=tenant_a, name="wiki", sources=[{"name": "pages", "type": "path", "path": f"{root_a}/wiki"}]
    )
    schedule_services.job_create(
        tenant=tenant_a,
        name="shop-hourly",
        application=shop,
        storage=store,
        schedule_type="custom",
        cron_expression="0 * * * *",
    )
    orders_job = schedule_services.job_create(
        tenant=tenant_a,
        name="orders-daily",
        server=pg,
        database_name="orders",
        storage=store,
        schedule_type="custom",
        cron_expression="30 2 * * *",
    )
    _backup(tenant_a, when=now - timedelta(days=3), application=shop, storage=store, name="shop_old", components=[])
    ok = _backup(
        tenant_a,
        when=now - timedelta(hours=2),
        server=pg,
        database_name="orders",
        db_type="postgresql",
        storage=store,
        job=orders_job,
        name="orders_morning",
        manifest={"source": {}},
    )
    _backup(
        tenant_a,
        when=now - timedelta(hours=5),
        server=pg,
        database_name="orders",
        db_type="postgresql",
        storage=store,
        job=orders_job,
        name="orders_night",
        stored_bytes=2_900_000,
    )
    failed = _backup(
        tenant_a,
        when=now - timedelta(hours=1),
        status="failed",
        server=pg,
        database_name="ledger",
        db_type="postgresql",
        storage=store,
        name="ledger_failed",
        stored_bytes=0,
        error_message=ALPHA_ERROR,
    )
    op = Operation.objects.create(
        tenant=tenant_a,
        kind="backup",
        status="completed",
        progress=100,
        backup=ok,
        bytes_done=9_100_000,
        bytes_total=9_100_000,
    )
    verification = Verification.objects.create(
        tenant=tenant_a,
        backup=ok,
        test_type="checksum",
        status="completed",
        passed=True,
        completed_at=now - timedelta(hours=1),
    )
    Backup.objects.filter(pk=ok.pk).update(verified=True, verified_at=verification.completed_at)
    Restore.objects.create(
        tenant=tenant_a, backup=ok, target_server=pg, target_database="orders_copy", status="completed"
    )

    b_store = backup_services.storage_create(
        tenant=tenant_b, name="bravo-store", type="local", configuration={"path": f"{root_b}/store"}
    )
    b_server = backup_services.server_create(
        tenant=tenant_b,
        name="bravo-pg",
        type="postgresql",
        host=pg_host,
        port=pg_port,
        credentials={"username": "postgres"},
    )
    backup_services.application_create(
        tenant=tenant_b, name="bravo-app", sources=[{"name": "files", "type": "path", "path": f"{root_b}/files"}]
    )
    bravo = _backup(
        tenant_b,
        when=now - timedelta(minutes=30),
        status="failed",
        server=b_server,
        database_name="bravo_db",
        db_type="postgresql",
        storage=b_store,
        name="bravo_failed",
        stored_bytes=0,
        error_message=BRAVO_ERROR,
    )
    return Seeded(pg=pg, ok_backup=ok, failed_backup=failed, bravo_backup=bravo, stale_app=shop, operation=op)
