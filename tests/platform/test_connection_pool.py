"""Under load, the ASGI server's PostgreSQL connections stay bounded (a pool), and no request
fails for want of a connection."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tenants import services as tenant_services
from tenants.models import Role
from tests.support.live_asgi import start_asgi, stop

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)
POOL_MAX = 4


@pytest.fixture
def pooled_server(django_db_setup):
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("connection pooling is PostgreSQL's (the test needs a PostgreSQL server)")
    proc, port = start_asgi(
        env={"DB_POOL_ASGI": "1", "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": str(POOL_MAX)}, log_level="warning"
    )
    yield f"http://127.0.0.1:{port}", db
    stop(proc)


def server_connections(db, pid_of_test: int) -> int:
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> %s", (db["NAME"], pid_of_test)
        ).fetchone()[0]


def list_under_load(url: str, key: str, *, clients: int, requests: int, sample, every: float) -> list:
    """``requests`` GETs of ``url`` from ``clients`` threads, calling ``sample()`` every
    ``every`` seconds meanwhile; the (status, body) of each request."""
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            sample()
            time.sleep(every)

    def call(_):
        request = urllib.request.Request(url, headers={"X-API-Key": key})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(call, range(requests)))
    finally:
        stop.set()
        watcher.join()


def test_sixteen_concurrent_clients_share_a_bounded_pool(pooled_server, tenant_a):
    from django.db import connection

    base, db = pooled_server
    _, raw = tenant_services.api_key_create(tenant=tenant_a, name="load", role=Role.VIEWER)
    connection.ensure_connection()
    own_pid = connection.connection.info.backend_pid
    peak = [0]

    def sample():
        peak[0] = max(peak[0], server_connections(db, own_pid))

    results = list_under_load(
        f"{base}/api/v1/backups?limit=50", raw, clients=16, requests=320, sample=sample, every=0.05
    )
    assert [status for status, _ in results] == [200] * 320
    assert all(body["total"] == 0 for _, body in results)
    assert 1 <= peak[0] <= POOL_MAX, peak[0]


def test_requests_reuse_the_processes_redis_connections(pooled_server, tenant_a):
    """Every request runs in a fresh thread; its cache reads (a list's cached total) must take
    a connection from the process's pool, not open and handshake a new one each time."""
    import psutil
    from django.conf import settings

    base, _ = pooled_server
    redis_port = urlsplit(settings.REDIS_URL).port or 6379
    server = next(p for p in psutil.Process().children(recursive=True) if "uvicorn" in " ".join(p.cmdline()))
    _, raw = tenant_services.api_key_create(tenant=tenant_a, name="redis", role=Role.VIEWER)
    ports = set()

    def sample():
        ports.update(c.laddr.port for c in server.net_connections("tcp") if c.raddr and c.raddr.port == redis_port)

    results = list_under_load(f"{base}/api/v1/backups?limit=5", raw, clients=4, requests=200, sample=sample, every=0.01)
    assert [status for status, _ in results] == [200] * 200
    assert 1 <= len(ports) <= 8, f"{len(ports)} Redis connections for 200 requests"
