"""List totals come from a cache (backupplatform/counting.py) but are never stale: every
write through the ORM, row by row or in bulk, moves them on."""

from __future__ import annotations

import pytest

from audit.services import emit
from backups.models import Backup

pytestmark = pytest.mark.django_db


def total(client) -> int:
    return client.get("/api/v1/backups?limit=1").json()["total"]


def test_totals_follow_every_kind_of_write(api, admin_a, tenant_a, django_assert_num_queries):
    client = api(admin_a)
    assert total(client) == 0
    first = Backup.objects.create(tenant=tenant_a, status="completed")
    assert total(client) == 1
    Backup.objects.bulk_create([Backup(tenant=tenant_a, status="failed") for _ in range(4)])
    assert total(client) == 5
    assert client.get("/api/v1/backups?status=failed&limit=1").json()["total"] == 4
    Backup.objects.filter(status="failed").update(status="completed")  # a bulk update, no signals
    assert client.get("/api/v1/backups?status=failed&limit=1").json()["total"] == 0
    first.delete()
    assert total(client) == 4
    Backup.objects.filter(tenant=tenant_a).delete()
    assert total(client) == 0
    with django_assert_num_queries(2):  # nothing written since: no COUNT (auth and the page only)
        total(client)


def test_audit_total_counts_each_new_event(api, admin_a, tenant_a):
    client = api(admin_a)
    before = client.get("/api/v1/audit/logs?limit=1").json()["total"]
    emit(action="probe", tenant=tenant_a)
    assert client.get("/api/v1/audit/logs?limit=1").json()["total"] == before + 1
