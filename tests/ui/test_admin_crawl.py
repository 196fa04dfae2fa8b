"""Every page of the admin answers 200, for a superuser and for a tenant's staff, and no page
shows a Python dict or list as an error; the overview is the admin's home and ``/`` leads to it."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from .seed import ALPHA_ERROR, BRAVO_ERROR, seed

pytestmark = pytest.mark.django_db

# A Python repr on a page, as Django escapes it: {'field': [...]} or ['message'].
PYTHON_REPR = re.compile(r"(\{|\[)\s*(&#x27;|')[^<]{0,80}?(&#x27;|')\s*(:|,|\])")
ERROR_BLOCK = re.compile(r'class="(errorlist[^"]*|errornote|messagelist)"[^>]*>(.*?)</(ul|p|div)>', re.S)


@pytest.fixture
def seeded(tenant_a, tenant_b):
    return seed(tenant_a, tenant_b)


def pages_for(client: Client, user, seeded) -> list[str]:
    """The admin's pages for this user: each model's list, add form and a row's change form,
    and the console's own pages."""
    request = type("R", (), {"user": user})()
    urls = [reverse("admin:index"), reverse("admin:models")]
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_module_permission(request) or not model_admin.has_view_permission(request):
            continue
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        if model_admin.has_add_permission(request):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        row = model_admin.get_queryset(type("R", (), {"user": user, "GET": {}})()).first()
        if row is not None:
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[row.pk]))
    urls += [
        reverse("admin:console_server_backup", args=[seeded.pg.pk]),
        reverse("admin:console_application_backup", args=[seeded.stale_app.pk]),
        reverse("admin:console_restore", args=[seeded.ok_backup.pk]),
        reverse("admin:console_operation", args=[seeded.operation.public_id]),
    ]
    return urls


def check_page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    html = response.content.decode()
    for _, block, _ in ERROR_BLOCK.findall(html):
        assert not PYTHON_REPR.search(block), f"{url} shows a Python repr as an error: {block[:300]}"
    return html


def test_every_admin_page_answers_for_a_superuser(superuser, seeded):
    client = Client()
    client.force_login(superuser)
    urls = pages_for(client, superuser, seeded)
    assert len(urls) > 40
    for url in urls:
        check_page(client, url)


def test_every_admin_page_answers_for_a_tenant_staff_user_within_its_tenant(staff_a, seeded):
    client = Client()
    client.force_login(staff_a)
    urls = pages_for(client, staff_a, seeded)
    assert len(urls) > 25
    for url in urls:
        html = check_page(client, url)
        assert BRAVO_ERROR not in html and "bravo-pg" not in html and "bravo-app" not in html, url
    # Another tenant's rows are not there, on the console's pages either.
    for url in (
        reverse("admin:console_restore", args=[seeded.bravo_backup.pk]),
        reverse("admin:backups_backup_change", args=[seeded.bravo_backup.pk]),
    ):
        assert client.get(url).status_code == 404


def test_the_overview_is_home_with_the_right_numbers(superuser, staff_a, seeded):
    assert Client().get("/").headers["Location"] == "/admin/"
    client = Client()
    client.force_login(superuser)
    html = client.get("/admin/?tenant=alpha").content.decode()
    # protected: shop (job) and alpha-pg (job); wiki has none
    assert re.search(r'id="card-protected">.*?<span class="n">2</span> / 3', html, re.S)
    assert "wiki" in html
    assert re.search(r'class="good n-ok"[^>]*>2<', html)  # two backups finished in 24 h
    assert re.search(r'class="n-failed"[^>]*>1<', html)  # one failed, with its error
    assert "does not exist" in html and "ledger_failed" in html
    assert re.search(r'<tr class="rpo-stale" data-rpo="shop">', html)  # hourly job, three days old
    assert re.search(r'<tr class="rpo-ok" data-rpo="alpha-pg / orders">', html)
    assert BRAVO_ERROR not in html
    # All tenants: bravo's failure shows too; alpha's staff sees only alpha.
    assert BRAVO_ERROR in client.get("/admin/").content.decode()
    staff = Client()
    staff.force_login(staff_a)
    mine = staff.get("/admin/").content.decode()
    assert ALPHA_ERROR.split(":")[0] in mine and BRAVO_ERROR not in mine and 'id="tenant-picker"' not in mine
    assert "bravo" not in staff.get("/admin/?tenant=bravo").content.decode().split('id="content-main"')[1]


def test_internal_tables_are_grouped_away_from_the_operators_sections(superuser, seeded):
    client = Client()
    client.force_login(superuser)
    html = client.get(reverse("admin:models")).content.decode()
    sections = re.findall(r"<caption>\s*<a[^>]*>([^<]+)</a>", html)
    assert sections[0] == "Backups" and sections[-1].startswith("Internals")
    internals = html[html.rindex("<caption>") :]
    assert "Periodic tasks" in internals and "Blacklisted Tokens" in internals
    operators = html[: html.rindex("<caption>")]
    assert "Periodic tasks" not in operators and "Users" in operators
