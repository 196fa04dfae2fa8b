"""Benchmark (not a test): list endpoints at scale, against a cheap endpoint, through a real
ASGI server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bp_lists_bench REDIS_URL=redis://127.0.0.1:6379/8 \
      .venv/bin/python bench/lists.py [--backups 100000] [--rounds 5] [--clients 16] [--requests 400]

The database is created and migrated if missing. Tenant ``bench-big`` gets ``--backups``
backups (and as many audit events); tenant ``bench-small`` 200, so the big tenant's rows sit
between the small one's in every index. One uvicorn worker (the ASGI server with its
connection pool, as ``make run`` starts it) serves both; ``--clients`` threads send
``--requests`` requests per measurement.

Each round measures, in alternating order, ``GET /api/v1/backups?limit=50`` of the big
tenant, the same for the small tenant, and ``GET /api/v1/auth/me`` (the cheap reference:
authentication plus one query), and reports each list's requests per second divided by
``/auth/me``'s in the same round. Printed: min and median of those per-round ratios, the
machine's load average during the run, the peak number of PostgreSQL connections of the
server, failed requests, and the peak RSS of the server's process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    base = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(base, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def build(backups: int) -> dict[str, str]:
    """The two tenants and their API keys (rebuilt when the counts differ)."""
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from audit.models import AuditEvent
    from backups.models import Backup
    from tenants import services
    from tenants.models import Plan, Role, Tenant

    keys = {}
    for slug, count in (("bench-big", backups), ("bench-small", 200)):
        # The backups API is a feature of the dedicated plan (tenants/capabilities.py).
        tenant, _ = Tenant.objects.update_or_create(slug=slug, defaults={"name": slug, "plan": Plan.DEDICATED})
        if Backup.objects.filter(tenant=tenant).count() != count:
            Backup.objects.filter(tenant=tenant).delete()
            with connection.cursor() as cursor:  # audit events are append-only for the platform
                cursor.execute("DELETE FROM audit_auditevent WHERE tenant_id = %s", [tenant.pk])
            now = timezone.now()
            batch = []
            for n in range(count):
                batch.append(
                    Backup(
                        tenant=tenant,
                        name=f"{slug}-{n}",
                        status="completed" if n % 7 else "failed",
                        database_name=f"db{n % 20}",
                        db_type="postgresql",
                        stored_bytes=1000 + n,
                        storage_path=f"{slug}/{n}.bpaf",
                    )
                )
                if len(batch) == 5000:
                    Backup.objects.bulk_create(batch)
                    batch = []
            Backup.objects.bulk_create(batch)
            # Spread creation times over a year, interleaving the tenants.
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE backups_backup SET created_at = %s - (id %% 365) * interval '1 day' "
                    "- (id %% 86400) * interval '1 second' WHERE tenant_id = %s",
                    [now, tenant.pk],
                )
            AuditEvent.objects.bulk_create(
                [
                    AuditEvent(tenant=tenant, action="bench", resource_type="backup", resource_id=str(n))
                    for n in range(count)
                ],
                batch_size=5000,
            )
        _, raw = services.api_key_create(tenant=tenant, name=f"bench-{int(time.time())}", role=Role.VIEWER)
        keys[slug] = raw
    with connection.cursor() as cursor:  # autocommit: what autovacuum would do after a bulk load
        cursor.execute("VACUUM ANALYZE backups_backup")
        cursor.execute("VACUUM ANALYZE audit_auditevent")
    return keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


def measure(url: str, key: str, clients: int, requests: int) -> tuple[float, int]:
    def call(_):
        request = urllib.request.Request(url, headers={"X-API-Key": key})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(call, range(requests)))
    elapsed = time.perf_counter() - started
    return requests / elapsed, sum(1 for s in statuses if s != 200)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backups", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    _ensure_database(url)
    import django

    django.setup()
    keys = build(args.backups)
    from django.db import connection

    name = connection.settings_dict["NAME"]
    connection.close()

    port = free_port()
    env = {**os.environ, "DB_POOL_ASGI": "1", "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "backupplatform.asgi:application",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    peak = {"rss": 0, "connections": 0}
    stop = threading.Event()

    def watch():
        import psycopg

        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            while not stop.is_set():
                peak["rss"] = max(peak["rss"], tree_rss(server.pid))
                count = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
                peak["connections"] = max(peak["connections"], count[0])
                time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    targets = {
        "big": (f"{base}/api/v1/backups?limit=50", keys["bench-big"]),
        "small": (f"{base}/api/v1/backups?limit=50", keys["bench-small"]),
        "me": (f"{base}/api/v1/auth/me", keys["bench-big"]),
    }
    ratios: dict[str, list[float]] = {"big": [], "small": []}
    failures, loads = 0, []
    try:
        measure(*targets["me"], args.clients, 50)  # warm-up
        for n in range(args.rounds):
            order = ["me", "big", "small"] if n % 2 == 0 else ["small", "big", "me"]
            rates = {}
            for kind in order:
                rates[kind], failed = measure(*targets[kind], args.clients, args.requests)
                failures += failed
            loads.append(os.getloadavg()[0])
            for kind in ("big", "small"):
                ratios[kind].append(rates[kind] / rates["me"])
            print(
                f"round {n + 1}: me {rates['me']:.0f} req/s, big {rates['big']:.0f} req/s "
                f"({ratios['big'][-1]:.2f}), small {rates['small']:.0f} req/s ({ratios['small'][-1]:.2f}), "
                f"load {loads[-1]:.2f}",
                flush=True,
            )
    finally:
        stop.set()
        server.terminate()
        server.wait(10)
    print(
        json.dumps(
            {
                "backups": args.backups,
                "clients": args.clients,
                "requests_per_measure": args.requests,
                "big_ratio_min": round(min(ratios["big"]), 2),
                "big_ratio_median": round(statistics.median(ratios["big"]), 2),
                "small_ratio_min": round(min(ratios["small"]), 2),
                "small_ratio_median": round(statistics.median(ratios["small"]), 2),
                "failed_requests": failures,
                "peak_pg_connections": peak["connections"],
                "peak_server_rss_mb": round(peak["rss"] / 2**20),
                "load_avg_min_max": [min(loads), max(loads)],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
