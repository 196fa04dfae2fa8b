"""What goes where: subscriptions, levels, job flags, grouping of repeats, the message's
content and the ``notification`` socket event, each through the real services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from audit import deliveries, notifications
from audit.models import AuditEvent, Delivery, NotificationGroup
from audit.services import emit, tenant_group
from backups.models import Backup
from backups.services.operations import operation_create
from schedules import services as schedule_services

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_backup(tenant_a, tmp_path):
    from backups import services

    storage = services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": str(tmp_path / "store")}
    )
    server = services.server_create(tenant=tenant_a, name="pg-main", type="postgresql", host="127.0.0.1", port=5432)
    job = schedule_services.job_create(
        tenant=tenant_a,
        name="nightly",
        server=server,
        database_name="shop",
        storage=storage,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )

    def make(error: str = 'pg_dump: error: database "shop" does not exist', *, job=job, status="failed", options=None):
        backup = Backup.objects.create(
            tenant=tenant_a,
            name="shop_1",
            status=status,
            server=server,
            database_name="shop",
            db_type="postgresql",
            job=job,
            storage=storage,
            error_message=error if status == "failed" else "",
            started_at=timezone.now(),
            completed_at=timezone.now(),
        )
        operation_create(tenant=tenant_a, kind="backup", backup=backup, details={"options": options or {}})
        return emit(
            action=f"backup_{status}",
            tenant=tenant_a,
            resource_type="backup",
            resource_id=backup.pk,
            details={"error": error if status == "failed" else ""},
        )

    make.job = job
    return make


def channel(tenant, name="ops", **kwargs):
    return notifications.channel_create(
        tenant=tenant,
        name=name,
        type="slack",
        config={"webhook_url": "https://hooks.example.com/services/A/B/C"},
        **kwargs,
    )


def test_a_failure_message_says_what_where_when_and_links_to_the_admin(tenant_a, failed_backup, settings):
    settings.PUBLIC_BASE_URL = "https://backups.example.com/"
    ch = channel(tenant_a)
    event = failed_backup()
    [pk] = deliveries.route_event(event_id=event.pk)
    delivery = Delivery.objects.get(pk=pk)
    assert delivery.channel == ch and delivery.event_type == "backup.failed" and delivery.status == "pending"
    notice = delivery.payload["notice"]
    assert notice["title"] == "Backup failed: shop on pg-main"
    assert notice["error"] == 'pg_dump: error: database "shop" does not exist'
    assert notice["facts"]["Job"] == "nightly" and notice["facts"]["Server"] == "pg-main"
    assert notice["link"] == f"https://backups.example.com/admin/backups/backup/{notice['data']['backup_id']}/change/"
    assert notice["timestamp"] and notice["tenant"] == "alpha"
    text = delivery.payload["message"]["text"]
    assert "does not exist" in text and "Backup failed" in text


def test_subscriptions_levels_and_enabled_flag_choose_the_channels(tenant_a, failed_backup):
    wants = channel(tenant_a, "wants")
    channel(tenant_a, "successes-only", event_types=["backup.completed"])
    channel(tenant_a, "critical-only", min_level="critical")
    channel(tenant_a, "off", is_enabled=False)
    ids = deliveries.route_event(event_id=failed_backup().pk)
    assert [Delivery.objects.get(pk=pk).channel for pk in ids] == [wants]


def test_job_flags_decide_whether_its_runs_reach_channels(tenant_a, failed_backup):
    channel(tenant_a, event_types=["backup.failed", "backup.completed"])
    job = failed_backup.job
    assert deliveries.route_event(event_id=failed_backup(status="completed").pk) == []  # on_success defaults off
    schedule_services.job_update(job=job, notifications={"on_success": True, "on_failure": False})
    assert len(deliveries.route_event(event_id=failed_backup(status="completed").pk)) == 1
    assert deliveries.route_event(event_id=failed_backup().pk) == []  # on_failure off
    # The jobs API's run {"notify": true} overrides the job for that run.
    assert len(deliveries.route_event(event_id=failed_backup(options={"notify": True}).pk)) == 1
    schedule_services.job_update(job=job, notifications={"on_success": True, "on_failure": True})
    assert deliveries.route_event(event_id=failed_backup(options={"notify": False}).pk) == []


def test_a_job_failing_ten_times_sends_one_message_then_a_summary(tenant_a, failed_backup, settings):
    settings.NOTIFY_GROUP_WINDOW = 3600
    ch = channel(tenant_a)
    sent = []
    for n in range(10):
        sent += deliveries.route_event(event_id=failed_backup(f"error number {n}").pk)
    assert len(sent) == 1
    assert Delivery.objects.filter(channel=ch, status="suppressed").count() == 9
    group = NotificationGroup.objects.get(channel=ch)
    assert group.suppressed == 9 and deliveries.group_summary_send(group_id=group.pk) is None  # window still open
    NotificationGroup.objects.filter(pk=group.pk).update(window_ends_at=timezone.now() - timedelta(seconds=1))
    summary = Delivery.objects.get(pk=deliveries.group_summary_send(group_id=group.pk))
    assert summary.payload["notice"]["title"].startswith("Repeated 9 more time(s): Backup failed")
    assert summary.payload["notice"]["error"] == "error number 9"
    assert deliveries.group_summary_send(group_id=group.pk) is None  # sent once
    # After the window, the next failure is a message of its own again.
    assert len(deliveries.route_event(event_id=failed_backup().pk)) == 1


def test_other_jobs_are_not_grouped_together(tenant_a, failed_backup):
    channel(tenant_a)
    other = schedule_services.job_create(
        tenant=tenant_a,
        name="other",
        server=failed_backup.job.server,
        database_name="shop",
        schedule_type="custom",
        cron_expression="0 4 * * *",
    )
    first = deliveries.route_event(event_id=failed_backup().pk)
    second = deliveries.route_event(event_id=failed_backup(job=other).pk)
    assert len(first) == len(second) == 1


def test_cleanup_done_is_sent_when_asked_for(tenant_a, settings):
    channel(tenant_a, event_types=["cleanup.completed"])
    for asked in (False, True):
        op = operation_create(tenant=tenant_a, kind="cleanup", details={"notify_on_completion": asked})
        event = emit(
            action="cleanup_complete",
            tenant=tenant_a,
            resource_type="operation",
            resource_id=op.public_id,
            details={"removed": 3, "space_freed_bytes": 100, "failed": 0, "skipped": 0},
        )
        assert len(deliveries.route_event(event_id=event.pk)) == int(asked)


def test_acronis_outage_is_told_once_and_its_end_too(tenant_a):
    from acronis import services as acronis_services
    from acronis.errors import AcronisError

    error = AcronisError("Acronis cannot be reached")
    for _ in range(3):
        acronis_services.poll_outcome_record(tenant=tenant_a, error=error)
    acronis_services.poll_outcome_record(tenant=tenant_a, error=None)
    acronis_services.poll_outcome_record(tenant=tenant_a, error=None)
    actions = list(
        AuditEvent.objects.filter(tenant=tenant_a, action__startswith="acronis_")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["acronis_disconnected", "acronis_reconnected"]
    channel(tenant_a)
    event = AuditEvent.objects.get(action="acronis_disconnected")
    [pk] = deliveries.route_event(event_id=event.pk)
    assert Delivery.objects.get(pk=pk).payload["notice"]["title"] == "Acronis disconnected"


def test_notifiable_events_reach_the_socket_as_notification(
    tenant_a, failed_backup, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    name = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(tenant_group(tenant_a.pk), name)
    with django_capture_on_commit_callbacks(execute=True):
        failed_backup()
    events = []
    while not any(e.get("type") == "notification" for e in events):
        events.append(async_to_sync(layer.receive)(name)["event"])
    note = next(e for e in events if e["type"] == "notification")
    assert note["level"] == "error" and note["event"] == "backup.failed"
    assert note["message"].startswith("The backup 'shop_1' of shop on pg-main failed")
    assert note["details"]["error"] == 'pg_dump: error: database "shop" does not exist'
