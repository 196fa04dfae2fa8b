"""Tenant admins export their key ring where they are: the API (password again, admin only,
throttled, audited without the key) and the admin; an overview shows keys never exported."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from backups import keys
from backups.key_selectors import key_export_overview, tenant_key_status, tenants_never_exported
from backups.models import TenantKey
from backups.pipeline import backup_stream, decrypt_cli
from tenants import services as tenant_services
from tenants.models import ALL_TENANTS, Role
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db
URL = "/api/v1/keys/export"


def test_admin_exports_the_ring_with_the_password_and_it_decrypts_a_backup(api, admin_a, tenant_a, tmp_path):
    key_id, key = keys.tenant_current_key(tenant_a)
    sink = io.BytesIO()
    backup_stream(io.BytesIO(b"rows\n" * 100), sink, data_key=key, key_id=key_id, compression="gzip")
    assert tenant_key_status(tenant=tenant_a)["never_exported"] is True
    assert [t.slug for t in tenants_never_exported(tenant=ALL_TENANTS)] == ["alpha"]

    response = api(admin_a).post(URL, {"password": PASSWORD}, format="json")

    assert response.status_code == 200, response.content
    assert response["Content-Disposition"] == 'attachment; filename="alpha.keys.json"'
    assert response["Cache-Control"] == "no-store"
    ring = response.json()
    assert ring["type"] == "bpaf-key-ring" and ring["tenant"] == "alpha" and ring["current_key_id"] == key_id
    ring_file, artifact = tmp_path / "ring.json", tmp_path / "backup.sql.bpaf"
    ring_file.write_text(json.dumps(ring))
    artifact.write_bytes(sink.getvalue())
    assert decrypt_cli.main(["--key-file", str(ring_file), "--decompress", str(artifact), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out").read_bytes() == b"rows\n" * 100

    status = tenant_key_status(tenant=tenant_a)
    assert status["never_exported"] is False and status["last_exported_at"] is not None
    assert not tenants_never_exported(tenant=ALL_TENANTS).exists()
    event = AuditEvent.objects.get(action="key_export")
    assert event.tenant == tenant_a and event.actor == admin_a and event.details["via"] == "api"
    stored = json.dumps(event.details)
    assert ring["keys"][0]["key"] not in stored and ring["keys"][0]["fingerprint"] in stored
    assert PASSWORD not in stored


def test_a_rotation_makes_the_overview_say_never_exported_again(api, admin_a, tenant_a):
    keys.tenant_current_key(tenant_a)
    assert api(admin_a).post(URL, {"password": PASSWORD}, format="json").status_code == 200
    keys.tenant_key_rotate(tenant=tenant_a)
    row = key_export_overview(tenant=tenant_a).get()
    assert row.current_key_exported_at is None and row.ring_size == 2


def test_a_wrong_password_exports_nothing_and_is_recorded(api, admin_a, tenant_a):
    response = api(admin_a).post(URL, {"password": "not-it"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "REAUTHENTICATION_FAILED"
    assert "key" not in response.json() and "keys" not in response.json()
    denied = AuditEvent.objects.get(action="key_export_denied")
    assert denied.actor == admin_a and "not-it" not in json.dumps(denied.details)
    assert not AuditEvent.objects.filter(action="key_export").exists()
    assert not TenantKey.objects.filter(last_exported_at__isnull=False).exists()


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_operators_and_viewers_cannot_export(api, tenant_a, role):
    user = tenant_services.user_create(
        tenant=tenant_a, username=f"u-{role}", role=role, password=PASSWORD, email="u@example.com"
    ).user
    response = api(user).post(URL, {"password": PASSWORD}, format="json")
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="key_export").exists()


def test_an_api_key_cannot_export_even_with_the_admin_role(admin_a, tenant_a):
    _, raw = tenant_services.api_key_create(tenant=tenant_a, name="robot", role=Role.ADMIN, created_by=admin_a)
    response = client_for(api_key=raw).post(URL, {"password": PASSWORD}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "REAUTHENTICATION_REQUIRED"


def test_each_admin_gets_only_their_own_workspace_keys(api, admin_a, admin_b, tenant_a, tenant_b):
    a_id, _ = keys.tenant_current_key(tenant_a)
    ring = api(admin_b).post(URL, {"password": PASSWORD}, format="json").json()
    assert ring["tenant"] == "bravo" and a_id not in json.dumps(ring)
    assert api(admin_b).post(URL, {"password": PASSWORD}, format="json", HTTP_X_WORKSPACE="alpha").status_code in (
        403,
        404,
    )


def test_bad_bodies_are_validation_errors(api, admin_a):
    client = api(admin_a)
    for body in ({}, {"password": 5}, {"password": "x", "extra": 1}):
        response = client.post(URL, body, format="json")
        assert response.status_code == 422, (body, response.content)
    assert api().post(URL, {"password": PASSWORD}, format="json").status_code == 401


def test_export_attempts_are_throttled_per_user_wrong_passwords_included(api, admin_a, tenant_a, settings):
    settings.THROTTLE_KEY_EXPORT = "2/hour"
    client = api(admin_a)
    assert client.post(URL, {"password": "wrong"}, format="json").status_code == 403
    assert client.post(URL, {"password": PASSWORD}, format="json").status_code == 200
    limited = client.post(URL, {"password": PASSWORD}, format="json")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert AuditEvent.objects.filter(action="key_export").count() == 1


# --- admin -------------------------------------------------------------------------------------


@pytest.fixture
def staff_admin(admin_a):
    admin_a.is_staff = True
    admin_a.save()
    client = Client()
    client.force_login(admin_a)
    return client


def action(client, tenant, **extra):
    return client.post(
        "/admin/tenants/tenant/", {"action": "export_backup_keys", "_selected_action": [tenant.pk], **extra}
    )


def test_admin_action_asks_for_the_password_then_downloads_the_ring(staff_admin, tenant_a):
    page = action(staff_admin, tenant_a)
    assert page.status_code == 200 and b'type="password"' in page.content
    assert b"never" in page.content  # the current key was never exported

    wrong = action(staff_admin, tenant_a, export_keys_confirmed="yes", password="nope")
    assert wrong.status_code == 200 and b"password is not correct" in wrong.content
    assert AuditEvent.objects.filter(action="key_export_denied", details__via="admin").exists()

    done = action(staff_admin, tenant_a, export_keys_confirmed="yes", password=PASSWORD)
    assert done.status_code == 200 and done["Content-Disposition"] == 'attachment; filename="alpha.keys.json"'
    ring = json.loads(done.content)
    assert ring["type"] == "bpaf-key-ring" and ring["tenant"] == "alpha"
    assert AuditEvent.objects.filter(action="key_export", details__via="admin").exists()
    listing = staff_admin.get("/admin/backups/tenantkey/")
    assert listing.status_code == 200 and ring["current_key_id"].encode() in listing.content


def test_admin_action_cannot_reach_another_workspace(staff_admin, tenant_a, tenant_b):
    keys.tenant_current_key(tenant_b)
    response = action(staff_admin, tenant_b, export_keys_confirmed="yes", password=PASSWORD)
    assert b"bpaf-key-ring" not in response.content
    assert not AuditEvent.objects.filter(action="key_export").exists()
    assert b"bravo-" not in staff_admin.get("/admin/backups/tenantkey/").content


def test_keys_the_master_key_cannot_open_are_a_503_not_a_500(api, admin_a, tenant_a, settings):
    keys.tenant_current_key(tenant_a)
    settings.BACKUP_MASTER_KEY = "bmV3LW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZy0hISE="
    response = api(admin_a).post(URL, {"password": PASSWORD}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "KEYS_UNAVAILABLE"
    assert not TenantKey.objects.filter(last_exported_at__isnull=False).exists()
