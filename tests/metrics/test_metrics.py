"""``/metrics``: Prometheus exposition computed from the database, behind a token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.models import Delivery
from backups.models import Backup
from backups.services.operations import operation_create
from schedules import services as schedule_services

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-0123456789"


def scrape(token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().get("/metrics", **headers)


def samples(response) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_are_off_without_a_token_and_need_the_right_one(settings, tenant_a):
    settings.METRICS_TOKEN = ""
    assert scrape().status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert scrape(None).status_code == 401
    assert scrape("wrong").status_code == 401
    assert scrape().status_code == 200


def test_metrics_show_backups_durations_sizes_rpo_operations_and_deliveries(settings, tenant_a, tenant_b, tmp_path):
    from backups import services

    settings.METRICS_TOKEN = TOKEN
    storage = services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path / "s")}
    )
    server = services.server_create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)
    job = schedule_services.job_create(
        tenant=tenant_a,
        name="nightly",
        server=server,
        database_name="shop",
        storage=storage,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )
    now = timezone.now()
    for minutes, size in ((2, 5 * 2**20), (40, 3 * 2**30)):
        Backup.objects.create(
            tenant=tenant_a,
            job=job,
            status="completed",
            stored_bytes=size,
            started_at=now - timedelta(minutes=minutes),
            completed_at=now - timedelta(minutes=1),
        )
    latest = now - timedelta(seconds=30)
    Backup.objects.create(
        tenant=tenant_a,
        job=job,
        status="completed",
        stored_bytes=1000,
        started_at=latest - timedelta(seconds=5),
        completed_at=latest,
    )
    Backup.objects.create(tenant=tenant_a, job=job, status="failed", error_message="boom")
    Backup.objects.create(tenant=tenant_b, status="failed")
    operation_create(tenant=tenant_a, kind="restore")
    Delivery.objects.create(tenant=tenant_a, event_type="backup.failed", public_id="evt_1", status="failed")

    got = samples(scrape())
    assert got[("backupplatform_backups", (("status", "completed"), ("tenant", "alpha")))] == 3
    assert got[("backupplatform_backups", (("status", "failed"), ("tenant", "alpha")))] == 1
    assert got[("backupplatform_backups", (("status", "failed"), ("tenant", "bravo")))] == 1
    duration = {k[1]: v for k, v in got.items() if k[0] == "backupplatform_backup_duration_seconds_bucket"}
    assert duration[(("le", "10.0"), ("tenant", "alpha"))] == 1  # the 5-second one
    assert duration[(("le", "300.0"), ("tenant", "alpha"))] == 2
    assert duration[(("le", "+Inf"), ("tenant", "alpha"))] == 3
    assert got[("backupplatform_backup_duration_seconds_count", (("tenant", "alpha"),))] == 3
    assert got[("backupplatform_backup_duration_seconds_sum", (("tenant", "alpha"),))] == pytest.approx(
        60 + 39 * 60 + 5, abs=1
    )
    sizes = {k[1]: v for k, v in got.items() if k[0] == "backupplatform_backup_stored_bytes_bucket"}
    assert sizes[(("le", str(float(2**20))), ("tenant", "alpha"))] == 1
    assert sizes[(("le", str(float(2**30))), ("tenant", "alpha"))] == 2
    rpo = got[
        (
            "backupplatform_job_last_success_timestamp_seconds",
            (("job", "nightly"), ("job_id", str(job.pk)), ("tenant", "alpha")),
        )
    ]
    assert rpo == pytest.approx(latest.timestamp(), abs=0.001)
    assert (
        got[("backupplatform_operations_active", (("kind", "restore"), ("status", "pending"), ("tenant", "alpha")))]
        == 1
    )
    assert got[("backupplatform_notification_deliveries", (("status", "failed"), ("tenant", "alpha")))] == 1


def test_queue_depth_counts_tasks_waiting_in_redis(settings, tenant_a):
    import redis

    settings.METRICS_TOKEN = TOKEN
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("celery", "celery\x06\x165")
    client.rpush("celery", b"{}", b"{}")
    client.rpush("celery\x06\x165", b"{}")
    try:
        got = samples(scrape())
        assert got[("backupplatform_celery_queue_length", (("queue", "celery"),))] == 3
    finally:
        client.delete("celery", "celery\x06\x165")
