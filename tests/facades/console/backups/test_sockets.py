"""system-backup-recovery.rst "WebSocket API": the seed's messages on /ws/backup/updates,
/notifications and /health, for the caller's tenant only, and at most 3 sockets per user."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from audit.services import publish
from backupplatform.asgi import application
from backupplatform.facades.console import sockets
from backups.models import Storage
from backups.services.backups import backup_run, backup_start
from schedules import services as schedule_services
from tenants.models import Role
from tests.conftest import make_member

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def open_socket(user, route: str, query: str = ""):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(user)))()
    communicator = WebsocketCommunicator(application, f"/ws/backup/{route}?token={token}{query}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def receive_until(communicator, kind: str, timeout: float = 10) -> list[dict]:
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        messages.append(message)
        if message["type"] == kind:
            return messages


async def test_updates_and_notifications_follow_a_backup_in_the_seeds_shapes(
    admin_a, admin_b, tenant_a, components_a, storage_a
):
    updates, notifications = await open_socket(admin_a, "updates"), await open_socket(admin_a, "notifications")
    theirs = await open_socket(admin_b, "updates")
    op = await database_sync_to_async(backup_start)(
        tenant=tenant_a, application=components_a, storage=storage_a, name="pre_maintenance_backup", queue=False
    )
    await database_sync_to_async(backup_run)(operation_id=op.pk)
    progress = []
    while not progress or progress[-1]["status"] != "completed":
        progress.append(await updates.receive_json_from(timeout=10))
    assert {m["type"] for m in progress} == {"backup_progress"}  # no audit or start events here
    assert all(m["job_id"] == op.public_id and m["backup_id"] == op.backup_id for m in progress)
    percents = [m["progress"] for m in progress]
    assert percents == sorted(percents) and percents[-1] == 100
    last = progress[-1]
    assert last["processed_bytes"] > 0 and last["processed"].endswith("B") and "current_step" in last and "eta" in last

    done = (await receive_until(notifications, "backup_completed"))[-1]
    assert done["backup_id"] == op.backup_id and done["name"] == "pre_maintenance_backup"
    assert done["size_bytes"] > 0 and done["size"].endswith("B")
    assert done["duration"].count(":") == 2 and done["duration_seconds"] >= 0 and done["timestamp"].endswith("Z")
    assert await theirs.receive_nothing(timeout=0.3)
    for communicator in (updates, notifications, theirs):
        await communicator.disconnect()


async def test_notifications_carry_storage_alerts_and_schedule_events(admin_a, tenant_a, components_a, storage_a):
    notifications = await open_socket(admin_a, "notifications")
    # A storage past its threshold (the alert the storage layer publishes).
    await database_sync_to_async(publish)(
        tenant_id=tenant_a.pk,
        stream="notifications",
        event={
            "type": "storage_alert",
            "level": "warning",
            "storage": "disk",
            "storage_id": storage_a.pk,
            "message": "Storage usage at 80%",
            "threshold": 80,
            "used": "8.0 GB",
            "available": "2.0 GB",
            "total": "10 GB",
            "used_bytes": 8_000_000_000,
        },
    )
    alert = await notifications.receive_json_from(timeout=5)
    assert alert["type"] == "storage_alert" and alert["level"] == "warning" and alert["storage"] == "disk"
    assert alert["message"] == "Storage usage at 80%" and alert["used"] == "8.0 GB"
    assert alert["used_bytes"] == 8_000_000_000 and alert["available"] == "2.0 GB" and alert["total"] == "10 GB"

    job = await database_sync_to_async(schedule_services.job_create)(
        tenant=tenant_a,
        name="nightly",
        application=components_a,
        storage=storage_a,
        schedule_type="hourly",
        public_id="schedule_nightly",
    )
    await database_sync_to_async(schedule_services.job_run)(job=job, trigger="scheduled", queue=False)
    event = (await receive_until(notifications, "schedule_event"))[-1]
    assert event["event"] == "execution_started" and event["schedule_id"] == "schedule_nightly"
    assert event["backup_id"] and event["timestamp"].endswith("Z")
    await notifications.disconnect()


async def test_health_is_sent_on_connect_and_when_it_changes(admin_a, tenant_a, backup_a, storage_a, settings):
    settings.CONSOLE_WS_HEALTH_POLL = 0.2
    settings.CONSOLE_WS_HEALTH_INTERVAL = 3600
    health = await open_socket(admin_a, "health")
    first = {m["type"]: m for m in [await health.receive_json_from(timeout=10) for _ in range(3)]}
    assert set(first) == {"storage_health", "service_status", "connectivity_status"}
    assert first["storage_health"]["local"]["health"] == "good"
    assert first["storage_health"]["local"]["used_bytes"] == backup_a.stored_bytes
    assert first["service_status"]["encryption"] == "enabled" and first["service_status"]["scheduler"] in (
        "idle",
        "running",
        "stopped",
    )
    assert await health.receive_nothing(timeout=1.5)  # nothing changed: nothing sent

    await database_sync_to_async(Storage.objects.filter(pk=storage_a.pk).update)(
        last_test_ok=False, last_test_message="disk unplugged"
    )
    changed = await health.receive_json_from(timeout=10)
    assert changed["type"] == "storage_health" and changed["local"]["health"] == "offline"
    service = await health.receive_json_from(timeout=10)
    assert service["type"] == "service_status" and service["backup_system"] == "failing"
    assert any(a["code"] == "storage_unreachable" for a in service["alerts"])
    await health.disconnect()


async def test_health_steady_interval_resends_unchanged_figures(admin_a, tenant_a, storage_a, settings):
    settings.CONSOLE_WS_HEALTH_POLL = 0.2
    settings.CONSOLE_WS_HEALTH_INTERVAL = 0.5
    health = await open_socket(admin_a, "health")
    first = [await health.receive_json_from(timeout=10) for _ in range(3)]
    again = [await health.receive_json_from(timeout=10) for _ in range(3)]
    assert [m["type"] for m in again] == [m["type"] for m in first]
    assert {k: v for k, v in again[0].items() if k != "timestamp"} == {
        k: v for k, v in first[0].items() if k != "timestamp"
    }
    await health.disconnect()


async def test_health_of_a_user_in_two_workspaces_needs_one_named(admin_a, tenant_a, tenant_b):
    await database_sync_to_async(lambda: tenant_b.memberships.create(user=admin_a, role=Role.VIEWER))()
    unnamed = await open_socket(admin_a, "health")
    assert await unnamed.receive_output(timeout=5) == {"type": "websocket.close", "code": 4400}
    named = await open_socket(admin_a, "health", "&workspace=bravo")
    assert {(await named.receive_json_from(timeout=10))["type"] for _ in range(3)} == {
        "storage_health",
        "service_status",
        "connectivity_status",
    }
    await named.disconnect()


async def test_a_fourth_socket_of_a_user_is_closed_with_4429(admin_a, tenant_a):
    opened = [await open_socket(admin_a, route) for route in ("updates", "notifications", "updates")]
    fourth = await open_socket(admin_a, "notifications")
    assert await fourth.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    await opened[0].disconnect()
    again = await open_socket(admin_a, "updates")
    assert await again.receive_nothing(timeout=0.5)  # counted again: a place was free
    for communicator in (again, *opened[1:]):
        await communicator.disconnect()
    other = await database_sync_to_async(make_member)(tenant_a, "other-admin", Role.ADMIN)
    assert await (await open_socket(other, "updates")).receive_nothing(timeout=0.3)  # per user


async def test_the_count_is_shared_by_every_process(admin_a, tenant_a):
    """Sockets held by other server processes count too: the places are in Redis."""
    principal = sockets.principal_of(admin_a)
    for n in range(3):
        assert await asyncio.to_thread(sockets.slot_take, principal, f"other-process-{n}", limit=3)
    refused = await open_socket(admin_a, "updates")
    assert await refused.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    await asyncio.to_thread(sockets.slot_release, principal, "other-process-0")
    accepted = await open_socket(admin_a, "updates")
    assert await accepted.receive_nothing(timeout=0.5)
    await accepted.disconnect()


async def test_unauthenticated_console_socket_is_closed_with_4401(db):
    communicator = WebsocketCommunicator(application, "/ws/backup/updates")
    connected, _ = await communicator.connect(timeout=5)
    assert connected and await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize("route", ["updates", "notifications", "health"])
async def test_a_user_who_loses_access_is_cut_off(admin_a, viewer_a, tenant_a, route, settings):
    from tenants import services as tenant_services

    settings.CONSOLE_WS_HEALTH_INTERVAL = 3600
    communicator = await open_socket(viewer_a, route)
    if route == "health":  # its three messages on connect
        [await communicator.receive_json_from(timeout=10) for _ in range(3)]
    else:
        await database_sync_to_async(publish)(
            tenant_id=tenant_a.pk,
            stream="notifications",
            event={"type": "storage_alert", "level": "warning", "storage": "disk", "message": "before"},
        )
        await database_sync_to_async(publish)(
            tenant_id=tenant_a.pk,
            event={"type": "backup_progress", "job_id": "JOB-1", "progress": 5, "status": "in_progress"},
        )
        assert (await communicator.receive_json_from(timeout=5))["type"] in ("storage_alert", "backup_progress")

    @database_sync_to_async
    def remove():
        tenant_services.member_remove(membership=viewer_a.memberships.get(tenant=tenant_a), actor=admin_a)

    await remove()
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4403}
    await database_sync_to_async(publish)(
        tenant_id=tenant_a.pk,
        stream="notifications",
        event={"type": "storage_alert", "level": "warning", "storage": "disk", "message": "after"},
    )
    assert await communicator.receive_nothing(timeout=0.5)
