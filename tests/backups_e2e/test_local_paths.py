"""Tenants cannot reach the platform host's files outside the allowed folders."""

from __future__ import annotations

import pytest

from backups.models import Application, Backup, Storage

pytestmark = pytest.mark.django_db


def test_local_storage_outside_allowed_roots_is_refused(api, admin_a):
    response = api(admin_a).post("/api/v1/workspaces/alpha/backup-storages",
                                 {"name": "etc", "type": "local", "configuration": {"path": "/etc/backups"}},
                                 format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "INVALID_STORAGE_CONFIG" and "LOCAL_PATH_ROOTS" in body["details"]["path"]
    probe = api(admin_a).post("/api/v1/storage/test", {"provider_type": "local", "configuration": {"path": "/root"}},
                              format="json")
    assert probe.status_code == 400
    assert not Storage.objects.filter(name="etc").exists()


def test_file_source_outside_allowed_roots_is_refused(api, admin_a, tmp_path):
    refused = api(admin_a).post("/api/v1/workspaces/alpha/applications", {
        "name": "steal", "sources": [{"name": "shadow", "type": "path", "path": "/etc"}]}, format="json")
    assert refused.status_code == 400
    assert "LOCAL_PATH_ROOTS" in str(refused.json()["error"]["details"])
    allowed = api(admin_a).post("/api/v1/workspaces/alpha/applications", {
        "name": "site", "sources": [{"name": "files", "type": "path", "path": str(tmp_path)}]}, format="json")
    assert allowed.status_code == 201, allowed.content
    assert not Application.objects.filter(name="steal").exists()


def test_restore_target_outside_allowed_roots_is_refused(api, operator_a, tenant_a):
    app = Application.objects.create(tenant=tenant_a, name="app")
    backup = Backup.objects.create(tenant=tenant_a, application=app, status="completed", storage_path="x")
    response = api(operator_a).post(
        f"/api/v1/workspaces/alpha/applications/{app.pk}/backups/{backup.pk}/restore",
        {"target_path": "/etc/cron.d", "restore_options": {"restore_strategy": "create_new"}}, format="json")
    assert response.status_code == 400
    assert "target_path" in response.json()["error"]["details"]
