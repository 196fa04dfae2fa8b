"""End to end with a real Celery worker, a live ASGI server and real receivers on loopback:
a failed backup reaches Slack (an HTTP receiver), e-mail (aiosmtpd), a signed webhook, the
socket and /metrics; repeats are grouped; retries ride out 503s; a receiver down past the
give-up time leaves a failed delivery in the API and the admin, and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import websockets
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from audit.models import Delivery, NotificationChannel
from backups import services as backup_services
from backups.services.backups import backup_run, backup_start
from backups.services.servers import server_check_health
from tests.e2e.conftest import PG, needs_pg, pg_server_row  # noqa: F401
from tests.ws.test_live_server import live_asgi  # noqa: F401

from .conftest import wait_for
from .test_webhooks_api import readme_verify

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
TOKEN = "e2e-metrics-token"
MISSING_DB = "bp_no_such_database_e2e"


class SocketRecorder:
    """Keeps every event a real ``/ws`` connection receives, in a thread of its own."""

    def __init__(self, url: str) -> None:
        self.url, self.events, self.ready, self.stopped = url, [], threading.Event(), False
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        assert self.ready.wait(15), "the socket did not connect"

    async def _run(self) -> None:
        async with websockets.connect(self.url) as ws:
            self.ready.set()
            while not self.stopped:
                try:
                    self.events.append(json.loads(await asyncio.wait_for(ws.recv(), 0.3)))
                except TimeoutError:
                    continue

    def stop(self) -> None:
        self.stopped = True
        self.thread.join(5)


@pytest.fixture
def local_storage(tenant_a, tmp_path):
    return backup_services.storage_create(
        tenant=tenant_a, name="disk", type="local", is_default=True, configuration={"path": str(tmp_path / "store")}
    )


@needs_pg
def test_a_failed_backup_reaches_every_channel_the_socket_and_metrics(
    api,
    admin_a,
    operator_a,
    tenant_a,
    pg_server_row,  # noqa: F811
    local_storage,
    receiver,
    smtp_receiver,
    worker,
    live_asgi,  # noqa: F811
    settings,
):
    settings.METRICS_TOKEN = TOKEN
    client = api(admin_a)
    assert (
        client.post(
            "/api/v1/notifications/channels",
            {
                "name": "Slack Alerts",
                "type": "slack",
                "config": {"webhook_url": f"{receiver.url}/services/T000/B000/XXXX", "channel": "#alerts"},
            },
            format="json",
        ).status_code
        == 201
    )
    assert (
        client.post(
            "/api/v1/notifications/channels",
            {
                "name": "On call",
                "type": "email",
                "config": {
                    "to": ["oncall@example.com"],
                    "from_email": "backups@example.com",
                    "smtp_host": smtp_receiver.host,
                    "smtp_port": smtp_receiver.port,
                    "smtp_security": "none",
                },
            },
            format="json",
        ).status_code
        == 201
    )
    hook = client.post(
        "/api/v1/webhooks", {"url": f"{receiver.url}/hook", "event_types": ["backup.failed"]}, format="json"
    ).json()["data"]
    socket = SocketRecorder(f"ws://{live_asgi}/ws?token={AccessToken.for_user(admin_a)}")
    console = SocketRecorder(f"ws://{live_asgi}/ws/backup/notifications?token={AccessToken.for_user(admin_a)}")
    try:
        response = api(operator_a).post(
            "/api/v1/backups", {"server_id": pg_server_row.pk, "database_name": MISSING_DB}, format="json"
        )
        assert response.status_code in (200, 201, 202), response.content
        backup_id = response.json()["id"]

        [slack] = receiver.wait_for("/services/T000/B000/XXXX")
        text = slack.json()["text"]
        assert "Backup failed" in text and MISSING_DB in text and "does not exist" in text
        assert slack.json()["channel"] == "#alerts"
        link = f"https://backups.example/admin/backups/backup/{backup_id}/change/"
        assert link in json.dumps(slack.json()["blocks"])

        [mail] = smtp_receiver.wait_for(1)
        assert mail.rcpt_tos == ["oncall@example.com"]
        assert b"Backup failed" in mail.content and b"does not exist" in mail.content

        [delivery] = receiver.wait_for("/hook")
        verify = readme_verify()
        signature = delivery.headers["x-webhook-signature"]
        assert verify(hook["secret"], delivery.body, signature)
        assert not verify(hook["secret"], delivery.body.replace(b"does not exist", b"does exist"), signature)
        assert delivery.json()["type"] == "backup.failed" and delivery.json()["data"]["backup_id"] == backup_id

        def socket_saw(kind: str, **match) -> bool:
            return any(e.get("type") == kind and all(e.get(k) == v for k, v in match.items()) for e in socket.events)

        wait_for(
            lambda: (
                socket_saw("notification", event="backup.failed") and socket_saw("backup_failed", backup_id=backup_id)
            )
        )
        note = next(e for e in socket.events if e.get("type") == "notification")
        assert note["level"] == "error" and "does not exist" in note["details"]["error"]
        # The console's notification socket: the seed's backup_failed toast, with the error.
        failed = wait_for(lambda: next((e for e in console.events if e.get("type") == "backup_failed"), None))
        assert failed["backup_id"] == backup_id and "does not exist" in failed["error"]
    finally:
        socket.stop()
        console.stop()
    wait_for(lambda: Delivery.objects.filter(status="delivered").count() == 3)
    metrics = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert 'backupplatform_backups{status="failed",tenant="alpha"} 1.0' in metrics
    assert 'backupplatform_notification_deliveries{status="delivered",tenant="alpha"} 3.0' in metrics


@needs_pg
def test_the_same_job_failing_ten_times_sends_one_message_and_a_summary(
    tenant_a,
    pg_server_row,  # noqa: F811
    local_storage,
    receiver,
    worker,
    settings,
):
    from schedules import services as schedule_services

    job = schedule_services.job_create(
        tenant=tenant_a,
        name="every-5-min",
        server=pg_server_row,
        database_name=MISSING_DB,
        storage=local_storage,
        schedule_type="custom",
        cron_expression="*/5 * * * *",
    )
    NotificationChannel.objects.create(
        tenant=tenant_a, name="slack", type="slack", config={"webhook_url": f"{receiver.url}/slack"}
    )
    for _ in range(10):
        op = backup_start(
            tenant=tenant_a, server=pg_server_row, database_name=MISSING_DB, storage=local_storage, job=job, queue=False
        )
        backup_run(operation_id=op.pk)
    messages = receiver.wait_for("/slack", 2, timeout=90)
    first, summary = (m.json()["text"] for m in messages)
    assert "Backup failed" in first and "does not exist" in first
    assert summary.startswith("Repeated 9 more time(s): Backup failed")
    assert Delivery.objects.filter(status="suppressed").count() == 9
    time.sleep(2)  # nothing else trickles in after the summary
    assert len(receiver.on("/slack")) == 2


def _server_down_event(tenant, closed_port, name: str):
    server = backup_services.server_create(tenant=tenant, name=name, type="docker", host="127.0.0.1", port=closed_port)
    assert server_check_health(server=server)  # unknown -> unhealthy: the server.down event
    return server


def test_a_receiver_answering_503_twice_gets_the_message_on_the_third_attempt(tenant_a, receiver, worker, closed_port):
    NotificationChannel.objects.create(
        tenant=tenant_a, name="hook", type="webhook", config={"url": f"{receiver.url}/flaky"}
    )
    receiver.answer((503, {"Retry-After": "1"}), (503, {"Retry-After": "1"}), 200)
    _server_down_event(tenant_a, closed_port, "db-1")
    attempts = receiver.wait_for("/flaky", 3)
    assert len({r.body for r in attempts}) == 1  # the same message each time
    delivery = wait_for(lambda: Delivery.objects.filter(status="delivered").first())
    assert delivery.attempts == 3 and delivery.last_status_code == 200 and delivery.event_type == "server.down"
    assert attempts[0].json()["title"].startswith("Server down: db-1")


def test_a_receiver_down_past_the_give_up_time_leaves_a_visible_failure_and_loses_nothing(
    api, admin_a, superuser, tenant_a, receiver, worker, closed_port
):
    channel = NotificationChannel.objects.create(
        tenant=tenant_a, name="hook", type="webhook", config={"url": f"{receiver.url}/down"}
    )
    receiver.down()
    _server_down_event(tenant_a, closed_port, "db-1")
    failed = wait_for(lambda: Delivery.objects.filter(status="failed").first(), timeout=60)
    assert failed.attempts >= 2 and failed.last_status_code == 503 and "gave up after" in failed.last_error
    detail = api(admin_a).get(f"/api/v1/notifications/channels/{channel.pk}").json()
    assert detail["status"] == "failing" and detail["consecutive_failures"] == 1
    assert detail["recent_deliveries"][0]["status"] == "failed"
    assert detail["recent_deliveries"][0]["id"] == failed.public_id
    admin = Client()
    admin.force_login(superuser)
    page = admin.get("/admin/audit/delivery/?status__exact=failed").content.decode()
    assert failed.public_id in page
    assert "FAILING since" in admin.get("/admin/audit/notificationchannel/").content.decode()

    # A second event while the receiver is still down, which comes back before the give-up time.
    _server_down_event(tenant_a, closed_port, "db-2")
    second = wait_for(lambda: Delivery.objects.filter(status="retrying").first())
    receiver.up()
    wait_for(lambda: Delivery.objects.filter(pk=second.pk, status="delivered").exists())
    got = [r.json()["title"] for r in receiver.on("/down") if r.json()["title"].startswith("Server down: db-2")]
    assert got, "the message held back while the receiver was down was delivered"
    assert set(Delivery.objects.values_list("status", flat=True)) == {"failed", "delivered"}
    channel.refresh_from_db()
    assert channel.failing_since is None and channel.is_enabled  # flagged, never disabled; cleared now
