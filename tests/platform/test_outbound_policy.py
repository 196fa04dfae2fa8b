"""One network policy for every target a tenant configures (backupplatform/netpolicy.py):
metadata and link-local never, the platform's own database and Redis never, private and
loopback networks only where the operator allows them; checked on save and at connect time."""

from __future__ import annotations

import ipaddress

import pytest
from django.conf import settings as django_settings

from backupplatform import netpolicy
from backups import connectivity
from backups.models import Backup, Server
from backups.services.backups import backup_start
from backups.tasks import run_backup

pytestmark = pytest.mark.django_db

METADATA_URLS = [
    "http://169.254.169.254/latest/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:169.254.169.254]/",
    "http://100.100.100.200/",
    "http://[fe80::1]/",
]


@pytest.fixture
def production_policy(settings):
    """What a production deployment has until the operator lists its networks."""
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    settings.OUTBOUND_ALLOW_PLATFORM_SERVICES = False
    return settings


def platform_db() -> tuple[str, int]:
    db = django_settings.DATABASES["default"]
    return db["HOST"], int(db["PORT"] or 5432)


@pytest.mark.parametrize("url", METADATA_URLS)
def test_metadata_and_link_local_are_refused_even_when_everything_is_allowed(settings, url):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["0.0.0.0/0", "::/0"]
    assert netpolicy.url_refusal(url) is not None


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("10.1.2.3", False),
        ("192.168.1.10", False),
        ("172.20.0.5", False),
        ("100.64.1.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("db.does-not-resolve.invalid", True),
    ],
)
def test_production_defaults(production_policy, host, allowed):
    assert (netpolicy.host_refusal(host, 5432) is None) is allowed


def test_listed_private_networks_are_allowed(production_policy):
    production_policy.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert netpolicy.host_refusal("10.1.2.3", 5432) is None
    assert netpolicy.host_refusal("192.168.1.10", 5432) is not None


def test_the_platforms_own_database_and_redis_are_never_targets(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    settings.OUTBOUND_ALLOW_PLATFORM_SERVICES = False
    host, port = platform_db()
    assert "platform's own" in netpolicy.host_refusal(host, port)
    redis = settings.REDIS_URL.split("//", 1)[1].split("/", 1)[0]
    redis_host, redis_port = redis.rsplit(":", 1)
    assert "platform's own" in netpolicy.host_refusal(redis_host, int(redis_port))
    assert netpolicy.host_refusal(host, port + 1) is None  # another service on that host is fine


def test_a_tenant_cannot_register_the_platforms_database_as_a_server(api, admin_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.OUTBOUND_ALLOW_PLATFORM_SERVICES = False
    host, port = platform_db()
    response = api(admin_a).post(
        "/api/v1/servers", {"name": "mine", "type": "postgresql", "host": host, "port": port}, format="json"
    )
    assert response.status_code == 422, response.content
    assert "platform's own database" in str(response.json()["detail"])
    assert not Server.objects.filter(name="mine").exists()
    moved = api(admin_a).post(
        "/api/v1/servers", {"name": "ok", "type": "postgresql", "host": host, "port": port + 1}, format="json"
    )
    assert moved.status_code == 201
    refused = api(admin_a).put(f"/api/v1/servers/{moved.json()['id']}", {"port": port}, format="json")
    assert refused.status_code == 422
    assert Server.objects.get(name="ok").port == port + 1


def test_storage_endpoint_and_acronis_base_url_pass_the_same_policy(api, admin_a, production_policy):
    storage = api(admin_a).post(
        "/api/v1/workspaces/alpha/backup-storages",
        {
            "name": "meta",
            "type": "minio",
            "configuration": {"bucket": "bucket1", "endpoint_url": "http://169.254.169.254"},
            "credentials": {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "x" * 40},
        },
        format="json",
    )
    assert storage.status_code == 400, storage.content
    assert "endpoint_url" in storage.json()["error"]["details"]
    sftp = api(admin_a).post(
        "/api/v1/storage/test",
        {
            "provider_type": "sftp",
            "configuration": {"host": "127.0.0.1", "path": "/upload", "username": "u"},
            "credentials": {"password": "p"},
        },
        format="json",
    )
    assert sftp.status_code == 400, sftp.content
    assert "host" in sftp.json()["details"] and "loopback" in str(sftp.json()["details"])
    acronis = api(admin_a).post(
        "/api/acronis/config",
        {"base_url": "http://169.254.169.254/latest/", "client_id": "c", "client_secret": "s"},
        format="json",
    )
    assert acronis.status_code == 400 and acronis.json()["error_code"] == "ACRONIS_INVALID_CONFIG"
    assert "base_url" in acronis.json()["details"]["fields"]


def test_rows_saved_before_are_refused_at_connect_time(tenant_a, settings, tmp_path):
    """A server that was allowed when saved (or written straight into the database) is
    checked again when a backup or a connection test connects."""
    host, port = platform_db()
    server = Server.objects.create(
        tenant=tenant_a, name="old", type="postgresql", host=host, port=port, credentials={"username": "postgres"}
    )
    settings.OUTBOUND_ALLOW_PLATFORM_SERVICES = False
    result = connectivity.test_connection(type="postgresql", host=host, port=port, username="postgres")
    assert result.success is False and result.kind == "not_allowed"
    from backups import services

    storage = services.storage_create(
        tenant=tenant_a, name="local", type="local", configuration={"path": str(tmp_path / "store")}
    )
    op = backup_start(tenant=tenant_a, server=server, database_name="postgres", storage=storage)
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "failed" and "not allowed as a target" in backup.error_message


def test_ipv4_mapped_addresses_are_judged_as_ipv4(production_policy):
    mapped = ipaddress.ip_address("::ffff:10.0.0.1")
    assert netpolicy.address_refusal(mapped) is not None
    production_policy.OUTBOUND_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert netpolicy.address_refusal(mapped) is None
