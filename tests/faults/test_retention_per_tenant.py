"""The daily retention runs one task per tenant: a tenant whose retention raises is recorded
and reported, and every other tenant's retention still runs."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from backups.models import Application
from schedules import services
from schedules.models import BackupJob
from schedules.tasks import cleanup_all
from tests.builders import make_local_storage
from tests.schedules.conftest import make_backups

from .conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _job(tenant, tmp_path, name: str):
    storage = make_local_storage(tenant, tmp_path / tenant.slug, "local")
    app = Application.objects.create(tenant=tenant, name=name)
    job = services.job_create(
        tenant=tenant,
        name=name,
        application=app,
        storage=storage,
        schedule_type="custom",
        cron_expression="30 3 * * *",
        retention_count=1,
    )
    make_backups(tenant, job=job, storage=storage, statuses=["completed"] * 3)
    return job


def test_one_tenants_failing_retention_stops_no_other_tenant(tenant_a, tenant_b, tmp_path, start_worker):
    broken = _job(tenant_a, tmp_path, "broken")  # visited first
    healthy = _job(tenant_b, tmp_path, "healthy")
    # Retention settings that no longer parse (written around the services' validation).
    BackupJob.objects.filter(pk=broken.pk).update(retention={"daily": "seven"})
    start_worker()

    cleanup_all.apply()  # what beat sends daily

    wait_for(lambda: healthy.backups.count() == 1, timeout=60, what="the healthy tenant's retention")
    failure = wait_for(
        lambda: AuditEvent.objects.filter(tenant=tenant_a, action="retention_failed").first(),
        timeout=30,
        what="the failure recorded",
    )
    assert failure.resource_id == str(broken.pk) and failure.details["job"] == "broken"
    assert failure.details["error"] == "ValueError"
    assert broken.backups.count() == 3  # nothing of the failing tenant was deleted
