"""A restore whose worker died is failed by the reaper, and the staging database it left
(unmasked data, never under the target's name) is dropped."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone
from psycopg import sql

from backups.engines.staging import staging_name
from backups.models import Backup, Operation, Restore, Server
from backups.services.operations import operation_create, operation_reap

pytestmark = pytest.mark.django_db
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def databases() -> set[str]:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def test_reaper_fails_a_dead_restore_and_drops_its_staging_database(tenant_a):
    server = Server.objects.create(
        tenant=tenant_a,
        name="pg",
        type="postgresql",
        host=PG["host"],
        port=PG["port"],
        credentials={"username": PG["user"]},
    )
    name = staging_name("reaped_target")
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        backup = Backup.objects.create(tenant=tenant_a, status="completed", server=server, db_type="postgresql")
        op = operation_create(tenant=tenant_a, kind="restore", backup=backup)
        Operation.objects.filter(pk=op.pk).update(status="running", heartbeat_at=timezone.now() - timedelta(hours=1))
        restore = Restore.objects.create(
            tenant=tenant_a,
            backup=backup,
            operation=op,
            target_server=server,
            target_database="reaped_target",
            status="running",
            result={"staging": [{"server_id": server.pk, "database": name}]},
        )
        assert name in databases()
        assert op.public_id in operation_reap()
        restore.refresh_from_db()
        assert restore.status == "failed" and "stopped responding" in restore.error_message
        assert name not in databases()
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
