"""Restores that know what they restore: each backup records its source's versions, encoding
and size; a restore that cannot work is refused with the reason before anything starts, and
one that may surprise carries warnings (API, admin, CLI). Real PostgreSQL and MariaDB; only
the recorded version in a manifest is changed, to stand for a newer source."""

from __future__ import annotations

import io

import psycopg
import pymysql
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from backups.models import Application, Backup, Restore, Server, Source
from backups.services.backups import backup_start
from backups.tasks import run_backup, run_restore

from .conftest import MY, PG, needs_mysql, needs_pg, pg_drop
from .test_postgres_roundtrip import backup_through_api
from .test_storages_and_applications import mysql_source_db  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True)]


def server_major() -> int:
    with psycopg.connect(dbname="postgres", **PG) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def pg_exists(name: str) -> bool:
    with psycopg.connect(dbname="postgres", **PG) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def fake_source(backup: Backup, **facts) -> None:
    """What the manifest would say had the dump come from another server."""
    manifest = backup.manifest
    manifest["source"].update(facts)
    Backup.objects.filter(pk=backup.pk).update(manifest=manifest)
    backup.refresh_from_db()


@needs_pg
def test_a_backup_records_server_and_tool_versions_encoding_and_size(
    api, operator_a, pg_server_row, local_storage, pg_source_db
):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    source = backup.manifest["source"]
    assert source["server_version_num"] // 10000 == server_major()
    assert source["server_version"].startswith(str(server_major()))
    assert source["tool_version"].startswith("pg_dump (PostgreSQL)")
    assert source["encoding"] == "UTF8" and source["collation"]
    assert source["size_bytes"] > 1_000_000  # pg_database_size of the source
    assert backup.manifest["payload"] == "pg_dump-custom" and backup.manifest["format"] == "BPAF v2"


@needs_pg
def test_a_dump_of_a_newer_postgres_major_is_refused_with_the_reason(
    api, operator_a, admin_a, pg_server_row, local_storage, pg_source_db
):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    newer = server_major() + 2
    fake_source(backup, server_version=f"{newer}.1", server_version_num=newer * 10000 + 1)
    target = f"{pg_source_db}_newer"

    response = api(operator_a).post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "RESTORE_INCOMPATIBLE"
    reason = body["detail"][0]["msg"]
    assert f"PostgreSQL {newer}.1" in reason and "older server" in reason and f"PostgreSQL {newer} or later" in reason
    assert not Restore.objects.exists() and not pg_exists(target)

    with pytest.raises(CommandError, match=f"Refused: .*PostgreSQL {newer}.1"):
        call_command("restore", str(backup.pk), "--target-database", target, stdout=io.StringIO())
    admin_a.is_staff = True
    admin_a.save()
    client = Client()
    client.force_login(admin_a)
    page = client.post(
        f"/admin/backups/backup/{backup.pk}/restore/",
        {"target_database": target, "strategy": "create_new", "masking_rules": ""},
    )
    assert page.status_code == 200 and f"PostgreSQL {newer}.1".encode() in page.content
    assert not Restore.objects.exists() and not pg_exists(target)


@needs_pg
def test_a_dump_by_a_newer_pg_dump_than_our_pg_restore_is_refused(
    api, operator_a, pg_server_row, local_storage, pg_source_db
):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    fake_source(backup, tool_version=f"pg_dump (PostgreSQL) {server_major() + 3}.0")
    response = api(operator_a).post(
        f"/api/v1/backups/{backup.pk}/restore", {"target_database": f"{pg_source_db}_x"}, format="json"
    )
    assert response.status_code == 422
    assert "pg_restore cannot read archives of a newer pg_dump" in response.json()["detail"][0]["msg"]


@needs_pg
def test_an_older_major_restores_with_a_warning_in_the_answer_and_the_result(
    api, operator_a, pg_server_row, local_storage, pg_source_db, cleanup_pg
):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    fake_source(backup, server_version="13.4", server_version_num=130004)
    target = f"{pg_source_db}_older"
    cleanup_pg.append(target)
    response = api(operator_a).post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
    assert response.status_code == 201, response.content
    warnings = response.json()["warnings"]
    assert len(warnings) == 1 and "PostgreSQL 13.4" in warnings[0] and "extensions" in warnings[0]
    restore = Restore.objects.get(pk=response.json()["restore_id"])
    run_restore(restore.operation_id)
    done = api(operator_a).get(f"/api/v1/restores/{restore.pk}").json()
    assert done["status"] == "completed" and done["warnings"] == warnings

    out, err = io.StringIO(), io.StringIO()
    cleanup_pg.append(f"{target}_cli")
    call_command("restore", str(backup.pk), "--target-database", f"{target}_cli", stdout=out, stderr=err)
    assert "Warning: " in err.getvalue() and "13.4" in err.getvalue()


@pytest.fixture
def latin1_db():
    name = "bp_compat_latin1"
    pg_drop(name)
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    with psycopg.connect(dbname=name, **PG) as conn:
        conn.execute("CREATE TABLE names (n text)")
        conn.execute("INSERT INTO names VALUES ('Zoë'), ('François')")
    yield name
    pg_drop(name)


@needs_pg
def test_another_encoding_is_a_warning_and_the_text_survives(
    api, operator_a, pg_server_row, local_storage, latin1_db, cleanup_pg
):
    backup = backup_through_api(api, operator_a, pg_server_row, latin1_db)
    assert backup.manifest["source"]["encoding"] == "LATIN1"
    target = f"{latin1_db}_utf8"
    cleanup_pg.append(target)
    response = api(operator_a).post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
    assert response.status_code == 201, response.content
    assert any("LATIN1" in w and "UTF8" in w for w in response.json()["warnings"])
    run_restore(Restore.objects.get(pk=response.json()["restore_id"]).operation_id)
    with psycopg.connect(dbname=target, **PG) as conn:
        assert (
            conn.execute(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
            ).fetchone()[0]
            == "UTF8"
        )
        assert [r[0] for r in conn.execute("SELECT n FROM names ORDER BY n")] == ["François", "Zoë"]


@needs_pg
def test_an_application_member_of_a_newer_major_is_refused(
    operator_a, tenant_a, pg_server_row, local_storage, pg_source_db
):
    app = Application.objects.create(tenant=tenant_a, name="shop")
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="orders",
        type="postgresql",
        server=pg_server_row,
        database_name=pg_source_db,
    )
    op = backup_start(tenant=tenant_a, actor=operator_a, application=app, storage=local_storage)
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    member = backup.manifest["bundle"]["members"][0]
    assert member["info"]["server_version_num"] // 10000 == server_major()
    assert member["info"]["encoding"] == "UTF8" and member["info"]["size_bytes"] > 0
    member["info"].update(server_version="99.0", server_version_num=990000)
    Backup.objects.filter(pk=backup.pk).update(manifest=backup.manifest)
    with pytest.raises(CommandError, match=r"orders: this backup is a dump of PostgreSQL 99\.0"):
        call_command("restore", str(backup.pk), stdout=io.StringIO())
    assert not Restore.objects.exists()


@needs_mysql
def test_mariadb_records_its_facts_and_a_mysql_dump_warns(api, operator_a, tenant_a, local_storage, mysql_source_db):  # noqa: F811
    server = Server.objects.create(
        tenant=tenant_a,
        name="maria",
        type="mysql",
        host=MY["host"],
        port=MY["port"],
        credentials={"username": MY["user"], "password": ""},
    )
    op = backup_start(
        tenant=tenant_a, actor=operator_a, server=server, database_name=mysql_source_db, storage=local_storage
    )
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    source = backup.manifest["source"]
    assert "MariaDB" in source["server_version"] and source["flavor"] == "mariadb"
    assert source["tool_version"].startswith("mysqldump") and source["encoding"] and source["size_bytes"] > 0
    assert backup.manifest["payload"] == "sql"

    fake_source(backup, server_version="8.0.36", flavor="mysql")
    response = api(operator_a).post(
        f"/api/v1/backups/{backup.pk}/restore", {"target_database": f"{mysql_source_db}_copy"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert any("mysql 8.0.36" in w and "mariadb" in w for w in response.json()["warnings"])
    run_restore(Restore.objects.get(pk=response.json()["restore_id"]).operation_id)
    conn = pymysql.connect(database=f"{mysql_source_db}_copy", **MY)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM people")
        assert cur.fetchone()[0] == 150
    conn.close()
