"""JWT login, register, refresh, logout, me (db-backup-platform.md / api-layer.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def login(username: str, password: str = PASSWORD):
    return APIClient().post("/api/v1/auth/login", {"username": username, "password": password}, format="json")


def test_login_returns_the_documented_token_pair(admin_a):
    response = login("alice")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type"}
    assert body["token_type"] == "bearer"
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert me.get("/api/v1/auth/me").json()["user"]["username"] == "alice"


def test_wrong_password_is_401_in_platform_error_shape(admin_a):
    response = login("alice", "nope")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "INVALID_CREDENTIALS"
    assert set(body) == {"detail", "code", "timestamp"}
    assert AuditEvent.objects.filter(action="auth_login_failed").exists()
    assert "nope" not in str(list(AuditEvent.objects.values()))


def test_login_validation_error_is_422_with_loc_msg_type():
    response = APIClient().post("/api/v1/auth/login", {"username": "x"}, format="json")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {"loc": ["body", "password"], "msg": "field required", "type": "value_error.missing"} in detail


def test_expired_access_token_is_401(admin_a):
    token = AccessToken.for_user(admin_a)
    token.set_exp(lifetime=-timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_refresh_rotates_and_old_refresh_token_is_refused(admin_a):
    pair = login("alice").json()
    first = APIClient().post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
    assert first.status_code == 200
    assert first.json()["access_token"] and first.json()["refresh_token"] != pair["refresh_token"]
    again = APIClient().post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
    assert again.status_code == 401
    assert again.json()["code"] == "TOKEN_INVALID"


def test_logout_blacklists_the_refresh_token(admin_a):
    pair = login("alice").json()
    out = APIClient().post("/api/v1/auth/logout", {"refresh_token": pair["refresh_token"]}, format="json")
    assert out.status_code == 200
    refresh = APIClient().post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
    assert refresh.status_code == 401


def test_garbage_refresh_token_is_401_not_500():
    response = APIClient().post("/api/v1/auth/refresh", {"refresh_token": "not-a-jwt"}, format="json")
    assert response.status_code == 401


def test_register_creates_account_and_own_workspace():
    response = APIClient().post(
        "/api/v1/auth/register",
        {
            "username": "newbie",
            "password": PASSWORD,
            "email": "n@example.com",
            "workspace_name": "Newbie Co",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["workspace"] == "newbie-co" and body["role"] == "admin"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    workspaces = client.get("/api/v1/workspaces").json()
    assert [w["id"] for w in workspaces] == ["newbie-co"]
    assert workspaces[0]["plan"] == "shared"


def test_register_rejects_weak_password_and_duplicate_username(admin_a):
    weak = APIClient().post("/api/v1/auth/register", {"username": "x1", "password": "123"}, format="json")
    assert weak.status_code == 422
    dup = APIClient().post("/api/v1/auth/register", {"username": "alice", "password": PASSWORD}, format="json")
    assert dup.status_code == 422
    assert dup.json()["detail"][0]["loc"] == ["body", "username"]


@override_settings(REGISTRATION_ENABLED=False)
def test_register_can_be_disabled():
    response = APIClient().post("/api/v1/auth/register", {"username": "x", "password": PASSWORD}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "REGISTRATION_DISABLED"


def test_me_describes_caller_workspace_and_role(api, admin_a):
    body = api(admin_a).get("/api/v1/auth/me").json()
    assert body["workspace"] == "alpha" and body["role"] == "admin" and body["auth_method"] == "jwt"
    assert [w["id"] for w in body["workspaces"]] == ["alpha"]


def test_unauthenticated_calls_are_401(db):
    for path in ("/api/v1/auth/me", "/api/v1/workspaces", "/api/v1/users", "/api/v1/audit/logs"):
        response = APIClient().get(path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "UNAUTHORIZED"


def test_login_is_throttled_per_ip_with_retry_after(admin_a, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "5/min", "console": "60/min", "jobs": "100/min"},
    }
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        statuses = [login("alice", "wrong").status_code for _ in range(5)]
        assert statuses == [401] * 5
        blocked = login("alice")  # even the right password waits
        assert blocked.status_code == 429
        assert int(blocked["Retry-After"]) > 0
        assert blocked.json()["code"] == "RATE_LIMITED"
    finally:
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
