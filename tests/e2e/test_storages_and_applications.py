"""The same round trip through S3 (moto server over HTTP) and SFTP storage, for MariaDB, and
for an application of two databases and a folder (one artifact, one restore point)."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import subprocess
import tarfile
import zipfile

import pymysql
import pytest

from backups.models import Application, Backup, Operation, Restore, Server, Source, Storage
from backups.services.backups import backup_start
from backups.tasks import run_backup, run_restore

from .conftest import MY, needs_mysql, needs_pg, pg_dump_text
from .test_postgres_roundtrip import backup_through_api

pytestmark = [pytest.mark.django_db(transaction=True)]


@needs_pg
def test_postgres_roundtrip_through_s3(api, operator_a, tenant_a, pg_server_row, pg_source_db, s3_bucket, cleanup_pg):
    storage = Storage.objects.create(
        tenant=tenant_a, name="s3", type="s3", configuration=s3_bucket.configuration, credentials=s3_bucket.credentials
    )
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db, storage=storage)
    assert backup.status == "completed", backup.error_message
    obj = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=backup.storage_path)["Body"].read()
    assert hashlib.sha256(obj).hexdigest() == backup.checksum
    link = api(operator_a).post(f"/api/v1/backups/{backup.pk}/download").json()["download_url"]
    assert link.startswith(s3_bucket.endpoint_url) and "Signature" in link  # presigned
    target = f"{pg_source_db}_s3"
    cleanup_pg.append(target)
    restore_id = (
        api(operator_a)
        .post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
        .json()["restore_id"]
    )
    run_restore(Restore.objects.get(pk=restore_id).operation_id)
    assert Restore.objects.get(pk=restore_id).status == "completed"
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)
    assert api(operator_a).get(f"/api/v1/backups/{backup.pk}").json()["storage_path"].startswith("s3://")


@needs_pg
def test_postgres_roundtrip_through_sftp(
    api, operator_a, tenant_a, pg_server_row, pg_source_db, sftp_server, cleanup_pg
):
    storage = Storage.objects.create(
        tenant=tenant_a,
        name="sftp",
        type="sftp",
        configuration={
            "host": sftp_server.host,
            "port": sftp_server.port,
            "path": "/backups",
            "username": sftp_server.username,
            "host_key": sftp_server.host_key,
        },
        credentials={"password": sftp_server.password},
    )
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db, storage=storage)
    assert backup.status == "completed", backup.error_message
    stored = sftp_server.root / "backups" / backup.storage_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == backup.checksum
    target = f"{pg_source_db}_sftp"
    cleanup_pg.append(target)
    restore_id = (
        api(operator_a)
        .post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
        .json()["restore_id"]
    )
    run_restore(Restore.objects.get(pk=restore_id).operation_id)
    assert Restore.objects.get(pk=restore_id).status == "completed"
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)


@pytest.fixture
def mysql_source_db():
    name = f"bp_my_{secrets.token_hex(4)}"
    conn = pymysql.connect(autocommit=True, **MY)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"USE `{name}`")
        cur.execute(
            "CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100), note TEXT, "
            "photo BLOB, born DATETIME)"
        )
        for n in range(1, 151):
            cur.execute(
                "INSERT INTO people (email, note, photo, born) VALUES (%s, %s, %s, NOW())",
                (f"p{n}@example.com", "note " * n, os.urandom(64)),
            )
        cur.execute("CREATE TABLE tags (id INT PRIMARY KEY, label VARCHAR(20))")
        cur.execute("INSERT INTO tags VALUES (1, 'a'), (2, 'b')")
    yield name
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"DROP DATABASE IF EXISTS `{name}_copy`")
    conn.close()


def mysql_checksums(name: str) -> dict:
    conn = pymysql.connect(database=name, **MY)
    with conn.cursor() as cur:
        cur.execute("CHECKSUM TABLE people, tags")
        rows = {table.split(".")[-1]: checksum for table, checksum in cur.fetchall()}
        cur.execute("SELECT COUNT(*) FROM people")
        rows["count"] = cur.fetchone()[0]
    conn.close()
    return rows


@needs_mysql
def test_mariadb_roundtrip(api, operator_a, tenant_a, local_storage, mysql_source_db):
    server = Server.objects.create(
        tenant=tenant_a,
        name="maria",
        type="mysql",
        host=MY["host"],
        port=MY["port"],
        credentials={"username": MY["user"], "password": MY["password"]},
    )
    response = api(operator_a).post(
        "/api/v1/backups", {"server_id": server.pk, "database_name": mysql_source_db, "db_type": "mysql"}, format="json"
    )
    assert response.status_code == 201, response.content
    backup_id = response.json()["id"]
    run_backup(Operation.objects.get(backup_id=backup_id).pk)
    backup = Backup.objects.get(pk=backup_id)
    assert backup.status == "completed", backup.error_message
    assert "mysqldump" in str(backup.manifest["source"]).lower() or "mariadb" in str(backup.manifest["source"]).lower()
    restore_id = (
        api(operator_a)
        .post(f"/api/v1/backups/{backup_id}/restore", {"target_database": f"{mysql_source_db}_copy"}, format="json")
        .json()["restore_id"]
    )
    run_restore(Restore.objects.get(pk=restore_id).operation_id)
    restore = Restore.objects.get(pk=restore_id)
    assert restore.status == "completed", restore.error_message
    assert mysql_checksums(f"{mysql_source_db}_copy") == mysql_checksums(mysql_source_db)


@needs_pg
@needs_mysql
def test_application_of_two_databases_and_a_folder(
    api, operator_a, tenant_a, pg_server_row, pg_source_db, mysql_source_db, local_storage, tmp_path, cleanup_pg
):
    folder = tmp_path / "site"
    (folder / "uploads").mkdir(parents=True)
    (folder / "uploads" / "a.bin").write_bytes(os.urandom(3000))
    (folder / "index.html").write_text("<h1>hello</h1>")
    (folder / "cache.tmp").write_text("skip me")
    maria = Server.objects.create(
        tenant=tenant_a,
        name="maria",
        type="mysql",
        host=MY["host"],
        port=MY["port"],
        credentials={"username": MY["user"], "password": ""},
    )
    app = Application.objects.create(tenant=tenant_a, name="shop", namespace="frontend")
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="orders",
        type="postgresql",
        server=pg_server_row,
        database_name=pg_source_db,
        position=0,
    )
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="crm",
        type="mysql",
        server=maria,
        database_name=mysql_source_db,
        position=1,
    )
    Source.objects.create(
        tenant=tenant_a, application=app, name="files", type="path", path=str(folder), exclude=["*.tmp"], position=2
    )
    op = backup_start(tenant=tenant_a, actor=operator_a, application=app, storage=local_storage)
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    client = api(operator_a)
    base = f"/api/v1/workspaces/alpha/applications/{app.pk}"
    listing = client.get(f"{base}/backups").json()
    assert listing["pagination"]["total"] == 1 and listing["data"][0]["id"] == f"backup-{backup.pk}"
    assert client.get(f"{base}/backups/latest").json()["data"]["id"] == f"backup-{backup.pk}"
    manifest = client.get(f"{base}/backups/{backup.pk}/manifest").json()["data"]
    assert {s["name"] for s in manifest["resources"]["sources"]} == {"orders", "crm", "files"}

    # Downloads: the decrypted bundle as tar.gz and as zip, streamed.
    tgz = client.get(f"{base}/backups/{backup.pk}/download", {"format": "tar.gz"})
    assert tgz["Content-Disposition"] == f'attachment; filename="backup-{backup.pk}.tar.gz"'
    with tarfile.open(fileobj=io.BytesIO(b"".join(tgz.streaming_content)), mode="r:gz") as tar:
        names = tar.getnames()
    assert "manifest.json" in names and len(names) == 4
    zipped = client.get(f"{base}/backups/{backup.pk}/download", {"format": "zip"})
    with zipfile.ZipFile(io.BytesIO(b"".join(zipped.streaming_content))) as archive:
        assert sorted(archive.namelist()) == sorted(names)
    assert client.get(f"{base}/backups/{backup.pk}/download", {"format": "rar"}).status_code == 400

    # Restore everything as new copies next to the originals.
    response = client.post(
        f"{base}/backups/{backup.pk}/restore",
        {"restore_options": {"restore_strategy": "create_new"}, "target_path": str(tmp_path / "restored")},
        format="json",
    )
    assert response.status_code == 202, response.content
    restore = Restore.objects.get(pk=int(response.json()["data"]["restore_id"].removeprefix("restore-")))
    cleanup_pg.append(f"{pg_source_db}_restored_{restore.pk}")
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert pg_dump_text(f"{pg_source_db}_restored_{restore.pk}").replace(f"_restored_{restore.pk}", "") == pg_dump_text(
        pg_source_db
    )
    assert mysql_checksums(f"{mysql_source_db}_restored_{restore.pk}") == mysql_checksums(mysql_source_db)
    restored = tmp_path / "restored"
    files = sorted(p.relative_to(restored).as_posix() for p in restored.rglob("*") if p.is_file())
    assert any(f.endswith("uploads/a.bin") for f in files) and not any(f.endswith("cache.tmp") for f in files)
    original = (folder / "uploads" / "a.bin").read_bytes()
    assert next(p for p in restored.rglob("a.bin")).read_bytes() == original
    history = client.get(f"{base}/restores").json()
    assert history["data"][0]["id"] == f"restore-{restore.pk}" and history["data"][0]["status"] == "completed"
    assert client.get(f"{base}/restores/{restore.pk}").json()["data"]["backup_id"] == f"backup-{backup.pk}"
    conn = pymysql.connect(autocommit=True, **MY)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{mysql_source_db}_restored_{restore.pk}`")
    conn.close()


def test_workspace_backup_routes_are_isolated(api, admin_b, operator_a, tenant_a, tenant_b):
    app = Application.objects.create(tenant=tenant_a, name="secret-app")
    client = api(admin_b)
    for path in (
        f"/api/v1/workspaces/bravo/applications/{app.pk}/backups",
        f"/api/v1/workspaces/bravo/applications/{app.pk}/restores",
        f"/api/v1/workspaces/alpha/applications/{app.pk}/backups",
    ):
        assert client.get(path).status_code == 404, path
    assert api(operator_a).get(f"/api/v1/workspaces/alpha/applications/{app.pk}/backups/latest").status_code == 404


def test_shared_plan_gets_feature_not_available(api, operator_a, tenant_a):
    tenant_a.plan = "shared"
    tenant_a.save()
    app = Application.objects.create(tenant=tenant_a, name="x")
    response = api(operator_a).get(f"/api/v1/workspaces/alpha/applications/{app.pk}/backups")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FEATURE_NOT_AVAILABLE"
    assert subprocess is not None


def test_folder_larger_than_the_free_temporary_space_backs_up_and_restores(
    api, operator_a, tenant_a, local_storage, tmp_path, tiny_tempdir
):
    folder = tmp_path / "big-folder"
    (folder / "media").mkdir(parents=True)
    for n in range(3):  # 24 MiB that do not compress, 24 times the free temporary space
        (folder / "media" / f"clip{n}.bin").write_bytes(os.urandom(8 << 20))
    for n in range(200):
        (folder / f"note{n}.txt").write_text(f"note {n}\n" * 20)
    app = Application.objects.create(tenant=tenant_a, name="media", namespace="prod")
    Source.objects.create(tenant=tenant_a, application=app, name="files", type="path", path=str(folder), position=0)
    op = backup_start(tenant=tenant_a, actor=operator_a, application=app, storage=local_storage)
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    assert backup.size_bytes > 24 << 20
    member = backup.manifest["bundle"]["members"][0]
    assert member["parts"] > 1 and backup.manifest["bundle"]["format"] == "bp-bundle/2"

    response = api(operator_a).post(
        f"/api/v1/workspaces/alpha/applications/{app.pk}/backups/{backup.pk}/restore",
        {"restore_options": {"restore_strategy": "create_new"}, "target_path": str(tmp_path / "restored")},
        format="json",
    )
    assert response.status_code == 202, response.content
    restore = Restore.objects.get(pk=int(response.json()["data"]["restore_id"].removeprefix("restore-")))
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    restored = tmp_path / "restored"
    for n in range(3):
        original = (folder / "media" / f"clip{n}.bin").read_bytes()
        assert next(restored.rglob(f"clip{n}.bin")).read_bytes() == original
    assert len(list(restored.rglob("note*.txt"))) == 200
    assert not any(tiny_tempdir.iterdir())
