"""Backups in the admin: filters, Verify, Download and Restore to… go through the services."""

from __future__ import annotations

import pytest
from django.test import Client

from backups.models import Backup, Restore, Verification
from backups.tasks import run_backup

from .conftest import needs_pg

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg]


@pytest.fixture
def completed_backup(tenant_a, pg_server_row, local_storage, pg_source_db):
    from backups.services.backups import backup_start

    op = backup_start(tenant=tenant_a, server=pg_server_row, database_name=pg_source_db, storage=local_storage)
    run_backup(op.pk)
    return Backup.objects.get(pk=op.backup_id)


def test_admin_actions_on_backups(superuser, completed_backup, pg_server_row):
    client = Client()
    client.force_login(superuser)
    page = client.get("/admin/backups/backup/", {"status__exact": "completed"})
    assert page.status_code == 200 and completed_backup.name.encode() in page.content
    response = client.post(
        "/admin/backups/backup/", {"action": "verify_decrypt", "_selected_action": [completed_backup.pk]}
    )
    assert response.status_code == 302
    assert Verification.objects.filter(backup=completed_backup, test_type="decrypt").exists()
    download = client.post("/admin/backups/backup/", {"action": "download", "_selected_action": [completed_backup.pk]})
    assert download.status_code == 302 and "/api/v1/downloads/" in download["Location"]
    form = client.get(f"/admin/backups/backup/{completed_backup.pk}/restore/")
    assert form.status_code == 200 and b"Masking rules" in form.content
    posted = client.post(
        f"/admin/backups/backup/{completed_backup.pk}/restore/",
        {
            "target_server": pg_server_row.pk,
            "target_database": "admin_restore_target",
            "strategy": "create_new",
            "masking_rules": "email=hash",
        },
    )
    assert posted.status_code == 302
    restore = Restore.objects.get(backup=completed_backup)
    assert restore.masking_rules == {"email": "hash"} and restore.target_database == "admin_restore_target"
    bad = client.post(
        f"/admin/backups/backup/{completed_backup.pk}/restore/",
        {"target_database": "x", "strategy": "create_new", "masking_rules": "oops"},
    )
    assert bad.status_code == 200 and b"column=rule" in bad.content
