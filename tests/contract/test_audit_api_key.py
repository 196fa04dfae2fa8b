"""An action done with an API key is recorded as the key's (db-backup-platform.md "Audit Logs")."""

from __future__ import annotations

from audit.models import AuditEvent
from tenants import services as tenant_services
from tenants.models import Role


def test_an_api_key_action_names_the_key_as_its_actor(api, admin_a, tenant_a, tmp_path):
    key, raw = tenant_services.api_key_create(tenant=tenant_a, name="ci-pipeline", role=Role.ADMIN, created_by=admin_a)
    response = api(api_key=raw).post(
        "/api/v1/workspaces/alpha/backup-storages",
        {"name": "disk", "type": "local", "configuration": {"path": str(tmp_path / "store")}},
        format="json",
    )
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action="storage_create")
    assert (event.actor_id, event.api_key_id, event.actor_name) == (None, key.pk, "apikey:ci-pipeline")
    logged = api(admin_a).get("/api/v1/audit/logs?action=storage_create").json()["items"][0]
    assert (logged["user_id"], logged["username"], logged["api_key_id"]) == (None, "apikey:ci-pipeline", key.pk)
    export = api(admin_a).get("/api/v1/audit/export?format=csv&action=storage_create")
    header, row = b"".join(export.streaming_content).decode().splitlines()[:2]
    assert header.endswith(",api_key_id") and row.endswith(f",{key.pk}")
    # The same action by a user names the user, and no key.
    api(admin_a).post(
        "/api/v1/workspaces/alpha/backup-storages",
        {"name": "disk2", "type": "local", "configuration": {"path": str(tmp_path / "store2")}},
        format="json",
    )
    by_user = AuditEvent.objects.filter(action="storage_create").order_by("-id").first()
    assert (by_user.actor_id, by_user.api_key_id, by_user.actor_name) == (admin_a.pk, None, "alice")
