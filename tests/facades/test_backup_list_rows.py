"""The platform's backup list builds its rows without DRF's per-field work; they must be what
``BackupSerializer`` (the documented shape, and the OpenAPI schema) gives, row for row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backupplatform.facades.platform.backups import LIST_COLUMNS, BackupSerializer, backup_list_rows
from backups.backup_selectors import backup_list
from backups.models import Backup, Server, Storage

pytestmark = pytest.mark.django_db


def test_list_rows_equal_the_serializers_for_every_kind_of_backup(api, admin_a, tenant_a, tmp_path):
    now = timezone.now()
    server = Server.objects.create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)
    local = Storage.objects.create(tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path)})
    s3 = Storage.objects.create(
        tenant=tenant_a, name="s3", type="s3", configuration={"bucket": "b", "path_prefix": "p/"}
    )
    variants = [
        {"status": "completed", "storage": local, "checksum": "ab" * 32, "compression": "zstd"},
        {"status": "completed", "storage": s3, "checksum": "cd" * 32, "compression": "none", "encrypted": False},
        {"status": "failed", "storage": None, "checksum": "", "error_message": "pg_dump: ünïcode error"},
        {"status": "running", "storage": local, "started_at": now, "completed_at": None},
        {"status": "pending", "storage": local, "started_at": None},
        {"status": "cancelled", "storage": s3, "backup_type": "pre-ota", "database_name": ""},
    ]
    for n, fields in enumerate(variants):
        values = {
            "started_at": now - timedelta(minutes=5, microseconds=n * 1234),
            "completed_at": now - timedelta(seconds=n),
            "storage_path": f"x/{n}.bpaf",
            "stored_bytes": 10**12 + n,
            "database_name": "orders",
            **fields,
        }
        Backup.objects.create(tenant=tenant_a, server=server, db_type="postgresql", **values)
    backups = list(backup_list(tenant=tenant_a))
    rows = list(backup_list(tenant=tenant_a, related=()).values(*LIST_COLUMNS))
    assert len(rows) == len(backups) == len(variants)
    assert backup_list_rows(rows) == [BackupSerializer(backup).data for backup in backups]
    with timezone.override("America/St_Johns"):  # a current time zone other than UTC, half-hour offset
        shown = backup_list_rows(rows)
        assert shown == [BackupSerializer(backup).data for backup in backups]
        assert shown[0]["created_at"].endswith(("-03:30", "-02:30"))
    listed = api(admin_a).get("/api/v1/backups", {"limit": 50}).json()
    assert listed["total"] == len(variants)
    assert listed["items"] == [dict(BackupSerializer(b).data) for b in backup_list(tenant=tenant_a)]
