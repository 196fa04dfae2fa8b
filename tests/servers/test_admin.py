"""Admin for servers and storages: secrets never rendered, test actions call the services."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from backups import services
from backups.models import Server, Storage

pytestmark = pytest.mark.django_db

SECRET = "Adm1n-S3cret-value"


@pytest.fixture
def client(superuser):
    c = Client()
    c.force_login(superuser)
    return c


def test_server_admin_never_renders_secrets_and_keeps_them(client, tenant_a, closed_port):
    server = services.server_create(
        tenant=tenant_a,
        name="db",
        type="postgresql",
        host="127.0.0.1",
        port=closed_port,
        credentials={"username": "u", "password": SECRET},
    )
    page = client.get(f"/admin/backups/server/{server.pk}/change/")
    assert page.status_code == 200 and SECRET.encode() not in page.content
    response = client.post(
        f"/admin/backups/server/{server.pk}/change/",
        {
            "tenant": tenant_a.pk,
            "name": "db2",
            "type": "postgresql",
            "host": "127.0.0.1",
            "port": closed_port,
            "tags": "{}",
            "username": "u",
            "password": "",
            "ssh_key": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    server.refresh_from_db()
    assert server.name == "db2" and server.credentials == {"username": "u", "password": SECRET}
    assert AuditEvent.objects.filter(action="server_update", resource_id=str(server.pk)).exists()


def test_test_connection_action_reports_and_audits(client, tenant_a, closed_port):
    server = services.server_create(tenant=tenant_a, name="db", type="postgresql", host="127.0.0.1", port=closed_port)
    response = client.post(
        "/admin/backups/server/", {"action": "test_connection", "_selected_action": [server.pk]}, follow=True
    )
    assert b"Connection refused" in response.content
    assert AuditEvent.objects.filter(action="server_test_connection").count() == 1
    assert Server.objects.get(pk=server.pk).health_status == "unhealthy"


def test_storage_admin_test_action_and_hidden_credentials(client, tenant_a, tmp_path):
    storage = services.storage_create(
        tenant=tenant_a,
        name="st",
        type="local",
        configuration={"path": str(tmp_path)},
        credentials={"password": SECRET},
    )
    page = client.get(f"/admin/backups/storage/{storage.pk}/change/")
    assert page.status_code == 200 and SECRET.encode() not in page.content and b"[HIDDEN]" in page.content
    response = client.post(
        "/admin/backups/storage/", {"action": "test_storage", "_selected_action": [storage.pk]}, follow=True
    )
    assert b"Wrote, read back and deleted" in response.content
    assert Storage.objects.get(pk=storage.pk).last_test_ok is True
    assert AuditEvent.objects.filter(action="storage_test", resource_id=str(storage.pk)).exists()


def test_storage_admin_validates_configuration(client, tenant_a):
    response = client.post(
        "/admin/backups/storage/add/",
        {
            "tenant": tenant_a.pk,
            "name": "bad",
            "type": "local",
            "status": "active",
            "path": "rel",
            "labels": "",
            "price_per_gb_month": "0.02",
        },
    )
    assert response.status_code == 200 and b"Path must be absolute" in response.content
    assert not Storage.objects.filter(name="bad").exists()


def test_application_admin_lists_sources_inline(client, tenant_a):
    app = services.application_create(
        tenant=tenant_a, name="web", sources=[{"type": "path", "path": f"{tenant_a.path_roots[0]}/srv"}]
    )
    page = client.get(f"/admin/backups/application/{app.pk}/change/")
    assert page.status_code == 200 and tenant_a.path_roots[0].encode() + b"/srv" in page.content
