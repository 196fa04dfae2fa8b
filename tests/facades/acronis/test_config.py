"""``/api/acronis/config``: validation, codes, roles, secret handling, tenant isolation."""

from __future__ import annotations

import logging

import pytest
from django.db import connection

from acronis.models import AcronisConfig
from audit.models import AuditEvent

from .conftest import SECRET

pytestmark = pytest.mark.django_db

URL = "/api/acronis/config"
BODY = {"base_url": "https://eu2-cloud.acronis.com/api/", "client_id": "cid-1", "client_secret": SECRET}


def test_get_without_config_is_config_missing(api, viewer_a):
    response = api(viewer_a).get(URL)
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False and body["error_code"] == "ACRONIS_CONFIG_MISSING"
    assert set(body) >= {"error", "timestamp", "help", "details"}
    assert "technical_error" in body["details"]


def test_post_get_put_delete_roundtrip(api, admin_a, viewer_a, caplog):
    caplog.set_level(logging.DEBUG)
    admin = api(admin_a)
    created = admin.post(URL, BODY, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["success"] is True
    assert created.json()["message"] == "Configuration saved successfully"
    assert created.json()["data"] == {"configured": True}

    shown = api(viewer_a).get(URL).json()
    assert shown["success"] is True
    assert shown["data"]["base_url"] == BODY["base_url"] and shown["data"]["client_id"] == "cid-1"
    assert shown["data"]["configured"] is True and shown["data"]["last_updated"].endswith("Z")
    assert "client_secret" not in shown["data"]

    # POST again: 409, the existing configuration is not replaced by accident.
    again = admin.post(URL, {**BODY, "client_id": "other"}, format="json")
    assert again.status_code == 409 and again.json()["error_code"] == "ACRONIS_CONFIG_EXISTS"

    # PUT without client_secret keeps the stored one.
    updated = admin.put(URL, {"base_url": "https://eu8.acronis.cloud", "client_id": "cid-2"}, format="json")
    assert updated.status_code == 200, updated.content
    config = AcronisConfig.objects.get()
    assert config.client_id == "cid-2" and config.client_secret == SECRET
    assert api(viewer_a).get(URL).json()["data"]["client_id"] == "cid-2"  # cache invalidated

    deleted = admin.delete(URL)
    assert deleted.status_code == 200 and deleted.json()["message"] == "Configuration deleted successfully"
    missing = admin.delete(URL)
    assert missing.status_code == 404 and missing.json()["error_code"] == "ACRONIS_CONFIG_NOT_FOUND"

    # The secret: encrypted at rest, never in responses, audit rows or logs.
    for event in AuditEvent.objects.all():
        assert SECRET not in str(event.details)
    assert AuditEvent.objects.filter(action__startswith="acronis_config_").count() == 3
    assert SECRET not in caplog.text


def test_secret_is_encrypted_at_rest(admin_a, api):
    api(admin_a).post(URL, BODY, format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM acronis_acronisconfig")
        (raw,) = cursor.fetchone()
    assert SECRET not in raw and raw.startswith("gAAAA")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({k: v for k, v in BODY.items() if k != "client_secret"}, "ACRONIS_VALIDATION_ERROR", "client_secret"),
        ({**BODY, "client_id": 5}, "ACRONIS_VALIDATION_ERROR", "client_id"),
        ({**BODY, "base_url": ""}, "ACRONIS_VALIDATION_ERROR", "base_url"),
        ({**BODY, "extra": 1}, "ACRONIS_VALIDATION_ERROR", "extra"),
        ({**BODY, "base_url": "ftp://example.com"}, "ACRONIS_INVALID_CONFIG", "base_url"),
        ({**BODY, "base_url": "not a url"}, "ACRONIS_INVALID_CONFIG", "base_url"),
        ({**BODY, "client_secret": "   "}, "ACRONIS_VALIDATION_ERROR", "client_secret"),
        ({**BODY, "grant_type": "password"}, "ACRONIS_INVALID_CONFIG", "grant_type"),
        # httpx raises its own InvalidURL (not a ValueError) for control characters.
        ({**BODY, "base_url": "https://x\u0007.example"}, "ACRONIS_INVALID_CONFIG", "base_url"),
        ({**BODY, "base_url": "https://eu2-cloud\u00a0.acronis.com"}, "ACRONIS_INVALID_CONFIG", "base_url"),
        ({**BODY, "base_url": "https://x .example"}, "ACRONIS_INVALID_CONFIG", "base_url"),
        ({**BODY, "base_url": "https://user:pw@eu2-cloud.acronis.com"}, "ACRONIS_INVALID_CONFIG", "base_url"),
        ({**BODY, "base_url": "http://[::1"}, "ACRONIS_INVALID_CONFIG", "base_url"),
        ({**BODY, "tenant_scope": "customer-7"}, "ACRONIS_INVALID_CONFIG", "tenant_scope"),
    ],
)
def test_bad_input_names_the_field(api, admin_a, body, code, field):
    response = api(admin_a).post(URL, body, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["error_code"] == code
    assert field in payload["details"]["fields"]
    assert SECRET not in response.content.decode()


def test_tenant_scope_is_optional_kept_by_put_and_cleared_by_null(api, admin_a):
    admin = api(admin_a)
    scope = "EDE9F834-70B3-476C-83D9-736F9F8C7DAE"
    assert admin.post(URL, {**BODY, "tenant_scope": scope}, format="json").status_code == 201
    assert admin.get(URL).json()["data"]["tenant_scope"] == scope.lower()

    # A PUT that does not mention the scope (an older caller) keeps it.
    assert admin.put(URL, {"base_url": BODY["base_url"], "client_id": "cid-2"}, format="json").status_code == 200
    assert AcronisConfig.objects.get().tenant_scope == scope.lower()
    event = AuditEvent.objects.filter(action="acronis_config_update").latest("pk")
    assert event.details["tenant_scope"] == scope.lower()

    assert admin.put(URL, {**BODY, "tenant_scope": None}, format="json").status_code == 200
    assert admin.get(URL).json()["data"]["tenant_scope"] is None


def test_admin_form_checks_base_url_and_tenant_scope(tenant_a):
    from acronis.admin import AcronisConfigForm

    form = AcronisConfigForm(
        data={
            "tenant": tenant_a.pk,
            "base_url": "https://x\u0007.example",
            "client_id": "cid",
            "client_secret": SECRET,
            "grant_type": "client_credentials",
            "tenant_scope": "customer-7",
        }
    )
    assert not form.is_valid()
    assert "base_url" in form.errors and "tenant_scope" in form.errors

    scope = "ede9f834-70b3-476c-83d9-736f9f8c7dae"
    form = AcronisConfigForm(
        data={
            "tenant": tenant_a.pk,
            "base_url": BODY["base_url"],
            "client_id": "cid",
            "client_secret": SECRET,
            "grant_type": "client_credentials",
            "tenant_scope": scope,
        }
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["tenant_scope"] == scope


def test_put_without_existing_config_needs_secret(api, admin_a):
    response = api(admin_a).put(URL, {"base_url": BODY["base_url"], "client_id": "x"}, format="json")
    assert response.status_code == 400 and response.json()["error_code"] == "ACRONIS_VALIDATION_ERROR"
    assert "client_secret" in response.json()["details"]["fields"]
    assert api(admin_a).put(URL, BODY, format="json").status_code == 200


def test_roles_viewer_and_operator_cannot_write(api, viewer_a, operator_a):
    for user in (viewer_a, operator_a):
        response = api(user).post(URL, BODY, format="json")
        assert response.status_code == 403 and response.json()["error_code"] == "ACRONIS_PERMISSION_ERROR"
        assert api(user).delete(URL).status_code == 403


def test_anonymous_is_401(api):
    assert api().get(URL).status_code == 401


def test_tenant_b_never_sees_a_config(api, admin_a, admin_b):
    api(admin_a).post(URL, BODY, format="json")
    response = api(admin_b).get(URL)
    assert response.status_code == 404 and response.json()["error_code"] == "ACRONIS_CONFIG_MISSING"
    assert api(admin_b).delete(URL).status_code == 404
    assert AcronisConfig.objects.count() == 1
