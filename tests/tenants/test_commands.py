"""Management commands used by outside scripts: exact names and arguments."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from tenants.models import ApiKey, Membership, Tenant

pytestmark = pytest.mark.django_db


def test_createtenant_createuser_createapikey(capsys):
    call_command("createtenant", "acme", "--name", "ACME", "--plan", "dedicated")
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.plan) == ("ACME", "dedicated")
    call_command(
        "createuser",
        "wile",
        "--tenant",
        "acme",
        "--role",
        "operator",
        "--password",
        "Corr3ct-Horse-Battery",
        "--email",
        "w@acme.test",
    )
    membership = Membership.objects.get(user__username="wile")
    assert membership.role == "operator" and membership.tenant == tenant
    assert get_user_model().objects.get(username="wile").check_password("Corr3ct-Horse-Battery")
    capsys.readouterr()
    call_command("createapikey", "--tenant", "acme", "--role", "viewer", "--name", "monitor")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("bpk_")
    key = ApiKey.objects.get(name="monitor")
    assert key.key_hash != raw and raw not in key.key_hash
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/api/v1/auth/me").json()["workspace"] == "acme"


def test_commands_refuse_bad_input(db):
    with pytest.raises(CommandError, match="slug"):
        call_command("createtenant", "Bad Slug!")
    call_command("createtenant", "dup")
    with pytest.raises(CommandError, match="already exists"):
        call_command("createtenant", "dup")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("createuser", "x", "--tenant", "missing", "--role", "viewer")
    with pytest.raises(CommandError):
        call_command("createuser", "x", "--tenant", "dup", "--role", "overlord")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("createapikey", "--tenant", "missing", "--role", "viewer", "--name", "n")


def test_createuser_adds_existing_user_to_another_tenant(db):
    call_command("createtenant", "one")
    call_command("createtenant", "two")
    call_command("createuser", "sam", "--tenant", "one", "--role", "admin")
    call_command("createuser", "sam", "--tenant", "two", "--role", "viewer")
    assert set(Membership.objects.filter(user__username="sam").values_list("tenant__slug", "role")) == {
        ("one", "admin"),
        ("two", "viewer"),
    }


def test_seed_demo_prints_password_once(capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    assert "Password:" in first
    call_command("seed_demo")
    assert "Password:" not in capsys.readouterr().out
    password = next(line.split()[-1] for line in first.splitlines() if "Password:" in line)
    response = APIClient().post("/api/v1/auth/login", {"username": "admin", "password": password}, format="json")
    assert response.status_code == 200
