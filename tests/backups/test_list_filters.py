"""The backup and audit list filters (django-filter FilterSets behind the selectors every list
calls): each filter narrows the rows, and every bad value is named in one error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.selectors import audit_event_list
from audit.services import emit
from backupplatform.errors import ValidationFailed
from backups.backup_selectors import backup_list
from backups.models import Backup, Server

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(tenant_a, tenant_b):
    pg = Server.objects.create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)
    my = Server.objects.create(tenant=tenant_a, name="my", type="mysql", host="127.0.0.1", port=3306)
    made = {
        "pg_done": Backup.objects.create(tenant=tenant_a, server=pg, db_type="postgresql", status="completed"),
        "pg_failed": Backup.objects.create(tenant=tenant_a, server=pg, db_type="postgresql", status="failed"),
        "my_done": Backup.objects.create(tenant=tenant_a, server=my, db_type="mysql", status="completed"),
        "other_tenant": Backup.objects.create(tenant=tenant_b, db_type="postgresql", status="completed"),
    }
    Backup.objects.filter(pk=made["my_done"].pk).update(created_at=timezone.now() - timedelta(days=3))
    return {"pg": pg, "my": my, **made}


def names(rows, qs):
    by_pk = {row.pk: name for name, row in rows.items() if isinstance(row, Backup)}
    return sorted(by_pk[b.pk] for b in qs)


def test_each_backup_filter_narrows_the_list(tenant_a, rows):
    assert names(rows, backup_list(tenant=tenant_a)) == ["my_done", "pg_done", "pg_failed"]
    assert names(rows, backup_list(tenant=tenant_a, filters={"server_id": str(rows["pg"].pk)})) == [
        "pg_done",
        "pg_failed",
    ]
    assert names(rows, backup_list(tenant=tenant_a, filters={"db_type": "mysql"})) == ["my_done"]
    assert names(rows, backup_list(tenant=tenant_a, filters={"status": "completed"})) == ["my_done", "pg_done"]
    assert names(rows, backup_list(tenant=tenant_a, filters={"since": "24h"})) == ["pg_done", "pg_failed"]
    assert names(rows, backup_list(tenant=tenant_a, filters={"status": "completed", "since": "7d"})) == [
        "my_done",
        "pg_done",
    ]
    assert names(rows, backup_list(tenant=tenant_a, filters={"status": "", "server_id": ""})) == [
        "my_done",
        "pg_done",
        "pg_failed",
    ]


def test_bad_backup_filters_are_named_together(tenant_a, rows):
    with pytest.raises(ValidationFailed) as caught:
        backup_list(tenant=tenant_a, filters={"server_id": "³", "status": "done", "storage_id": "0"})
    details = caught.value.details
    assert details["server_id"] == ["A whole number is required."]
    assert details["storage_id"] == ["A whole number is required."]
    assert details["status"][0].startswith("Must be one of: pending, running, completed")
    with pytest.raises(ValidationFailed) as caught:
        backup_list(tenant=tenant_a, filters={"since": "yesterday"})
    assert "24h" in caught.value.details["since"][0]


def test_the_workspace_list_answers_a_bad_since_in_its_error_format(api, admin_a, tenant_a):
    from backups.models import Application

    app = Application.objects.create(tenant=tenant_a, name="shop")
    response = api(admin_a).get(f"/api/v1/workspaces/{tenant_a.slug}/applications/{app.pk}/backups", {"since": "soon"})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"] == {
        "since": ["Use a duration such as 24h, 7d, 2w, or an ISO 8601 date-time."]
    }
    assert (
        api(admin_a)
        .get(f"/api/v1/workspaces/{tenant_a.slug}/applications/{app.pk}/backups", {"since": "7d"})
        .status_code
        == 200
    )


def test_audit_filters_and_their_errors(tenant_a, admin_a):
    emit(action="backup_create", tenant=tenant_a, actor=admin_a, resource_type="backup", resource_id=1)
    emit(action="restore_create", tenant=tenant_a, actor=None, resource_type="restore", resource_id=2)
    actions = {e.action for e in audit_event_list(tenant=tenant_a, filters={"user_id": str(admin_a.pk)})}
    assert "backup_create" in actions and "restore_create" not in actions
    assert [e.action for e in audit_event_list(tenant=tenant_a, filters={"resource_type": "restore"})] == [
        "restore_create"
    ]
    assert not audit_event_list(tenant=tenant_a, filters={"start_date": "2999-01-01"}).exists()
    with pytest.raises(ValidationFailed) as caught:
        audit_event_list(tenant=tenant_a, filters={"user_id": "x", "end_date": "31/12/2026"})
    assert caught.value.location == "query"
    assert set(caught.value.details) == {"user_id", "end_date"}
