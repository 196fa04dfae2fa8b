"""Notification channels through the platform facade (db-backup-platform.md "Notifications"):
secrets write-only everywhere, encrypted at rest, roles, tenant isolation, bad input, and a
test message that really goes out and reports what the receiver answered."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from audit import notifications
from audit.models import AuditEvent, Delivery, NotificationChannel

pytestmark = pytest.mark.django_db

SEED_URL = "https://hooks.slack.com/services/YOUR/WEBHOOK/URL"
SEED_BODY = {
    "name": "Slack Alerts",
    "type": "slack",
    "config": {"webhook_url": SEED_URL, "channel": "#alerts"},
    "is_enabled": True,
}


def test_the_seeds_webhook_url_never_comes_back(api, admin_a, viewer_a):
    client = api(admin_a)
    created = client.post("/api/v1/notifications/channels", SEED_BODY, format="json")
    assert created.status_code == 201, created.content
    channel = created.json()
    assert channel["config"] == {"webhook_url": "[HIDDEN]", "channel": "#alerts"}
    assert channel["event_types"] == [] and channel["status"] == "ok"
    pk = channel["id"]
    bodies = [
        created.content,
        client.get("/api/v1/notifications/channels").content,
        api(viewer_a).get(f"/api/v1/notifications/channels/{pk}").content,
        client.put(f"/api/v1/notifications/channels/{pk}", {"config": {"channel": "#ops"}}, format="json").content,
        client.get("/api/v1/audit/logs").content,
    ]
    export = client.get("/api/v1/audit/export?format=csv")
    bodies.append(b"".join(export.streaming_content))
    for body in bodies:
        assert b"hooks.slack.com" not in body and b"YOUR/WEBHOOK" not in body
    stored = NotificationChannel.objects.get(pk=pk)
    assert stored.config == {"webhook_url": SEED_URL, "channel": "#ops"}  # the secret was kept
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM audit_notificationchannel WHERE id = %s", [pk])
        raw = cursor.fetchone()[0]
    assert "hooks.slack.com" not in raw and raw.startswith("gAAAA")  # Fernet, encrypted at rest
    assert AuditEvent.objects.filter(action="notification_channel_create").exists()
    assert not any("hooks.slack.com" in json.dumps(e.details) for e in AuditEvent.objects.all())


def test_list_is_a_plain_array_of_the_workspaces_channels(api, admin_a, admin_b, tenant_b):
    notifications.channel_create(tenant=tenant_b, name="theirs", type="slack", config={"webhook_url": SEED_URL})
    api(admin_a).post("/api/v1/notifications/channels", SEED_BODY, format="json")
    listed = api(admin_a).get("/api/v1/notifications/channels").json()
    assert [c["name"] for c in listed] == ["Slack Alerts"]
    assert {"id", "name", "type", "is_enabled", "created_at"} <= set(listed[0])


@pytest.mark.parametrize(
    "body, field",
    [
        ({**SEED_BODY, "type": "pager"}, "type"),
        ({**SEED_BODY, "config": {}}, "webhook_url"),
        ({**SEED_BODY, "config": {"webhook_url": "ftp://example.com/x"}}, "webhook_url"),
        ({**SEED_BODY, "config": {"webhook_url": "http://169.254.169.254/latest/meta-data"}}, "webhook_url"),
        ({**SEED_BODY, "config": {"webhook_url": "https://user:pw@example.com/x"}}, "webhook_url"),
        ({**SEED_BODY, "config": {"webhook_url": SEED_URL, "colour": "red"}}, "colour"),
        ({**SEED_BODY, "event_types": ["backup.exploded"]}, "event_types"),
        ({**SEED_BODY, "min_level": "loud"}, "min_level"),
        ({**SEED_BODY, "config": "https://example.com"}, "config"),
        ({**SEED_BODY, "is_enabled": "yes"}, "is_enabled"),
        ({"name": "m", "type": "email", "config": {"to": ["not-an-address"]}}, "to"),
        (
            {"name": "m", "type": "email", "config": {"to": ["ops@example.com"], "smtp_host": "169.254.169.254"}},
            "smtp_host",
        ),
        ({"name": "t", "type": "telegram", "config": {"bot_token": "123:abc"}}, "chat_id"),
    ],
)
def test_bad_channels_are_422_and_nothing_is_stored(api, admin_a, body, field):
    response = api(admin_a).post("/api/v1/notifications/channels", body, format="json")
    assert response.status_code == 422, response.content
    assert field in json.dumps(response.json()["detail"])
    assert not NotificationChannel.objects.exists()


def test_private_targets_follow_the_operators_allowed_networks(api, admin_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    body = {**SEED_BODY, "config": {"webhook_url": "http://127.0.0.1:9/hook"}}
    assert api(admin_a).post("/api/v1/notifications/channels", body, format="json").status_code == 422
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert api(admin_a).post("/api/v1/notifications/channels", body, format="json").status_code == 201


def test_roles_viewers_read_admins_manage(api, tenant_a, operator_a, viewer_a):
    channel = notifications.channel_create(tenant=tenant_a, name="c", type="slack", config={"webhook_url": SEED_URL})
    for user in (operator_a, viewer_a):
        client = api(user)
        assert client.get("/api/v1/notifications/channels").status_code == 200
        assert client.post("/api/v1/notifications/channels", SEED_BODY, format="json").status_code == 403
        assert (
            client.put(f"/api/v1/notifications/channels/{channel.pk}", {"name": "x"}, format="json").status_code == 403
        )
        assert client.delete(f"/api/v1/notifications/channels/{channel.pk}").status_code == 403
        assert client.post("/api/v1/notifications/test", {"channel_id": channel.pk}, format="json").status_code == 403
    assert NotificationChannel.objects.get().name == "c" and not Delivery.objects.exists()


def test_another_tenants_channel_is_404_everywhere(api, tenant_a, admin_b):
    channel = notifications.channel_create(tenant=tenant_a, name="c", type="slack", config={"webhook_url": SEED_URL})
    client = api(admin_b)
    for method, url, body in (
        ("get", f"/api/v1/notifications/channels/{channel.pk}", None),
        ("put", f"/api/v1/notifications/channels/{channel.pk}", {"name": "x"}),
        ("delete", f"/api/v1/notifications/channels/{channel.pk}", None),
        ("post", "/api/v1/notifications/test", {"channel_id": channel.pk}),
    ):
        assert getattr(client, method)(url, body, format="json").status_code == 404, (method, url)
    assert NotificationChannel.objects.get().name == "c" and not Delivery.objects.exists()


def test_update_and_delete(api, admin_a, tenant_a):
    client = api(admin_a)
    pk = client.post("/api/v1/notifications/channels", SEED_BODY, format="json").json()["id"]
    changed = client.put(
        f"/api/v1/notifications/channels/{pk}",
        {"name": "Ops", "is_enabled": False, "event_types": ["backup.failed", "server.down"], "min_level": "error"},
        format="json",
    )
    assert changed.status_code == 200
    assert changed.json()["event_types"] == ["backup.failed", "server.down"] and not changed.json()["is_enabled"]
    assert client.put(f"/api/v1/notifications/channels/{pk}", {"type": "discord"}, format="json").status_code == 422
    retyped = client.put(
        f"/api/v1/notifications/channels/{pk}",
        {"type": "discord", "config": {"webhook_url": "https://discord.com/api/webhooks/1/abc"}},
        format="json",
    )
    assert retyped.json()["config"] == {"webhook_url": "[HIDDEN]"}
    assert client.delete(f"/api/v1/notifications/channels/{pk}").status_code == 204
    assert client.get(f"/api/v1/notifications/channels/{pk}").status_code == 404


# --- POST /notifications/test ---------------------------------------------------------------------


def test_test_message_reaches_the_receiver_and_reports_its_status(api, admin_a, receiver):
    client = api(admin_a)
    pk = client.post(
        "/api/v1/notifications/channels",
        {"name": "hook", "type": "slack", "config": {"webhook_url": f"{receiver.url}/services/T/B/X"}},
        format="json",
    ).json()["id"]
    response = client.post(
        "/api/v1/notifications/test", {"channel_id": pk, "message": "Hello from the test"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["status_code"] == 200
    sent = receiver.on("/services/T/B/X")
    assert len(sent) == 1 and "Hello from the test" in sent[0].json()["text"]
    receiver.answer(500)
    failed = client.post("/api/v1/notifications/test", {"channel_id": pk}, format="json").json()
    assert failed["success"] is False and failed["status_code"] == 500 and "HTTP 500" in failed["message"]
    assert receiver.url not in failed["message"]
    detail = client.get(f"/api/v1/notifications/channels/{pk}").json()
    assert [d["status"] for d in detail["recent_deliveries"]] == ["failed", "delivered"]
    assert detail["recent_deliveries"][0]["last_status_code"] == 500


def test_test_email_reports_the_smtp_servers_reply(api, admin_a, smtp_receiver):
    client = api(admin_a)
    pk = client.post(
        "/api/v1/notifications/channels",
        {
            "name": "mail",
            "type": "email",
            "config": {
                "to": ["ops@example.com"],
                "from_email": "backups@example.com",
                "smtp_host": smtp_receiver.host,
                "smtp_port": smtp_receiver.port,
                "smtp_security": "none",
            },
        },
        format="json",
    ).json()["id"]
    body = client.post("/api/v1/notifications/test", {"channel_id": pk, "message": "mail check"}, format="json").json()
    assert body["success"] is True and body["status_code"] == 250 and "queued as TEST123" in body["message"]
    envelope = smtp_receiver.wait_for(1)[0]
    assert envelope.rcpt_tos == ["ops@example.com"] and b"mail check" in envelope.content


def test_test_to_a_closed_port_is_a_reported_failure(api, admin_a, closed_port):
    client = api(admin_a)
    pk = client.post(
        "/api/v1/notifications/channels",
        {"name": "w", "type": "webhook", "config": {"url": f"http://127.0.0.1:{closed_port}/x"}},
        format="json",
    ).json()["id"]
    body = client.post("/api/v1/notifications/test", {"channel_id": pk}, format="json").json()
    assert body["success"] is False and body["status_code"] is None and "ConnectError" in body["message"]


@pytest.mark.parametrize(
    "body", [{}, {"channel_id": "1"}, {"channel_id": 1, "message": 5}, {"channel_id": 1, "extra": True}]
)
def test_bad_test_requests_are_422(api, admin_a, body):
    assert api(admin_a).post("/api/v1/notifications/test", body, format="json").status_code == 422


def test_the_network_policy_is_checked_again_when_sending(api, admin_a, receiver, settings):
    client = api(admin_a)
    pk = client.post(
        "/api/v1/notifications/channels",
        {"name": "w", "type": "webhook", "config": {"url": f"{receiver.url}/x"}},
        format="json",
    ).json()["id"]
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # the operator closed loopback since
    body = client.post("/api/v1/notifications/test", {"channel_id": pk}, format="json").json()
    assert body["success"] is False and "network policy" in body["message"]
    assert receiver.requests == []


def test_redirects_are_not_followed(api, admin_a, receiver):
    client = api(admin_a)
    pk = client.post(
        "/api/v1/notifications/channels",
        {"name": "w", "type": "webhook", "config": {"url": f"{receiver.url}/x"}},
        format="json",
    ).json()["id"]
    receiver.answer((302, {"Location": f"{receiver.url}/elsewhere"}))
    body = client.post("/api/v1/notifications/test", {"channel_id": pk}, format="json").json()
    assert body["success"] is False and body["status_code"] == 302 and "not followed" in body["message"]
    assert receiver.on("/elsewhere") == []
