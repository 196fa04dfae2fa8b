"""Back up a real PostgreSQL database through the API, restore it into a new database, and
compare: same schema and rows. Also downloads, tampering, masking and verification."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from audit.models import AuditEvent
from backups.models import Backup, Operation, Restore
from backups.tasks import run_backup, run_restore, run_verify

from .conftest import PG, needs_pg, pg_dump_text

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg]
ROOT = Path(__file__).resolve().parents[2]


def split_chunks(data: bytes) -> list[bytes]:
    """The framed chunks of a BPAF artifact (docs/artifact-format.md): flags, u32 length, body."""
    key_id_len = int.from_bytes(data[48:50], "big")
    pos = 50 + key_id_len
    chunks = []
    while pos < len(data):
        length = int.from_bytes(data[pos + 1 : pos + 5], "big")
        chunks.append(data[pos : pos + 5 + length])
        pos += 5 + length
    return chunks


def backup_through_api(api, user, server, database, compression="zstd", storage=None) -> Backup:
    body = {
        "server_id": server.pk,
        "database_name": database,
        "db_type": "postgresql",
        "compression_type": compression,
        "encrypt": True,
    }
    if storage is not None:
        body["storage_id"] = storage.pk
    response = api(user).post("/api/v1/backups", body, format="json")
    assert response.status_code == 201, response.content
    payload = response.json()
    assert payload["status"] == "pending" and payload["message"] == "Backup job queued" and payload["task_id"]
    op = Operation.objects.get(backup_id=payload["id"])
    run_backup(op.pk)  # what the worker does with the queued task
    return Backup.objects.get(pk=payload["id"])


def test_backup_and_restore_postgres_roundtrip(api, operator_a, pg_server_row, local_storage, pg_source_db, cleanup_pg):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    assert backup.status == "completed", backup.error_message
    detail = api(operator_a).get(f"/api/v1/backups/{backup.pk}").json()
    assert detail["checksum"].startswith("sha256:") and detail["size_bytes"] > 0 and detail["is_encrypted"]
    assert detail["compression_type"] == "zstd"
    assert backup.manifest["source"]["server_version"] and "pg_dump" in json.dumps(backup.manifest["source"])
    stored = Path(local_storage.configuration["path"]) / backup.storage_path
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == backup.checksum
    assert b"user1@example.com" not in stored.read_bytes()  # encrypted at rest

    target = f"{pg_source_db}_copy"
    cleanup_pg.append(target)
    response = api(operator_a).post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
    assert response.status_code == 201, response.content
    status_url = response.json()["status_url"]
    queued = api(operator_a).get(status_url).json()
    assert queued["status"] == "pending" and queued["progress"] == 0 and queued["target_database"] == target
    restore = Restore.objects.get(pk=response.json()["restore_id"])
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)
    # The task the seed's "Restore Backup" queued is followed at the status URL it returned.
    done = api(operator_a).get(status_url).json()
    assert done["status"] == "completed" and done["progress"] == 100 and "bytes_processed" in done
    assert done["backup_id"] == backup.pk and done["completed_at"]


def test_gzip_backup_and_listing_filters(api, viewer_a, operator_a, pg_server_row, local_storage, pg_source_db):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db, compression="gzip")
    assert backup.status == "completed" and backup.compression == "gzip"
    listing = api(viewer_a).get("/api/v1/backups", {"server_id": pg_server_row.pk, "status": "completed"}).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == backup.pk
    assert api(viewer_a).get("/api/v1/backups", {"status": "failed"}).json()["total"] == 0
    assert api(viewer_a).get("/api/v1/backups", {"status": "bogus"}).status_code == 422


def test_failed_backup_is_reported_and_leaves_nothing(api, operator_a, pg_server_row, local_storage):
    backup = backup_through_api(api, operator_a, pg_server_row, "no_such_database_here")
    assert backup.status == "failed"
    assert "no_such_database_here" in backup.error_message
    store = Path(local_storage.configuration["path"])
    assert not any(p.is_file() for p in store.rglob("*")) if store.exists() else True
    assert AuditEvent.objects.filter(action="backup_failed", resource_id=str(backup.pk)).exists()


def test_offline_restore_path_from_readme(
    api, admin_a, pg_server_row, local_storage, pg_source_db, cleanup_pg, tmp_path
):
    """README: decrypt with the key file alone, decompress, pg_restore."""
    from backups.keys import tenant_key_export

    backup = backup_through_api(api, admin_a, pg_server_row, pg_source_db)
    filename, key_file = tenant_key_export(tenant=backup.tenant)
    key_path = tmp_path / filename
    key_path.write_bytes(key_file)
    artifact = Path(local_storage.configuration["path"]) / backup.storage_path
    compressed = tmp_path / "backup.dump.zst"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "backups.pipeline.decrypt_cli",
            "--key-file",
            str(key_path),
            str(artifact),
            str(compressed),
        ],
        check=True,
        cwd=ROOT,
    )
    subprocess.run(["zstd", "-q", "-d", str(compressed), "-o", str(tmp_path / "backup.dump")], check=True)
    target = f"{pg_source_db}_offline"
    cleanup_pg.append(target)
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f'CREATE DATABASE "{target}"')
    subprocess.run(
        ["pg_restore", "-h", PG["host"], "-U", PG["user"], "--no-owner", "-d", target, str(tmp_path / "backup.dump")],
        check=True,
    )
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)


@pytest.mark.parametrize("damage", ["flip", "truncate", "reorder"])
def test_tampering_is_detected_by_verify_and_restore(
    api, operator_a, pg_server_row, local_storage, pg_source_db, cleanup_pg, damage
):
    if damage == "reorder":  # enough incompressible data for several 1 MiB chunks
        with psycopg.connect(dbname=pg_source_db, **PG) as conn:
            conn.execute(
                "CREATE TABLE noise AS SELECT md5(random()::text) || md5(random()::text) AS v "
                "FROM generate_series(1, 120000)"
            )
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    artifact = Path(local_storage.configuration["path"]) / backup.storage_path
    data = bytearray(artifact.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 100]
    else:
        chunks = split_chunks(bytes(data))
        assert len(chunks) >= 3, "the artifact should span several chunks"
        header_len = len(data) - sum(len(c) for c in chunks)
        chunks[0], chunks[1] = chunks[1], chunks[0]
        data = bytearray(bytes(data[:header_len]) + b"".join(chunks))
    artifact.write_bytes(bytes(data))
    for test_type in ("decrypt", "checksum"):
        response = api(operator_a).post(f"/api/v1/verify/{backup.pk}", {"test_type": test_type}, format="json")
        assert response.status_code == 202, response.content
        run_verify(Operation.objects.filter(kind="verify").latest("id").pk)
        result = api(operator_a).get(f"/api/v1/verify/{backup.pk}/result").json()["data"]
        assert result["passed"] is False, (test_type, result)
    target = f"{pg_source_db}_bad"
    cleanup_pg.append(target)
    restore_id = (
        api(operator_a)
        .post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
        .json()["restore_id"]
    )
    restore = Restore.objects.get(pk=restore_id)
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "failed" and restore.error_message


def test_verify_checksum_decrypt_and_test_restore_pass(api, operator_a, pg_server_row, local_storage, pg_source_db):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    body = {
        "test_type": "test_restore",
        "assertions": [
            {"sql": "SELECT count(*) FROM customers", "expect": 300},
            {"sql": "SELECT count(*) FROM blobs", "expect": 5},
        ],
    }
    response = api(operator_a).post(f"/api/v1/verify/{backup.pk}", body, format="json")
    assert response.status_code == 202
    run_verify(Operation.objects.filter(kind="verify").latest("id").pk)
    status = api(operator_a).get(f"/api/v1/verify/{backup.pk}/status").json()["data"]
    assert status["status"] == "completed" and status["passed"] is True
    result = api(operator_a).get(f"/api/v1/verify/{backup.pk}/result").json()["data"]["result"]
    assert result["test_restore"]["row_counts"]["public.customers"] == 300
    assert result["test_restore"]["restore_seconds"] >= 0
    scratch = result["test_restore"]["scratch_database"]
    with psycopg.connect(dbname="postgres", **PG) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (scratch,)).fetchone()[0] == 0
    backup.refresh_from_db()
    assert backup.verified and backup.verified_at
    listing = api(operator_a).get("/api/v1/verify").json()
    assert listing["total"] == 1


def test_masking_changes_only_named_columns_and_never_the_source(
    api, operator_a, pg_server_row, local_storage, pg_source_db, cleanup_pg
):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    target = f"{pg_source_db}_masked"
    cleanup_pg.append(target)
    body = {
        "target_server_id": pg_server_row.pk,
        "target_database": target,
        "mask_sensitive_data": True,
        "masking_rules": {"email": "hash", "phone": "randomize", "ssn": "null", "meta": "fixed:{}"},
    }
    response = api(operator_a).post(f"/api/v1/backups/{backup.pk}/restore", body, format="json")
    assert response.status_code == 201, response.content
    restore = Restore.objects.get(pk=response.json()["restore_id"])
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert "public.customers" in json.dumps(restore.result["masking"])

    query = "SELECT id, email, phone, ssn, balance::text, meta::text FROM customers ORDER BY id"
    with psycopg.connect(dbname=pg_source_db, **PG) as conn:
        source = conn.execute(query).fetchall()
    with psycopg.connect(dbname=target, **PG) as conn:
        masked = conn.execute(query).fetchall()
    assert source[0][1] == "user1@example.com" and source[0][3] == "SSN1"  # the source is untouched
    for (sid, semail, sphone, _ssn, sbal, _meta), (mid, memail, mphone, mssn, mbal, mmeta) in zip(
        source, masked, strict=True
    ):
        assert sid == mid and sbal == mbal  # other columns unchanged
        assert memail != semail and memail == hashlib.sha256(semail.encode()).hexdigest()
        assert mphone != sphone and len(mphone) == len(sphone)
        assert mssn is None
        assert mmeta == "{}"


def test_download_link_and_signed_stream(api, operator_a, pg_server_row, local_storage, pg_source_db, client):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    body = api(operator_a).post(f"/api/v1/backups/{backup.pk}/download").json()
    assert body["download_url"] and body["expires_at"]
    response = client.get(body["download_url"])
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    assert hashlib.sha256(content).hexdigest() == backup.checksum
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert client.get(body["download_url"] + "x").status_code == 404


def test_other_tenant_cannot_see_or_touch_backups(api, operator_a, admin_b, pg_server_row, local_storage, pg_source_db):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    other = api(admin_b)
    assert other.get("/api/v1/backups").json()["total"] == 0
    for method, path in (
        ("get", f"/api/v1/backups/{backup.pk}"),
        ("post", f"/api/v1/backups/{backup.pk}/download"),
        ("post", f"/api/v1/backups/{backup.pk}/restore"),
        ("delete", f"/api/v1/backups/{backup.pk}"),
        ("post", f"/api/v1/verify/{backup.pk}"),
        ("get", f"/api/v1/verify/{backup.pk}/status"),
    ):
        response = getattr(other, method)(path, {"target_database": "x"}, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
    # and B cannot back up A's server
    response = other.post(
        "/api/v1/backups", {"server_id": pg_server_row.pk, "database_name": pg_source_db}, format="json"
    )
    assert response.status_code == 404


def test_roles_viewer_reads_operator_runs_admin_deletes(
    api, viewer_a, operator_a, admin_a, pg_server_row, local_storage, pg_source_db
):
    body = {"server_id": pg_server_row.pk, "database_name": pg_source_db}
    assert api(viewer_a).post("/api/v1/backups", body, format="json").status_code == 403
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    assert api(viewer_a).get(f"/api/v1/backups/{backup.pk}").status_code == 200
    assert api(operator_a).delete(f"/api/v1/backups/{backup.pk}").status_code == 403
    stored = Path(local_storage.configuration["path"]) / backup.storage_path
    assert stored.exists()
    assert api(admin_a).delete(f"/api/v1/backups/{backup.pk}").status_code == 204
    assert not stored.exists() and not Backup.objects.filter(pk=backup.pk).exists()


def test_concurrent_backup_cap_is_429(api, operator_a, pg_server_row, local_storage, pg_source_db, tenant_a):
    body = {"server_id": pg_server_row.pk, "database_name": pg_source_db}
    statuses = [api(operator_a).post("/api/v1/backups", body, format="json").status_code for _ in range(6)]
    assert statuses == [201] * 5 + [429]
    blocked = api(operator_a).post("/api/v1/backups", body, format="json")
    assert blocked.json()["code"] == "TOO_MANY_OPERATIONS" and blocked["Retry-After"]


def test_cancel_mid_way_leaves_nothing(api, operator_a, pg_server_row, local_storage, pg_source_db):
    from backups.services.operations import operation_cancel

    op_body = (
        api(operator_a)
        .post("/api/v1/backups", {"server_id": pg_server_row.pk, "database_name": pg_source_db}, format="json")
        .json()
    )
    op = Operation.objects.get(backup_id=op_body["id"])
    Operation.objects.filter(pk=op.pk).update(cancel_requested=True)  # as if the user cancelled it right away
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op_body["id"])
    assert backup.status == "cancelled"
    store = Path(local_storage.configuration["path"])
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]
    with pytest.raises(Exception):
        operation_cancel(tenant=backup.tenant, public_id=op.public_id)  # already ended


def test_bad_input_on_backup_routes(api, operator_a, pg_server_row, local_storage):
    client = api(operator_a)
    client.raise_request_exception = False
    for body in (
        "{",
        "[]",
        json.dumps({"server_id": "one", "database_name": 5}),
        json.dumps({"server_id": pg_server_row.pk, "database_name": "x", "surprise": True}),
        json.dumps({"server_id": pg_server_row.pk, "database_name": "x", "compression_type": "lzma"}),
    ):
        response = client.post("/api/v1/backups", data=body, content_type="application/json")
        assert response.status_code in (400, 422), (body, response.content)
    assert client.post("/api/v1/backups/abc/restore", {}, format="json").status_code == 404
    assert client.post("/api/v1/verify/abc", {}, format="json").status_code == 404
    assert Backup.objects.count() == 0


def test_parallel_restore_through_the_api(
    api, operator_a, pg_server_row, local_storage, pg_source_db, cleanup_pg, tmp_path, monkeypatch
):
    import tempfile

    spool = tmp_path / "worker-tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # the worker's temporary folder
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    client = api(operator_a)
    for bad in (0, 17, "2", True):
        response = client.post(
            f"/api/v1/backups/{backup.pk}/restore", {"target_database": "x_par", "jobs": bad}, format="json"
        )
        assert response.status_code == 422 and "jobs" in json.dumps(response.json()), response.content
    target = f"{pg_source_db}_par"
    cleanup_pg.append(target)
    response = client.post(
        f"/api/v1/backups/{backup.pk}/restore", {"target_database": target, "jobs": 3}, format="json"
    )
    assert response.status_code == 201, response.content
    restore = Restore.objects.get(pk=response.json()["restore_id"])
    assert restore.options["jobs"] == 3
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert restore.result["restore"]["jobs"] == 3
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)
    assert list(spool.iterdir()) == []  # the spooled dump is deleted


def test_parallel_restore_without_temporary_space_fails_before_creating_anything(
    api, operator_a, pg_server_row, local_storage, pg_source_db, cleanup_pg, tiny_tempdir
):
    backup = backup_through_api(api, operator_a, pg_server_row, pg_source_db)
    target = f"{pg_source_db}_nospace"
    cleanup_pg.append(target)
    response = api(operator_a).post(
        f"/api/v1/backups/{backup.pk}/restore", {"target_database": target, "jobs": 2}, format="json"
    )
    restore = Restore.objects.get(pk=response.json()["restore_id"])
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "failed" and "A parallel restore first writes the dump to" in restore.error_message
    with psycopg.connect(dbname="postgres", **PG) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone() is None
