"""The audit log: a row for every write, secrets removed, append-only, filters, CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from audit.models import AppendOnlyError, AuditEvent
from audit.services import emit, scrub
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SECRET = "Sup3r-Secret-Passw0rd!"


def all_audit_text() -> str:
    return str(list(AuditEvent.objects.values()))


def test_every_write_of_the_foundation_is_audited(api, admin_a, viewer_a):
    client = api(admin_a)
    user = client.post(
        "/api/v1/users", {"username": "dora", "password": SECRET, "role": "viewer"}, format="json"
    ).json()
    client.put(f"/api/v1/users/{user['id']}", {"role": "operator", "password": SECRET + "2"}, format="json")
    client.delete(f"/api/v1/users/{user['id']}")
    key = client.post("/api/v1/api-keys", {"name": "ci", "role": "viewer"}, format="json").json()["data"]
    client.delete(f"/api/v1/api-keys/{key['id']}")
    actions = list(AuditEvent.objects.filter(tenant__slug="alpha").order_by("id").values_list("action", flat=True))
    for expected in ("user_create", "user_update", "user_delete", "apikey_create", "apikey_revoke"):
        assert expected in actions
    row = AuditEvent.objects.filter(action="apikey_create").get()
    assert row.actor_id == admin_a.pk and row.actor_name == "alice" and row.ip_address == "127.0.0.1"
    assert row.resource_type == "api_key" and row.resource_id == str(key["id"])
    text = all_audit_text()
    assert SECRET not in text and key["key"] not in text


def test_login_and_logout_are_audited_without_password(admin_a):
    from rest_framework.test import APIClient

    pair = APIClient().post("/api/v1/auth/login", {"username": "alice", "password": PASSWORD}, format="json").json()
    APIClient().post("/api/v1/auth/logout", {"refresh_token": pair["refresh_token"]}, format="json")
    assert {"auth_login", "auth_logout"} <= set(AuditEvent.objects.values_list("action", flat=True))
    text = all_audit_text()
    assert PASSWORD not in text and pair["refresh_token"] not in text


def test_commands_are_audited(db, capsys):
    call_command("createtenant", "cmdco", "--name", "Cmd Co", "--plan", "dedicated")
    call_command("createuser", "cmduser", "--tenant", "cmdco", "--role", "admin", "--password", SECRET)
    call_command("createapikey", "--tenant", "cmdco", "--role", "viewer", "--name", "script")
    raw = capsys.readouterr().out.strip().splitlines()[-1]
    rows = AuditEvent.objects.filter(tenant__slug="cmdco")
    assert {"tenant_create", "user_create", "apikey_create"} <= set(rows.values_list("action", flat=True))
    assert set(rows.values_list("source", flat=True)) == {"cli"}
    assert SECRET not in all_audit_text() and raw not in all_audit_text()


def test_scrub_hides_nested_secrets():
    cleaned = scrub(
        {
            "credentials": {"username": "u", "password": "p"},
            "config": {"secret_access_key": "s", "bucket": "b"},
            "items": [{"api_key": "k"}],
            "token": "",
            "note": "ok",
        }
    )
    assert cleaned == {
        "credentials": "[HIDDEN]",
        "config": {"secret_access_key": "[HIDDEN]", "bucket": "b"},
        "items": [{"api_key": "[HIDDEN]"}],
        "token": "",
        "note": "ok",
    }


def test_audit_events_are_append_only(tenant_a):
    event = emit(action="probe", tenant=tenant_a)
    event.action = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "probe"


def test_log_filters_and_pagination(api, admin_a, tenant_a):
    for i in range(5):
        emit(
            action="backup_create",
            tenant=tenant_a,
            resource_type="backup",
            resource_id=i,
            details={"database": f"db{i}"},
        )
    emit(action="backup_delete", tenant=tenant_a, resource_type="backup", resource_id=9)
    client = api(admin_a)
    body = client.get("/api/v1/audit/logs", {"action": "backup_create", "limit": 2, "offset": 1}).json()
    assert body["total"] == 5 and len(body["items"]) == 2
    assert body["items"][0]["resource_id"] == 3 and body["items"][0]["details"] == {"database": "db3"}
    assert set(body["items"][0]) == {
        "id",
        "user_id",
        "username",
        "api_key_id",
        "action",
        "resource_type",
        "resource_id",
        "details",
        "ip_address",
        "created_at",
    }
    assert client.get("/api/v1/audit/logs", {"resource_type": "backup"}).json()["total"] == 6
    assert client.get("/api/v1/audit/logs", {"start_date": "2999-01-01"}).json()["total"] == 0
    assert client.get("/api/v1/audit/logs", {"end_date": "2000-01-01"}).json()["total"] == 0
    assert client.get("/api/v1/audit/logs", {"user_id": admin_a.pk, "action": "user_create"}).json()["total"] == 0
    bad = client.get("/api/v1/audit/logs", {"start_date": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "start_date"]
    assert client.get("/api/v1/audit/logs", {"limit": "many"}).status_code == 422


def test_csv_export_streams_filtered_rows(api, admin_a, tenant_a):
    emit(action="backup_create", tenant=tenant_a, resource_type="backup", resource_id=1, details={"a": 1})
    response = api(admin_a).get("/api/v1/audit/export", {"format": "csv", "action": "backup_create"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="audit_log.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["id", "created_at", "user_id", "username", "action"]
    assert len(rows) == 2 and rows[1][4] == "backup_create"
    assert api(admin_a).get("/api/v1/audit/export", {"format": "xml"}).status_code == 422


@pytest.mark.parametrize(
    ("key", "hidden"),
    [
        ("password", True),
        ("db_password", True),
        ("clientSecret", True),
        ("client_secret", True),
        ("ssh-key", True),
        ("secret_access_key", True),
        ("api_key", True),
        ("key", True),
        ("webhook_url", True),
        ("Authorization", True),
        ("refresh_token", True),
        ("credentials", True),
        ("private_key", True),
        ("connection_string", True),
        # Ordinary fields that merely contain a secret word's letters, or talk about a secret.
        ("passed", False),
        ("passthrough", False),
        ("keyboard", False),
        ("credential_fields", False),
        ("token_type", False),
        ("access_key_id", False),
        ("password_changed", False),
        ("monkey", False),
        ("bypass", False),
        ("tokenizer", False),
        ("key_id", False),
    ],
)
def test_scrub_matches_whole_words_not_substrings(key, hidden):
    assert (scrub({key: "value"})[key] == "[HIDDEN]") is hidden


def test_verification_result_keeps_passed_in_the_audit_log(tenant_a):
    event = emit(
        action="verification_completed",
        tenant=tenant_a,
        details={"passed": True, "credential_fields": ["password"], "password": "x"},
    )
    event.refresh_from_db()
    assert event.details == {"passed": True, "credential_fields": ["password"], "password": "[HIDDEN]"}
