"""Signing in to the admin, end to end over HTTP against a live ASGI server: a TOTP second
factor that a tenant makes mandatory (enrolment, verification, refusal), single sign-on
through a real OpenID Connect provider (django-oauth-toolkit in its own process) whose
``groups`` claim becomes tenant memberships, and automation (JWT, API keys) unaffected."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from django_otp.oath import TOTP

from audit.models import AuditEvent
from backupplatform.errors import Forbidden
from tenants import services
from tenants.models import Membership, OidcIdentity, Role
from tests.conftest import PASSWORD, make_member
from tests.support.live_asgi import start_asgi, stop

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
            time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def live_platform(django_db_setup, tmp_path):
    """``live_platform(**env)`` -> (base URL, log file): uvicorn on the test database."""
    started: list[subprocess.Popen] = []

    def start(port: int | None = None, **extra: str) -> tuple[str, Path]:
        port = port or free_port()
        log = tmp_path / f"platform-{port}.log"
        proc, port = start_asgi(port=port, env=extra, log=log, log_level="info")
        started.append(proc)
        return f"http://127.0.0.1:{port}", log

    yield start
    for proc in started:
        stop(proc)


def form_post(session: requests.Session, url: str, data: dict, csrf_cookie: str = "csrftoken") -> requests.Response:
    page = session.get(url)
    assert page.status_code == 200, page.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(page.url, data={"csrfmiddlewaretoken": token, **data}, headers={"Referer": page.url})


def password_login(base: str, username: str) -> tuple[requests.Session, requests.Response]:
    session = requests.Session()
    response = form_post(
        session, f"{base}/admin/login/?next=/admin/", {"username": username, "password": PASSWORD, "next": "/admin/"}
    )
    return session, response


def code(secret_b32: str, *, steps_ahead: int = 0) -> str:
    totp = TOTP(base64.b32decode(secret_b32))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_a_tenant_makes_two_factor_mandatory_and_its_members_enrol_then_verify(live_platform, tenant_a, admin_a):
    operator = make_member(tenant_a, "olive", Role.OPERATOR)
    type(operator).objects.filter(pk__in=[operator.pk, admin_a.pk]).update(is_staff=True)
    with pytest.raises(Forbidden):
        services.tenant_two_factor_set(tenant=tenant_a, required=True, actor=operator)
    services.tenant_two_factor_set(tenant=tenant_a, required=True, actor=admin_a)
    base, log = live_platform()

    # Password first: no session yet, the enrolment page with a fresh authenticator instead.
    session, response = password_login(base, "olive")
    assert response.url == f"{base}/admin/two-factor/"
    assert "Alpha Inc requires a second factor" in response.text
    secret = re.search(r'id="totp-secret">([A-Z2-7=]+)<', response.text).group(1)
    assert 'href="otpauth://totp/' in response.text and re.search(r'id="totp-qr"><svg', response.text)
    assert "no-store" in response.headers["Cache-Control"]
    assert session.get(f"{base}/admin/", allow_redirects=False).status_code == 302  # not signed in yet
    assert session.get(f"{base}/api/v1/auth/me").status_code == 401  # nor for the API's session auth

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text).group(1)
    done = session.post(
        response.url, data={"csrfmiddlewaretoken": token, "token": code(secret)}, headers={"Referer": response.url}
    )
    assert done.url == f"{base}/admin/" and done.status_code == 200
    assert "olive" in done.text and "Log out" in done.text

    # The next sign-in asks for a code (the seed is not shown again); a wrong one is refused.
    other, asked = password_login(base, "olive")
    assert asked.url == f"{base}/admin/two-factor/" and secret not in asked.text and "Verify" in asked.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', asked.text).group(1)
    ok = other.post(
        asked.url,
        data={"csrfmiddlewaretoken": token, "token": code(secret, steps_ahead=1)},
        headers={"Referer": asked.url},
    )
    assert ok.url == f"{base}/admin/"
    third, asked = password_login(base, "olive")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', asked.text).group(1)
    wrong = third.post(
        asked.url,
        data={"csrfmiddlewaretoken": token, "token": "000000" if code(secret) != "000000" else "111111"},
        headers={"Referer": asked.url},
    )
    assert wrong.status_code == 200 and "That code is not valid" in wrong.text
    assert third.get(f"{base}/admin/", allow_redirects=False).status_code == 302

    actions = list(
        AuditEvent.objects.filter(resource_type="user", resource_id=str(operator.pk)).values_list("action", flat=True)
    )
    assert "two_factor_enrol" in actions and "two_factor_failed" in actions
    assert AuditEvent.objects.filter(action="tenant_update", tenant=tenant_a, details__require_two_factor=True).exists()
    every_event = json.dumps(list(AuditEvent.objects.values("details")))
    from django_otp.plugins.otp_totp.models import TOTPDevice

    hex_key = TOTPDevice.objects.get(user=operator).key
    for seed in (secret, secret.rstrip("="), hex_key):
        assert seed not in every_event and seed not in log.read_text()


def test_automation_keeps_working_with_two_factor_mandatory(live_platform, tenant_a, admin_a):
    services.tenant_two_factor_set(tenant=tenant_a, required=True, actor=admin_a)
    _, raw_key = services.api_key_create(tenant=tenant_a, name="ci", role=Role.OPERATOR)
    base, _ = live_platform()
    login = requests.post(f"{base}/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200
    me = requests.get(f"{base}/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
    assert me.status_code == 200 and me.json()["user"]["username"] == "alice"
    keyed = requests.get(f"{base}/api/v1/auth/me", headers={"X-API-Key": raw_key})
    assert keyed.status_code == 200 and keyed.json()["workspace"] == "alpha"


def test_a_session_opened_before_the_policy_is_logged_out_at_its_next_request(tenant_a, admin_a):
    type(admin_a).objects.filter(pk=admin_a.pk).update(is_staff=True)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "alice", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200
    services.tenant_two_factor_set(tenant=tenant_a, required=True, actor=admin_a)
    again = client.get("/admin/")
    assert again.status_code == 302 and again.url.startswith("/admin/login/")
    assert client.get("/admin/").status_code == 302  # the session is gone, not just this request


def test_a_superuser_or_tenant_admin_resets_a_lost_authenticator(tenant_a, tenant_b, admin_a, admin_b):
    member = make_member(tenant_a, "mia", Role.OPERATOR)
    device = services.totp_enrolment_start(user=member)
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
    assert services.two_factor_required(member)
    with pytest.raises(Forbidden):
        services.two_factor_reset(user=member, actor=admin_b)
    assert services.two_factor_reset(user=member, actor=admin_a) == 1
    assert not services.two_factor_required(member)


# --- single sign-on ---------------------------------------------------------------------------


@pytest.fixture
def oidc_provider(tmp_path):
    """``oidc_provider(redirect_uri, users)`` -> provider base URL, client id and secret."""
    procs: list[subprocess.Popen] = []

    def start(redirect_uri: str, users: list[str]) -> dict[str, str]:
        port = free_port()
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            .decode()
        )
        client_id, client_secret = f"platform-{secrets.token_hex(4)}", secrets.token_urlsafe(32)
        env = dict(os.environ, OIDC_PROVIDER_DB=str(tmp_path / "idp.sqlite3"), OIDC_PROVIDER_RSA_KEY=key)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        log = tmp_path / "idp.log"
        args = [
            sys.executable,
            "-m",
            "tests.support.oidc_provider.serve",
            "--port",
            str(port),
            "--client-id",
            client_id,
            f"--client-secret={client_secret}",
            "--redirect-uri",
            redirect_uri,
        ]
        for user in users:
            args += ["--user", user]
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        procs.append(proc)
        wait_port(port, proc, log)
        base = f"http://127.0.0.1:{port}"
        return {"base": base, "client_id": client_id, "client_secret": client_secret, "issuer": f"{base}/o"}

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def sso_env(idp: dict[str, str]) -> dict[str, str]:
    return {
        "OIDC_RP_CLIENT_ID": idp["client_id"],
        "OIDC_RP_CLIENT_SECRET": idp["client_secret"],
        "OIDC_OP_ISSUER": idp["issuer"],
        "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{idp['base']}/o/authorize/",
        "OIDC_OP_TOKEN_ENDPOINT": f"{idp['base']}/o/token/",
        "OIDC_OP_USER_ENDPOINT": f"{idp['base']}/o/userinfo/",
        "OIDC_OP_JWKS_ENDPOINT": f"{idp['base']}/o/.well-known/jwks.json",
        "OIDC_PROVIDER_NAME": "Test IdP",
    }


def sso_login(base: str, username: str) -> requests.Session | requests.Response:
    session = requests.Session()
    login_page = session.get(f"{base}/admin/login/")
    assert "Sign in with Test IdP" in login_page.text
    start = re.search(r'<a class="button" href="([^"]+)">Sign in with', login_page.text).group(1)
    # platform -> provider's authorize -> provider's login form (its own cookies and CSRF token)
    form = session.get(f"{base}{start.replace('&amp;', '&')}")
    assert "Test identity provider" in form.text, form.text[:300]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    nxt = re.search(r'name="next" value="([^"]+)"', form.text).group(1).replace("&amp;", "&")
    # -> authorize (no consent screen for this client) -> the platform's callback -> /admin/
    return session, session.post(
        form.url,
        data={"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD, "next": nxt},
        headers={"Referer": form.url},
    )


def test_single_sign_on_maps_the_groups_claim_to_memberships(live_platform, oidc_provider, tenant_a, tenant_b, admin_a):
    services.tenant_two_factor_set(tenant=tenant_a, required=True, actor=admin_a)  # the provider's MFA counts
    port = free_port()
    idp = oidc_provider(
        f"http://127.0.0.1:{port}/oidc/callback/",
        [
            f"olivia:{PASSWORD}:alpha:operator,bravo:viewer,bravo:admin,ghost:admin,notarole",
            f"stranger:{PASSWORD}:elsewhere:admin",
        ],
    )
    base, log = live_platform(port, **sso_env(idp))

    session, landed = sso_login(base, "olivia")
    assert landed.status_code == 200 and landed.url == f"{base}/admin/", landed.text[:500]
    assert "Welcome," in landed.text and "Olivia" in landed.text and "Log out" in landed.text
    identity = OidcIdentity.objects.select_related("user").get()
    user = identity.user
    assert identity.issuer == idp["issuer"] and user.username == "olivia" and user.is_staff
    assert not user.has_usable_password() and user.email == "olivia@idp.example"
    roles = dict(Membership.objects.filter(user=user).values_list("tenant__slug", "role"))
    assert roles == {"alpha": Role.OPERATOR, "bravo": Role.ADMIN}  # unknown tenants and values ignored
    # The session works for the API too, scoped by those memberships.
    me = session.get(f"{base}/api/v1/auth/me", headers={"X-CSRFToken": session.cookies.get("csrftoken", "")})
    assert me.status_code == 200 and {w["id"]: w["role"] for w in me.json()["workspaces"]} == {
        "alpha": "operator",
        "bravo": "admin",
    }

    # Signing in again finds the same account by its subject, not a new one.
    _, again = sso_login(base, "olivia")
    assert again.url == f"{base}/admin/" and OidcIdentity.objects.count() == 1

    # Someone the claim gives no tenant of this platform gets no account.
    _, refused = sso_login(base, "stranger")
    assert refused.url == f"{base}/admin/login/?sso=failed" and "Single sign-on did not succeed" in refused.text
    assert not type(user).objects.filter(username="stranger").exists()

    assert idp["client_secret"] not in log.read_text()
    assert idp["client_secret"] not in json.dumps(list(AuditEvent.objects.values("details")))
    assert AuditEvent.objects.filter(action="membership_create", details__via="oidc").count() == 2


def test_the_identity_provider_is_the_source_of_memberships(tenant_a, tenant_b):
    member = make_member(tenant_a, "sam", Role.ADMIN)
    services.oidc_memberships_sync(user=member, tenant_roles=services.oidc_tenant_roles(["bravo:viewer"]))
    assert dict(Membership.objects.filter(user=member).values_list("tenant__slug", "role")) == {"bravo": "viewer"}
    assert services.oidc_tenant_roles("alpha:operator bravo:admin") == {tenant_a: "operator", tenant_b: "admin"}
    assert services.oidc_tenant_roles(None) == {} and services.oidc_tenant_roles([{"x": 1}, "a:b:c"]) == {}


def test_a_signed_in_user_adds_an_authenticator_of_their_own_accord(tenant_a, admin_a):
    type(admin_a).objects.filter(pk=admin_a.pk).update(is_staff=True)
    client = Client()
    assert client.get("/admin/two-factor/setup/").url.startswith("/admin/login/")
    client.post("/admin/login/", {"username": "alice", "password": PASSWORD})
    page = client.get("/admin/two-factor/setup/")
    secret = re.search(r'id="totp-secret">([A-Z2-7=]+)<', page.content.decode()).group(1)
    assert f'id="totp-secret">{secret}<' in client.get("/admin/two-factor/setup/").content.decode()  # same device
    done = client.post("/admin/two-factor/setup/", {"token": code(secret)})
    assert done.status_code == 302 and services.two_factor_enrolled(admin_a)
    assert client.get("/admin/").status_code == 200  # this session carries the second factor now
    assert "already protects" in client.get("/admin/two-factor/setup/").content.decode()
    # From now on the password alone is not enough.
    other = Client()
    response = other.post("/admin/login/", {"username": "alice", "password": PASSWORD})
    assert response.url == "/admin/two-factor/" and other.get("/admin/").status_code == 302
