"""The operator's admin: login, tenant scoping for staff, read-only audit, keys shown once."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditEvent
from audit.services import emit
from tenants.models import ApiKey, Membership, Role

pytestmark = pytest.mark.django_db


def test_superuser_logs_in_to_admin(superuser):
    client = Client()
    page = client.get("/admin/login/")
    assert page.status_code == 200
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "Corr3ct-Horse-Battery"}, follow=True
    )
    assert response.status_code == 200 and b"<title>Overview | Backup console</title>" in response.content


def test_staff_sees_only_own_tenants_rows(staff_a, tenant_a, tenant_b, admin_b):
    emit(action="in_a", tenant=tenant_a)
    emit(action="in_b", tenant=tenant_b)
    client = Client()
    client.force_login(staff_a)
    tenants = client.get("/admin/tenants/tenant/")
    assert b"alpha" in tenants.content and b"bravo" not in tenants.content
    events = client.get("/admin/audit/auditevent/")
    assert b"in_a" in events.content and b"in_b" not in events.content
    users = client.get("/admin/auth/user/")
    assert b"alice" in users.content and b"bob" not in users.content


@pytest.fixture
def bravo_rows(tenant_b, admin_b, tmp_path):
    """One row of every tenant-owned kind the admin shows, in tenant bravo."""
    from backups import services
    from backups.models import Application
    from schedules import services as schedule_services
    from tenants import services as tenant_services

    storage = services.storage_create(
        tenant=tenant_b, name="b-store", type="local", configuration={"path": f"{tenant_b.path_roots[0]}/b"}
    )
    app = Application.objects.create(tenant=tenant_b, name="b-app")
    job = schedule_services.job_create(
        tenant=tenant_b,
        name="b-job",
        application=app,
        storage=storage,
        schedule_type="custom",
        cron_expression="0 1 * * *",
    )
    key, _ = tenant_services.api_key_create(tenant=tenant_b, name="b-key", role=Role.VIEWER)
    return {
        "tenants/tenant": tenant_b.pk,
        "auth/user": admin_b.pk,
        "tenants/apikey": key.pk,
        "audit/auditevent": emit(action="in_b", tenant=tenant_b).pk,
        "backups/storage": storage.pk,
        "backups/server": services.server_create(
            tenant=tenant_b, name="b-db", type="postgresql", host="127.0.0.1", port=5432
        ).pk,
        "backups/application": app.pk,
        "schedules/backupjob": job.pk,
    }


ROW_PAGES = ["change", "delete", "history"]


@pytest.mark.parametrize("page", ROW_PAGES)
def test_another_tenants_row_is_404_for_staff_and_a_login_redirect_for_anonymous(page, staff_a, bravo_rows):
    staff = Client()
    staff.force_login(staff_a)
    anonymous = Client()
    for model, pk in bravo_rows.items():
        url = f"/admin/{model}/{pk}/{page}/"
        assert staff.get(url).status_code == 404, url
        assert staff.post(url, {"post": "yes"}).status_code == 404, url
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    # Alpha's own rows stay reachable for the same staff user (the 404 is scoping, not a blanket refusal).
    own = Membership.objects.get(user=staff_a).tenant_id
    assert staff.get(f"/admin/tenants/tenant/{own}/{page}/").status_code in (200, 403)


def test_audit_events_are_read_only_in_admin(superuser, tenant_a):
    event = emit(action="probe", tenant=tenant_a)
    client = Client()
    client.force_login(superuser)
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and b'name="action"' not in page.content
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_api_key_created_in_admin_is_shown_once(superuser, tenant_a):
    client = Client()
    client.force_login(superuser)
    response = client.post(
        "/admin/tenants/apikey/add/", {"tenant": tenant_a.pk, "name": "from-admin", "role": "viewer"}, follow=True
    )
    assert response.status_code == 200
    match = re.search(rb"(bpk_[0-9a-f]{8}_[A-Za-z0-9_-]+)", response.content)
    assert match, "the new key is shown after creation"
    raw = match.group(1).decode()
    key = ApiKey.objects.get(name="from-admin")
    assert key.key_hash != raw
    again = client.get(f"/admin/tenants/apikey/{key.pk}/change/")
    assert raw.encode() not in again.content
    assert AuditEvent.objects.filter(action="apikey_create", resource_id=str(key.pk)).exists()


def test_tenant_saved_in_admin_is_audited(superuser, tenant_a, admin_a):
    client = Client()
    client.force_login(superuser)
    membership = Membership.objects.get(user=admin_a)
    data = {
        "slug": "alpha",
        "name": "Alpha Renamed",
        "plan": "dedicated",
        "is_active": "on",
        "max_concurrent_backups": 5,
        "memberships-TOTAL_FORMS": 1,
        "memberships-INITIAL_FORMS": 1,
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
        "memberships-0-id": membership.pk,
        "memberships-0-tenant": tenant_a.pk,
        "memberships-0-user": admin_a.pk,
        "memberships-0-role": Role.ADMIN,
        "memberships-0-is_active": "on",
    }
    response = client.post(f"/admin/tenants/tenant/{tenant_a.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.filter(action="tenant_update").get()
    assert event.details["changed_fields"] == ["name"] and event.source == "admin"


def test_a_tenant_admin_makes_two_factor_mandatory_in_the_admin(staff_a, tenant_a):
    client = Client()
    client.force_login(staff_a)
    membership = Membership.objects.get(user=staff_a)
    data = {
        "name": "Alpha Inc",
        "require_two_factor": "on",
        "memberships-TOTAL_FORMS": 1,
        "memberships-INITIAL_FORMS": 1,
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
        "memberships-0-id": membership.pk,
        "memberships-0-tenant": tenant_a.pk,
        "memberships-0-user": staff_a.pk,
        "memberships-0-role": Role.ADMIN,
        "memberships-0-is_active": "on",
    }
    response = client.post(f"/admin/tenants/tenant/{tenant_a.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    tenant_a.refresh_from_db()
    assert tenant_a.require_two_factor
    assert AuditEvent.objects.filter(action="tenant_update", details__require_two_factor=True, actor=staff_a).exists()
    # Its own session was opened with a password only: the next admin page asks to sign in again.
    assert client.get("/admin/").url.startswith("/admin/login/")
