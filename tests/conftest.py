"""Shared fixtures: personas in two tenants (CONVENTIONS.md "Tests")."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tenants import services as tenant_services
from tenants.models import Plan, Role, Tenant

PASSWORD = "Corr3ct-Horse-Battery"

# ``start_worker``: a real Celery worker on the test's database (tests/faults has its own);
# ``chromium``: Debian's chromium under Playwright.
pytest_plugins = ["tests.support.workers", "tests.support.browser"]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield


# Each persona tenant's own folders (backups/confinement.py) are set by the platform operator
# to the test's temporary folder (alpha) and a sibling (bravo), so tests keep their files in
# ``tmp_path``; tests of the default ``<root>/<slug>`` folders create tenants without them.
@pytest.fixture
def tenant_a(db, tmp_path) -> Tenant:
    return Tenant.objects.create(slug="alpha", name="Alpha Inc", plan=Plan.DEDICATED, path_roots=[str(tmp_path)])


@pytest.fixture
def tenant_b(db, tmp_path_factory) -> Tenant:
    return Tenant.objects.create(
        slug="bravo", name="Bravo Ltd", plan=Plan.DEDICATED, path_roots=[str(tmp_path_factory.mktemp("bravo"))]
    )


def make_member(tenant: Tenant, username: str, role: str):
    return tenant_services.user_create(
        tenant=tenant, username=username, role=role, password=PASSWORD, email=f"{username}@example.com"
    ).user


@pytest.fixture
def admin_a(tenant_a):
    return make_member(tenant_a, "alice", Role.ADMIN)


@pytest.fixture
def operator_a(tenant_a):
    return make_member(tenant_a, "oscar", Role.OPERATOR)


@pytest.fixture
def viewer_a(tenant_a):
    return make_member(tenant_a, "victor", Role.VIEWER)


@pytest.fixture
def staff_a(admin_a):
    """Tenant A's admin with staff access to the admin site (not a superuser)."""
    admin_a.is_staff = True
    admin_a.save()
    return admin_a


@pytest.fixture
def admin_b(tenant_b):
    return make_member(tenant_b, "bob", Role.ADMIN)


@pytest.fixture
def outsider(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("olga", "olga@example.com", PASSWORD)


@pytest.fixture
def superuser(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)


def client_for(user=None, *, api_key: str | None = None, workspace: str | None = None) -> APIClient:
    client = APIClient()
    headers = {}
    if user is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {RefreshToken.for_user(user).access_token}"
    if api_key is not None:
        headers["HTTP_X_API_KEY"] = api_key
    if workspace is not None:
        headers["HTTP_X_WORKSPACE"] = workspace
    client.credentials(**headers)
    return client


@pytest.fixture
def api():
    """``api(user)`` -> an authenticated APIClient (JWT); ``api()`` anonymous."""
    return client_for


# --- summaries printed at the end of a run (also under pytest-xdist: the controller process
# collects no test, so it loads no conftest below this one) ---------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from tests.fuzz.conftest import merge_worker_output

    data = getattr(node, "workeroutput", {}).get("api_fuzzing")
    if data:
        merge_worker_output(data)


def pytest_terminal_summary(terminalreporter):
    from tests.examples.conftest import examples_summary
    from tests.fuzz.conftest import fuzz_summary

    examples_summary(terminalreporter)
    fuzz_summary(terminalreporter)
