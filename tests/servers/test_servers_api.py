"""Servers on the platform facade (db-backup-platform.md "Servers"): CRUD, real connection
tests and database listing, health checks, secrets, isolation and roles."""

from __future__ import annotations

import json
import logging

import pytest

from audit.models import AuditEvent
from backups import services
from backups.models import HealthStatus, Server
from backups.tasks import check_server_health

pytestmark = pytest.mark.django_db

PASSWORD = "S3cret-Pa55word-xyz"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----"
)


@pytest.fixture(autouse=True)
def _short_timeout(settings):
    settings.SERVER_CONNECT_TIMEOUT = 2


def make_server(tenant, **kwargs):
    values = {
        "name": "db",
        "type": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "credentials": {"username": "postgres"},
    }
    values.update(kwargs)
    return services.server_create(tenant=tenant, **values)


# --- CRUD ------------------------------------------------------------------------------------


def test_create_list_get_update_delete(api, admin_a):
    client = api(admin_a)
    created = client.post(
        "/api/v1/servers",
        {
            "name": "Production DB Server",
            "description": "Main production database",
            "type": "docker",
            "environment": "production",
            "host": "192.168.1.100",
            "port": 22,
            "credentials": {"username": "admin", "password": PASSWORD, "ssh_key": SSH_KEY},
            "tags": {"region": "us-east-1", "team": "platform"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert {"id", "name", "type", "environment", "health_status", "created_at"} <= set(body)
    assert body["health_status"] == "unknown"
    assert body["credentials"] == {"username": "admin", "password": "[HIDDEN]", "ssh_key": "[HIDDEN]"}
    server = Server.objects.get(pk=body["id"])
    assert server.credentials["password"] == PASSWORD  # decrypted on read, encrypted at rest

    listed = client.get("/api/v1/servers").json()
    assert isinstance(listed, list) and [s["name"] for s in listed] == ["Production DB Server"]
    assert client.get(f"/api/v1/servers/{server.pk}").json()["tags"] == {"region": "us-east-1", "team": "platform"}

    # The seed's partial update: only name and tags change, credentials are kept.
    updated = client.put(
        f"/api/v1/servers/{server.pk}", {"name": "Updated Server Name", "tags": {"region": "us-west-2"}}, format="json"
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["name"] == "Updated Server Name" and updated.json()["host"] == "192.168.1.100"
    server.refresh_from_db()
    assert server.credentials == {"username": "admin", "password": PASSWORD, "ssh_key": SSH_KEY}
    # A credential set to null is removed; others stay.
    client.put(f"/api/v1/servers/{server.pk}", {"credentials": {"ssh_key": None}}, format="json")
    server.refresh_from_db()
    assert server.credentials == {"username": "admin", "password": PASSWORD}

    assert client.delete(f"/api/v1/servers/{server.pk}").status_code == 204
    assert client.get(f"/api/v1/servers/{server.pk}").status_code == 404


def test_database_encrypts_credentials_at_rest(tenant_a):
    from django.db import connection

    server = make_server(tenant_a, credentials={"username": "u", "password": PASSWORD})
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM backups_server WHERE id = %s", [server.pk])
        raw = cursor.fetchone()[0]
    assert PASSWORD not in raw and raw.startswith("gAAAA")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "postgresql", "host": "h", "port": 5432}, "name"),
        ({"name": "x", "type": "oracle", "host": "h", "port": 5432}, "type"),
        ({"name": "x", "type": "postgresql", "host": "h", "port": "5432"}, "port"),
        ({"name": "x", "type": "postgresql", "host": "h", "port": 70000}, "port"),
        ({"name": "x", "type": "postgresql", "host": "bad host!", "port": 5432}, "host"),
        ({"name": "x", "type": "postgresql", "host": "h", "port": 5432, "tags": []}, "tags"),
        ({"name": "x", "type": "postgresql", "host": "h", "port": 5432, "credentials": {"pasword": "x"}}, "pasword"),
        ({"name": "x", "type": "postgresql", "host": "h", "port": 5432, "colour": "red"}, "colour"),
    ],
)
def test_invalid_bodies_are_422_with_locations(api, admin_a, body, field):
    response = api(admin_a).post("/api/v1/servers", body, format="json")
    assert response.status_code == 422, response.content
    assert any(field in item["loc"] for item in response.json()["detail"]), response.json()
    assert Server.objects.count() == 0


def test_duplicate_name_is_a_validation_error(api, admin_a, tenant_a):
    make_server(tenant_a, name="db")
    response = api(admin_a).post(
        "/api/v1/servers", {"name": "db", "type": "ssh", "host": "h", "port": 22}, format="json"
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "name"]


def test_server_used_by_a_source_cannot_be_deleted(api, admin_a, tenant_a):
    server = make_server(tenant_a)
    services.application_create(
        tenant=tenant_a, name="app", sources=[{"type": "postgresql", "server_id": server.pk, "database_name": "shop"}]
    )
    response = api(admin_a).delete(f"/api/v1/servers/{server.pk}")
    assert response.status_code == 409 and response.json()["code"] == "SERVER_IN_USE"
    assert Server.objects.filter(pk=server.pk).exists()


# --- real connection tests -------------------------------------------------------------------


def test_connection_success_postgresql(api, operator_a, tenant_a, pg_server):
    server = make_server(
        tenant_a,
        host=pg_server["host"],
        port=pg_server["port"],
        credentials={"username": pg_server["user"], "password": pg_server["password"]},
    )
    response = api(operator_a).post(f"/api/v1/servers/{server.pk}/test-connection")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True and body["message"] == "Connection successful"
    assert isinstance(body["latency_ms"], int) and body["health_status"] == "healthy"
    assert "PostgreSQL" in body["server_version"]
    server.refresh_from_db()
    assert server.health_status == HealthStatus.HEALTHY and server.last_heartbeat is not None
    assert AuditEvent.objects.filter(action="server_test_connection", resource_id=str(server.pk)).exists()


def test_connection_success_mysql(api, operator_a, tenant_a, mysql_server):
    server = make_server(
        tenant_a,
        type="mysql",
        host=mysql_server["host"],
        port=mysql_server["port"],
        credentials={"username": mysql_server["user"], "password": mysql_server["password"]},
    )
    body = api(operator_a).post(f"/api/v1/servers/{server.pk}/test-connection").json()
    assert body["success"] is True, body


def test_connection_success_ssh(api, operator_a, tenant_a, sftp_server):
    server = make_server(
        tenant_a,
        type="ssh",
        host=sftp_server.host,
        port=sftp_server.port,
        credentials={"username": sftp_server.username, "ssh_key": sftp_server.private_key},
    )
    body = api(operator_a).post(f"/api/v1/servers/{server.pk}/test-connection").json()
    assert body["success"] is True, body


@pytest.mark.parametrize("kind", ["refused", "timeout", "auth_failed", "unknown_host"])
def test_connection_failures_are_clear_never_500(api, operator_a, tenant_a, request, pg_server, kind):
    if kind == "refused":
        server = make_server(tenant_a, port=request.getfixturevalue("closed_port"))
    elif kind == "timeout":
        server = make_server(tenant_a, port=request.getfixturevalue("silent_port"))
    elif kind == "auth_failed":
        sftp = request.getfixturevalue("sftp_server")
        server = make_server(
            tenant_a,
            type="ssh",
            host=sftp.host,
            port=sftp.port,
            credentials={"username": sftp.username, "password": "wrong-" + PASSWORD},
        )
    else:
        server = make_server(tenant_a, host="no-such-host.invalid")
    Server.objects.filter(pk=server.pk).update(health_status=HealthStatus.HEALTHY)
    response = api(operator_a).post(f"/api/v1/servers/{server.pk}/test-connection")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is False and body["error_kind"] == kind and body["message"]
    assert PASSWORD not in json.dumps(body)
    server.refresh_from_db()
    assert server.health_status == HealthStatus.UNHEALTHY


def test_databases_listed_with_sizes_postgresql(api, viewer_a, tenant_a, pg_throwaway_db):
    db = pg_throwaway_db
    server = make_server(
        tenant_a, host=db.host, port=db.port, credentials={"username": db.user, "password": db.password}
    )
    response = api(viewer_a).get(f"/api/v1/servers/{server.pk}/databases")
    assert response.status_code == 200, response.content
    found = {d["name"]: d for d in response.json()["databases"]}
    assert found[db.name]["type"] == "postgresql" and found[db.name]["size_mb"] > 0


def test_databases_listed_with_sizes_mysql(api, viewer_a, tenant_a, mysql_throwaway_db):
    db = mysql_throwaway_db
    server = make_server(
        tenant_a, type="mysql", host=db.host, port=db.port, credentials={"username": db.user, "password": db.password}
    )
    found = {d["name"]: d for d in api(viewer_a).get(f"/api/v1/servers/{server.pk}/databases").json()["databases"]}
    assert db.name in found and found[db.name]["size_bytes"] > 0 and "mysql" not in found


def test_databases_of_unreachable_or_non_database_server_are_clear_errors(api, viewer_a, tenant_a, closed_port):
    server = make_server(tenant_a, port=closed_port)
    response = api(viewer_a).get(f"/api/v1/servers/{server.pk}/databases")
    assert response.status_code == 502 and response.json()["code"] == "CONNECTION_FAILED"
    ssh = make_server(tenant_a, name="ssh", type="ssh", port=22)
    response = api(viewer_a).get(f"/api/v1/servers/{ssh.pk}/databases")
    assert response.status_code == 422 and response.json()["code"] == "UNSUPPORTED_SERVER_TYPE"


# --- periodic health -------------------------------------------------------------------------


def test_beat_task_publishes_server_health_only_on_change(
    tenant_a, pg_server, closed_port, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[tuple[int, dict]] = []
    monkeypatch.setattr(
        "backups.services.servers.publish",
        lambda *, tenant_id, event, stream="updates": sent.append((tenant_id, event)),
    )
    good = make_server(tenant_a, name="good", credentials={"username": pg_server["user"]})
    bad = make_server(tenant_a, name="bad", port=closed_port)
    assert check_server_health() == {"checked": 2, "changed": 2}
    events = {e["server_id"]: e for _, e in sent}
    assert events[good.pk]["type"] == "server_health" and events[good.pk]["health_status"] == "healthy"
    assert events[bad.pk]["health_status"] == "unhealthy" and events[bad.pk]["timestamp"].endswith("Z")
    sent.clear()
    assert check_server_health() == {"checked": 2, "changed": 0}
    assert sent == []


def test_beat_schedule_registers_the_health_check(settings):
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "backups.check_server_health"]
    assert entries and entries[0]["schedule"] <= 600


def test_server_health_event_reaches_the_tenant_group(tenant_a, closed_port, django_capture_on_commit_callbacks):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from audit.services import tenant_group

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(tenant_group(tenant_a.pk), channel)
    server = make_server(tenant_a, port=closed_port)
    with django_capture_on_commit_callbacks(execute=True):
        services.server_check_health(server=server)
    seen = []
    for _ in range(5):
        message = async_to_sync(layer.receive)(channel)
        seen.append(message["event"])
        if message["event"]["type"] == "server_health":
            break
    assert any(e["type"] == "server_health" and e["server_id"] == server.pk for e in seen), seen


# --- secrets ---------------------------------------------------------------------------------


def test_secrets_never_in_responses_logs_or_audit(api, admin_a, operator_a, tenant_a, caplog, sftp_server):
    caplog.set_level(logging.DEBUG)
    client = api(admin_a)
    bodies = []
    created = client.post(
        "/api/v1/servers",
        {
            "name": "s",
            "type": "ssh",
            "host": sftp_server.host,
            "port": sftp_server.port,
            "credentials": {"username": sftp_server.username, "password": PASSWORD, "ssh_key": SSH_KEY},
        },
        format="json",
    )
    bodies.append(created.content)
    pk = created.json()["id"]
    bodies.append(client.get("/api/v1/servers").content)
    bodies.append(client.get(f"/api/v1/servers/{pk}").content)
    bodies.append(
        client.put(f"/api/v1/servers/{pk}", {"credentials": {"password": PASSWORD + "2"}}, format="json").content
    )
    bodies.append(api(operator_a).post(f"/api/v1/servers/{pk}/test-connection").content)
    bodies.append(client.get(f"/api/v1/servers/{pk}/databases").content)
    audit = json.dumps(list(AuditEvent.objects.values("details", "action")))
    for secret in (PASSWORD, SSH_KEY, "not-a-real-key"):
        assert all(secret.encode() not in body for body in bodies)
        assert secret not in caplog.text
        assert secret not in audit
