"""Production settings pass ``check --deploy``; the OpenAPI schema validates without warnings
and shows each facade's envelope."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy():
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="backupplatform.settings.production",
        SECRET_KEY="x" * 20 + "production-secret-key-with-enough-entropy-!@#$%^&*()",
        FIELD_ENCRYPTION_KEY="6q3Y8kS0b2t3wqJmX7vZ6p1y9hNnR4uVdC5eF8gH0iA=",
        BACKUP_MASTER_KEY="dGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmctISE=",
        DATABASE_URL=os.environ.get("DATABASE_URL", "sqlite:////tmp/deploycheck.sqlite3"),
        ALLOWED_HOSTS="backups.example.com",
    )
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_secrets():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FIELD_ENCRYPTION_KEY")}
    env["DJANGO_SETTINGS_MODULE"] = "backupplatform.settings.production"
    result = run_manage("check", env=env)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    out = tmp_path_factory.mktemp("schema") / "schema.yaml"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="backupplatform.settings.test")
    result = run_manage("spectacular", "--validate", "--fail-on-warn", "--file", str(out), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(out.read_text())


def test_schema_shows_each_facades_envelope(schema):
    paths = schema["paths"]

    def resolve(node):
        if "$ref" in node:
            return schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    login = paths["/api/v1/auth/login"]["post"]["responses"]
    ref = login["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"access_token", "refresh_token", "token_type"}
    assert "422" in login
    keys = paths["/api/v1/api-keys"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert set(keys["properties"]) == {"success", "message", "data"}
    listing = resolve(paths["/api/v1/api-keys"]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"success", "data", "total", "page", "page_size", "total_pages"} <= set(listing["properties"])
    audit = resolve(paths["/api/v1/audit/logs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(audit["properties"]) == {"total", "items"}
    error = paths["/api/v1/api-keys"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
    assert {"success", "error", "message", "details"} <= set(error["properties"])


def test_docs_pages_are_served(client):
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # Assets come from the platform itself (self-hosted, offline), not from a CDN.
    assert b"drf_spectacular_sidecar/swagger-ui-dist" in docs.content and b"cdn.jsdelivr" not in docs.content
    assert client.get("/api/redoc/").status_code == 200
    assert client.get("/api/schema/").status_code == 200
