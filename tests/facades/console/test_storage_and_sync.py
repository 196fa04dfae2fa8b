"""Storage locations and sync: a backup copied to S3 (verified) is restored from there when
its local file is gone; deleting the backup removes every copy; quotas and alerts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from audit.models import AuditEvent
from backups.models import Backup, BackupCopy, Operation, Storage
from backups.services.backups import backup_delete, backup_run, backup_start
from backups.services.restores import restore_start
from backups.tasks import run_restore, run_sync
from tests.e2e.conftest import needs_pg, pg_dump_text

pytestmark = [pytest.mark.django_db(transaction=True)]
BASE = "/cloud-integration/backup"


def make_backup(tenant, storage, **kwargs) -> Backup:
    op = backup_start(tenant=tenant, storage=storage, queue=False, **kwargs)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    return backup


@needs_pg
def test_sync_to_s3_verified_then_restore_from_s3_when_the_local_file_is_gone(
    api, admin_a, tenant_a, pg_server_row, pg_source_db, local_storage, s3_bucket, cleanup_pg
):
    s3 = Storage.objects.create(
        tenant=tenant_a, name="aws", type="s3", configuration=s3_bucket.configuration, credentials=s3_bucket.credentials
    )
    backup = make_backup(tenant_a, local_storage, server=pg_server_row, database_name=pg_source_db)
    client = api(admin_a)
    started = client.post(
        f"{BASE}/storage/sync",
        {"source": "disk", "destination": "aws", "backup_ids": [backup.pk], "verify_after_sync": True},
        format="json",
    )
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["status"] == "sync_started" and body["backups_to_sync"] == 1
    run_sync(Operation.objects.get(public_id=body["sync_id"]).pk)
    progress = client.get(body["progress_url"]).json()
    assert progress["status"] == "completed" and progress["details"]["backups_synced"] == 1, progress

    stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=backup.storage_path)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == backup.checksum
    from backups.backup_selectors import backup_locations

    assert [(loc.storage.name, loc.primary, loc.verified) for loc in backup_locations(backup=backup)] == [
        ("disk", True, False),
        ("aws", False, True),
    ]
    copy = BackupCopy.objects.get(backup=backup, storage=s3)
    assert copy.verified and copy.verified_at is not None and copy.checksum == backup.checksum
    page = client.get(f"{BASE}/storage").json()
    aws = next(loc for loc in page["storage_locations"] if loc["id"] == "aws")
    assert aws["backup_copies"] == 1 and aws["last_sync"] and aws["used_bytes"] == backup.stored_bytes

    # The local file is lost: the restore reads the S3 copy.
    (Path(local_storage.configuration["path"]) / backup.storage_path).unlink()
    target = f"{pg_source_db}_froms3"
    cleanup_pg.append(target)
    restore = restore_start(tenant=tenant_a, backup=backup, target_database=target, queue=False)
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)
    assert BackupCopy.objects.get(backup=backup, storage=local_storage).status == "missing"

    # Deleting the backup deletes every copy.
    backup_delete(backup=Backup.objects.get(pk=backup.pk))
    listed = s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name).get("Contents", [])
    assert [o["Key"] for o in listed if o["Key"] == backup.storage_path] == []
    assert not BackupCopy.objects.filter(backup_id=backup.pk).exists()


def test_location_retention_removes_one_locations_copy_and_the_row_goes_with_the_last(
    tenant_a, local_storage, tmp_path
):
    from backups.services.copies import copy_record
    from backups.services.storage_settings import storage_settings_update
    from schedules.services import location_retention_apply

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("hello")
    from backups.services.applications import application_create

    app = application_create(tenant=tenant_a, name="site", sources=[{"type": "path", "path": str(tmp_path / "www")}])
    second = Storage.objects.create(
        tenant=tenant_a, name="archive", type="local", configuration={"path": str(tmp_path / "archive")}
    )
    backups = [make_backup(tenant_a, local_storage, application=app) for _ in range(3)]
    for backup in backups:  # a copy of each in the second location (as a sync makes)
        target = Path(second.configuration["path"]) / backup.storage_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((Path(local_storage.configuration["path"]) / backup.storage_path).read_bytes())
        copy_record(
            backup=backup, storage=second, path=backup.storage_path, size=backup.stored_bytes, checksum=backup.checksum
        )
    storage_settings_update(tenant=tenant_a, locations={"disk": {"retention": {"keep_last_n": 1}}}, policies={})
    local_storage.refresh_from_db()
    location_retention_apply(storage=local_storage)
    # The disk keeps its newest copy; the archive keeps all three; no backup row went.
    assert Backup.objects.filter(pk__in=[b.pk for b in backups]).count() == 3
    assert set(BackupCopy.objects.filter(storage=local_storage).values_list("backup_id", flat=True)) == {backups[-1].pk}
    assert BackupCopy.objects.filter(storage=second).count() == 3
    assert not (Path(local_storage.configuration["path"]) / backups[0].storage_path).exists()
    # The older backups now live only in the archive, which became their primary copy.
    assert Backup.objects.get(pk=backups[0].pk).storage_id == second.pk
    # The archive's own retention then removes their last copies: the rows go.
    storage_settings_update(tenant=tenant_a, locations={"archive": {"retention": {"keep_last_n": 1}}}, policies={})
    second.refresh_from_db()
    location_retention_apply(storage=second)
    assert list(Backup.objects.filter(pk__in=[b.pk for b in backups]).values_list("pk", flat=True)) == [backups[-1].pk]


@needs_pg
def test_quota_refuses_a_database_backup_before_writing_and_threshold_raises_an_alert(
    api, admin_a, tenant_a, pg_server_row, pg_source_db, local_storage, tmp_path
):
    client = api(admin_a)
    response = client.post(f"{BASE}/storage/update", {"storage_locations": {"disk": {"quota": 4096}}}, format="json")
    assert response.status_code == 200, response.content
    op = backup_start(tenant=tenant_a, server=pg_server_row, database_name=pg_source_db, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "failed" and backup.error_message.startswith("STORAGE_FULL"), backup.error_message
    store = Path(local_storage.configuration["path"])
    assert not [p for p in store.rglob("*") if p.is_file()]

    # A quota that fits, with an alert at 1 %: the completed backup crosses it.
    response = client.post(
        f"{BASE}/storage/update",
        {"storage_locations": {"disk": {"quota": "1 GB", "cleanup_threshold": 1}}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["storage_locations"][0]["cleanup_threshold"] == 1
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "noise.bin").write_bytes(__import__("os").urandom(12 << 20))
    from backups.services.applications import application_create

    app = application_create(tenant=tenant_a, name="big", sources=[{"type": "path", "path": str(tmp_path / "big")}])
    make_backup(tenant_a, local_storage, application=app)
    alert = AuditEvent.objects.filter(tenant=tenant_a, action="storage_alert").get()
    assert alert.details["storage"] == "disk" and alert.details["threshold"] == 1


def test_storage_update_is_all_or_nothing_and_validates(api, admin_a, operator_a, tenant_a, local_storage):
    client = api(admin_a)
    bad = client.post(
        f"{BASE}/storage/update",
        {"storage_locations": {"disk": {"quota": "10 GB"}, "nope": {"enabled": False}}},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    local_storage.refresh_from_db()
    assert local_storage.quota_bytes is None  # the first location's change was rolled back
    for body in (
        {"policies": {"encryption_default": False}},
        {"storage_locations": {"disk": {"quota": True}}},
        {"storage_locations": {"disk": {"colour": "red"}}},
        {"policies": {"replication_enabled": "yes"}},
    ):
        response = client.post(f"{BASE}/storage/update", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert set(response.json()["error"]) == {"code", "message", "details", "timestamp"}
    assert api(operator_a).post(f"{BASE}/storage/update", {}, format="json").status_code == 403
    assert (
        api(operator_a)
        .post(f"{BASE}/storage/sync", {"source": "disk", "destination": "disk"}, format="json")
        .status_code
        == 400
    )


def test_a_backup_turns_completed_together_with_the_row_of_its_stored_copy(
    api, admin_a, tenant_a, local_storage, tmp_path, monkeypatch
):
    """Whoever sees the backup completed (a client deleting it at once, say) also sees where
    it is stored: the copy row is written in the same commit, not after it."""
    from backups.services import copies
    from backups.services.applications import application_create

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>hello</h1>")
    app = application_create(tenant=tenant_a, name="site", sources=[{"type": "path", "path": str(tmp_path / "site")}])
    seen = {}
    after = copies.after_backup_completed

    def first_look(*, backup):
        row = Backup.objects.get(pk=backup.pk)
        seen["status"] = row.status
        seen["copies"] = list(BackupCopy.objects.filter(backup=row).values_list("storage__name", "path"))
        after(backup=backup)

    monkeypatch.setattr(copies, "after_backup_completed", first_look)
    backup = make_backup(tenant_a, local_storage, application=app)
    assert seen == {"status": "completed", "copies": [(local_storage.name, backup.storage_path)]}
    response = api(admin_a).delete(f"/api/v1/backups/{backup.pk}")
    assert response.status_code == 204, response.content
    assert not BackupCopy.objects.filter(backup_id=backup.pk).exists()
