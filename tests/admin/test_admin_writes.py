"""Admin writes go through the same services as the APIs: the same rules refuse the same
input, the errors appear on the form's fields, and the audit events are the services'."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from backups import services
from backups.models import Application, Server, Source, Storage

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_a(admin_a):
    """Tenant A's admin with staff access to the admin (not a superuser)."""
    admin_a.is_staff = True
    admin_a.save()
    client = Client()
    client.force_login(admin_a)
    return client


def sources_form(*rows, initial=0):
    data = {
        "sources-TOTAL_FORMS": str(len(rows)),
        "sources-INITIAL_FORMS": str(initial),
        "sources-MIN_NUM_FORMS": "0",
        "sources-MAX_NUM_FORMS": "1000",
    }
    for n, row in enumerate(rows):
        values = {
            "name": "",
            "type": "path",
            "server": "",
            "database_name": "",
            "path": "",
            "include": "[]",
            "exclude": "[]",
            "component": "",
            "position": str(n),
            **row,
        }
        data.update({f"sources-{n}-{k}": v for k, v in values.items()})
    return data


def test_staff_cannot_create_a_local_storage_at_a_host_path(staff_a, tenant_a):
    response = staff_a.post(
        "/admin/backups/storage/add/",
        {
            "tenant": tenant_a.pk,
            "name": "etc",
            "type": "local",
            "status": "active",
            "path": "/etc/backups",
            "labels": "",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Not inside this workspace's folders" in errors["path"][0]
    assert not Storage.objects.filter(name="etc").exists()
    assert not AuditEvent.objects.filter(action="storage_create").exists()


def test_staff_cannot_add_a_file_source_of_etc(staff_a, tenant_a):
    response = staff_a.post(
        "/admin/backups/application/add/",
        {
            "tenant": tenant_a.pk,
            "name": "steal",
            "namespace": "",
            "labels": "{}",
            "description": "",
            **sources_form({"name": "shadow", "path": "/etc"}),
        },
    )
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert "Not inside this workspace's folders" in formset.forms[0].errors["path"][0]
    assert not Application.objects.filter(name="steal").exists()
    assert not Source.objects.filter(path="/etc").exists()


def test_a_sources_server_must_belong_to_the_applications_tenant(superuser, tenant_a, tenant_b):
    """Even a platform operator, who sees every tenant's servers in the picker."""
    foreign = services.server_create(tenant=tenant_b, name="theirs", type="postgresql", host="db.example", port=5432)
    client = Client()
    client.force_login(superuser)
    response = client.post(
        "/admin/backups/application/add/",
        {
            "tenant": tenant_a.pk,
            "name": "mixed",
            "namespace": "",
            "labels": "{}",
            "description": "",
            **sources_form({"name": "db", "type": "postgresql", "server": foreign.pk, "database_name": "shop"}),
        },
    )
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[0].errors["server"] == ["Server not found."]
    assert not Application.objects.filter(name="mixed").exists()


def test_admin_application_with_sources_is_written_by_the_service(staff_a, tenant_a):
    root = tenant_a.path_roots[0]
    response = staff_a.post(
        "/admin/backups/application/add/",
        {
            "tenant": tenant_a.pk,
            "name": "site",
            "namespace": "web",
            "labels": "{}",
            "description": "",
            **sources_form(
                {"name": "files", "path": f"{root}/www", "exclude": '["*.tmp"]'},
                {"name": "conf", "type": "platform_config"},
            ),
        },
    )
    assert response.status_code == 302, response.context and response.context["inline_admin_formsets"][0].formset.errors
    app = Application.objects.get(tenant=tenant_a, name="site")
    assert [(s.name, s.type, s.component) for s in app.sources.all()] == [
        ("files", "path", "data"),
        ("conf", "platform_config", "config"),
    ]
    event = AuditEvent.objects.get(action="application_create", resource_id=str(app.pk))
    assert len(event.details["sources"]) == 2 and event.details["name"] == "site"
    # An edit replaces the list like the API does: the second source removed, the first kept.
    files = app.sources.get(name="files")
    data = sources_form(
        {"id": files.pk, "application": app.pk, "name": "files", "path": f"{root}/www2"},
        {
            "id": app.sources.get(name="conf").pk,
            "application": app.pk,
            "name": "conf",
            "type": "platform_config",
            "DELETE": "on",
        },
        initial=2,
    )
    response = staff_a.post(
        f"/admin/backups/application/{app.pk}/change/",
        {"name": "site", "namespace": "web", "labels": "{}", "description": "", **data},
    )
    assert response.status_code == 302
    assert [(s.pk, s.path) for s in app.sources.all()] == [(files.pk, f"{root}/www2")]
    assert AuditEvent.objects.filter(action="application_update", resource_id=str(app.pk)).exists()


def test_admin_server_is_written_by_the_service(staff_a, tenant_a):
    response = staff_a.post(
        "/admin/backups/server/add/",
        {
            "tenant": tenant_a.pk,
            "name": "db",
            "type": "postgresql",
            "host": "db.internal.example",
            "port": 5432,
            "tags": "{}",
            "username": "u",
            "password": "S3cret-pw",
            "ssh_key": "",
        },
    )
    assert response.status_code == 302
    server = Server.objects.get(name="db")
    assert server.credentials == {"username": "u", "password": "S3cret-pw"}
    event = AuditEvent.objects.get(action="server_create", resource_id=str(server.pk))
    assert sorted(event.details["credential_fields"]) == ["password", "username"] and "S3cret" not in str(event.details)
    duplicate = staff_a.post(
        "/admin/backups/server/add/",
        {"tenant": tenant_a.pk, "name": "db", "type": "postgresql", "host": "h", "port": 5432, "tags": "{}"},
    )
    assert duplicate.status_code == 200
    assert "already exists" in str(duplicate.context["adminform"].form.errors)


def test_admin_deletes_use_the_services_rules(staff_a, tenant_a):
    server = services.server_create(tenant=tenant_a, name="db", type="postgresql", host="h", port=5432)
    services.application_create(
        tenant=tenant_a, name="app", sources=[{"type": "postgresql", "server_id": server.pk, "database_name": "d"}]
    )
    response = staff_a.post(f"/admin/backups/server/{server.pk}/delete/", {"post": "yes"}, follow=True)
    assert Server.objects.filter(pk=server.pk).exists()  # a source uses it
    assert b"Cannot delete server" in response.content


def test_a_tenant_admin_cannot_change_its_own_folders_plan_or_limits(staff_a, tenant_a):
    """Its own folders would free it from its confinement; plan and limits are the operator's."""
    page = staff_a.get(f"/admin/tenants/tenant/{tenant_a.pk}/change/")
    assert page.status_code == 200 and b'name="path_roots"' not in page.content
    response = staff_a.post(
        f"/admin/tenants/tenant/{tenant_a.pk}/change/",
        {
            "name": "Renamed",
            "path_roots": '["/"]',
            "plan": "dedicated",
            "max_concurrent_backups": "500",
            "is_active": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.name == "Renamed"
    assert tenant_a.path_roots != ["/"] and tenant_a.max_concurrent_backups == 5


def test_operator_sets_folders_that_never_overlap_another_tenant(superuser, tenant_a, tenant_b):
    client = Client()
    client.force_login(superuser)
    form = {
        "slug": "alpha",
        "name": "Alpha",
        "plan": "dedicated",
        "max_concurrent_backups": "5",
        "is_active": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    for roots, error in (
        (f'["{tenant_b.path_roots[0]}/x"]', "Overlaps the folders of tenant"),
        ('["relative"]', "not an absolute path"),
        ('["/"]', "whole machine"),
    ):
        response = client.post(f"/admin/tenants/tenant/{tenant_a.pk}/change/", {**form, "path_roots": roots})
        assert response.status_code == 200, roots
        assert error in response.context["adminform"].form.errors["path_roots"][0]
    ok = client.post(f"/admin/tenants/tenant/{tenant_a.pk}/change/", {**form, "path_roots": "/srv/alpha\n"})
    assert ok.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.path_roots == ["/srv/alpha"]


def test_retention_policy_admin_writes_through_the_service(staff_a, tenant_a):
    form = {"tenant": tenant_a.pk, "name": "gfs", "description": "", "keep_daily": "7", "min_verified_kept": "1"}
    assert staff_a.post("/admin/schedules/retentionpolicy/add/", form).status_code == 302
    from schedules.models import RetentionPolicy

    policy = RetentionPolicy.objects.get(tenant=tenant_a, name="gfs")
    assert policy.keep_daily == 7
    event = AuditEvent.objects.get(action="retention_policy_create", resource_id=str(policy.pk))
    assert event.details["keep_daily"] == 7
    again = staff_a.post("/admin/schedules/retentionpolicy/add/", form)
    assert again.status_code == 200 and "already exists" in str(again.context["adminform"].form.errors["name"])
