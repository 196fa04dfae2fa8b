"""Webhook subscriptions in the jobs facade (api-layer.md "Webhook support for events"), and
the README's verification snippet against real signed deliveries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from audit import deliveries, notifications
from audit.models import Delivery, Webhook
from audit.services import emit
from backups import services as backup_services

pytestmark = pytest.mark.django_db
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify():
    """The ``verify_webhook`` function exactly as the README shows it."""
    section = README.read_text().split("## Notifications, webhooks, commands and metrics", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify_webhook"]


def test_create_shows_the_secret_once_in_the_jobs_envelope(api, admin_a):
    client = api(admin_a)
    response = client.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/backup", "event_types": ["backup.failed", "backup.completed"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["success"] is True and "shown again" in body["message"]
    secret = body["data"]["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    listed = client.get("/api/v1/webhooks").json()
    assert listed["success"] is True and listed["total"] == 1
    assert listed["data"][0]["event_types"] == ["backup.completed", "backup.failed"]
    for text in (
        client.get("/api/v1/webhooks").content,
        client.get(f"/api/v1/webhooks/{body['data']['id']}").content,
        client.get("/api/v1/audit/logs").content,
    ):
        assert secret.encode() not in text
    deleted = client.delete(f"/api/v1/webhooks/{body['data']['id']}")
    assert deleted.status_code == 200 and deleted.json()["data"]["id"] == body["data"]["id"]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": "https://x.example/h", "event_types": []}, "event_types"),
        ({"url": "https://x.example/h", "event_types": ["backup.exploded"]}, "event_types"),
        ({"url": "https://x.example/h", "event_types": "backup.failed"}, "event_types"),
        ({"url": "ftp://x.example/h", "event_types": ["backup.failed"]}, "url"),
        ({"url": "http://169.254.169.254/h", "event_types": ["backup.failed"]}, "url"),
        ({"url": "http://[fd00:ec2::254]/h", "event_types": ["backup.failed"]}, "url"),
        ({"event_types": ["backup.failed"]}, "url"),
        ({"url": "https://x.example/h", "event_types": ["backup.failed"], "secret": "mine"}, "secret"),
    ],
)
def test_bad_subscriptions_are_validation_errors(api, admin_a, body, field):
    response = api(admin_a).post("/api/v1/webhooks", body, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["success"] is False and payload["error"] == "VALIDATION_ERROR" and field in payload["details"]
    assert not Webhook.objects.exists()


def test_only_admins_and_only_their_workspace(api, tenant_a, operator_a, viewer_a, admin_b):
    webhook, _ = notifications.webhook_create(tenant=tenant_a, url="https://x.example/h", event_types=["backup.failed"])
    for user in (operator_a, viewer_a):
        client = api(user)
        assert client.get("/api/v1/webhooks").status_code == 403
        assert (
            client.post(
                "/api/v1/webhooks", {"url": "https://y.example", "event_types": ["backup.failed"]}, format="json"
            ).status_code
            == 403
        )
        assert client.delete(f"/api/v1/webhooks/{webhook.pk}").status_code == 403
    b = api(admin_b)
    assert b.get("/api/v1/webhooks").json()["data"] == []
    assert b.get(f"/api/v1/webhooks/{webhook.pk}").status_code == 404
    assert b.delete(f"/api/v1/webhooks/{webhook.pk}").status_code == 404
    assert Webhook.objects.filter(pk=webhook.pk).exists()


def test_signed_delivery_verifies_with_the_readme_snippet_and_fails_when_tampered(tenant_a, receiver):
    verify = readme_verify()
    _, secret = notifications.webhook_create(tenant=tenant_a, url=f"{receiver.url}/hook", event_types=["server.down"])
    server = backup_services.server_create(tenant=tenant_a, name="db", type="docker", host="127.0.0.1", port=1)
    event = emit(
        action="server_health_change",
        tenant=tenant_a,
        resource_type="server",
        resource_id=server.pk,
        details={"health_status": "unhealthy", "message": "Connection refused"},
    )
    [delivery_id] = deliveries.route_event(event_id=event.pk)
    assert deliveries.delivery_attempt(delivery_id=delivery_id) is None
    [request] = receiver.on("/hook")
    body = request.json()
    assert body["type"] == "server.down" and body["id"] == request.headers["x-webhook-id"]
    assert body["data"]["server_id"] == server.pk and body["data"]["error"] == "Connection refused"
    signature = request.headers["x-webhook-signature"]
    assert verify(secret, request.body, signature)
    assert not verify(secret, request.body.replace(b"Connection refused", b"Connection accepted"), signature)
    assert not verify("whsec_other", request.body, signature)
    stale = re.sub(r"t=\d+", f"t={int(request.headers['x-webhook-timestamp']) - 600}", signature)
    assert not verify(secret, request.body, stale)
    assert Delivery.objects.get(pk=delivery_id).status == "delivered"
    assert json.loads(request.body) == Delivery.objects.get(pk=delivery_id).payload["body"]


def test_a_webhook_gets_only_its_event_types(tenant_a, receiver):
    notifications.webhook_create(tenant=tenant_a, url=f"{receiver.url}/hook", event_types=["backup.completed"])
    server = backup_services.server_create(tenant=tenant_a, name="db", type="docker", host="127.0.0.1", port=1)
    event = emit(
        action="server_health_change",
        tenant=tenant_a,
        resource_type="server",
        resource_id=server.pk,
        details={"health_status": "unhealthy"},
    )
    assert deliveries.route_event(event_id=event.pk) == []
