"""Benchmark (not a test): the console's statistics and backup list on 1,000, 10,000 and
100,000 backups in PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bp_console_bench REDIS_URL=redis://127.0.0.1:6379/9 \
      .venv/bin/python bench/console.py [--sizes 1000 10000 100000] [--rounds 5]

The database is created and migrated if missing; a tenant ``bench-console`` is (re)built in
it, its backups spread over 90 days (10 % failed, 1 in 7 configuration-only, 5 % verified).
At each size:

- ``GET /statistics?period=90d`` and ``GET /list`` through Django's test client: the number
  of SQL queries (it must not change with the size) and the time of one request;
- the statistics as the platform computes them (``backups.reporting.backup_statistics``:
  aggregate queries) against the alternative of loading the period's rows and adding them
  up in Python, alternating which goes first, round by round: min and median of the
  per-round time ratios (platform / alternative).

Printed with the machine's load average and the peak RSS of the process tree.
``BENCH_QUERIES=1`` also prints each query of the two requests with its time.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.test")


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    base = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(base, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def python_statistics(tenant, since, until) -> dict:
    """The alternative: every backup row of the period loaded and added up in Python."""
    from backups.models import Backup

    summary = defaultdict(int)
    days: dict = defaultdict(lambda: defaultdict(int))
    kinds: dict = defaultdict(lambda: defaultdict(int))
    stores: dict = defaultdict(lambda: defaultdict(int))
    rows = (
        Backup.objects.filter(tenant=tenant, created_at__gte=since, created_at__lte=until)
        .values_list("status", "stored_bytes", "created_at", "components", "trigger", "storage__name")
        .iterator(chunk_size=5000)
    )
    for status, stored, created, components, trigger, storage in rows:
        ok = status == "completed"
        summary["total"] += 1
        summary["successful"] += ok
        summary["failed"] += status == "failed"
        summary["size"] += stored if ok else 0
        day = days[created.date()]
        day["successful"] += ok
        day["failed"] += status == "failed"
        day["size"] += stored if ok else 0
        kind = "pre-ota" if trigger == "pre_restore" else "config" if components == ["config"] else "full"
        kinds[kind]["count"] += 1
        kinds[kind]["size"] += stored if ok else 0
        if ok and storage:
            stores[storage]["count"] += 1
            stores[storage]["size"] += stored
    return {"summary": summary, "days": days, "kinds": kinds, "stores": stores}


def grow(tenant, app, storage, target: int, have: int) -> int:
    from datetime import timedelta

    from django.utils import timezone

    from backups.models import Backup, Verification

    rng = random.Random(have)
    now = timezone.now()
    batch = []
    for i in range(have, target):
        when = now - timedelta(seconds=rng.randint(0, 90 * 86400))
        failed = rng.random() < 0.1
        batch.append(
            Backup(
                tenant=tenant,
                name=f"bench-{i}",
                application=app,
                storage=storage,
                status="failed" if failed else "completed",
                size_bytes=0 if failed else rng.randint(10**6, 10**9),
                stored_bytes=0 if failed else rng.randint(10**5, 10**8),
                components=["config"] if i % 7 == 6 else [],
                started_at=when,
                completed_at=when + timedelta(seconds=rng.randint(5, 900)),
                verified=rng.random() < 0.05,
                error_message="pg_dump: connection refused" if failed else "",
            )
        )
        if len(batch) == 5000:
            Backup.objects.bulk_create(batch)
            batch = []
    if batch:
        Backup.objects.bulk_create(batch)
    # created_at is auto_now_add: spread the new rows over the 90 days in one statement.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE backups_backup SET created_at = started_at WHERE tenant_id = %s AND name LIKE %s "
            "AND created_at > started_at",
            [tenant.pk, "bench-%"],
        )
    verified = list(
        Backup.objects.filter(tenant=tenant, verified=True, verifications__isnull=True).values_list("pk", flat=True)[
            :10000
        ]
    )
    Verification.objects.bulk_create(
        [
            Verification(tenant=tenant, backup_id=pk, test_type="checksum", status="completed", passed=True)
            for pk in verified
        ]
    )
    return target


def measure_request(client, url: str) -> tuple[int, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        began = time.perf_counter()
        response = client.get(url)
        took = time.perf_counter() - began
    assert response.status_code == 200, response.content[:300]
    if os.environ.get("BENCH_QUERIES"):
        for q in queries.captured_queries:
            print(f"   {q['time']}s  {q['sql'][:150]}")
    return len(queries), took, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    _ensure_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings
    from django.test import Client
    from rest_framework_simplejwt.tokens import RefreshToken

    from backups.models import Storage
    from backups.reporting import PERIODS, backup_statistics
    from backups.services import application_get_default
    from tenants import services as tenant_services
    from tenants.models import Role, Tenant

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["console"] = "100000/min"
    Tenant.objects.filter(slug="bench-console").delete()
    tenant = Tenant.objects.create(slug="bench-console", name="Bench console", plan="dedicated")
    user = tenant_services.user_create(
        tenant=tenant, username=f"bench-console-{int(time.time())}", role=Role.ADMIN, password="Corr3ct-Horse-Battery"
    ).user
    storage = Storage.objects.create(
        tenant=tenant, name="disk", type="local", is_default=True, configuration={"path": "/tmp/bench-console-store"}
    )
    app = application_get_default(tenant=tenant)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    have = 0
    print(
        f"{'backups':>8} | {'statistics: queries, one request':>33} | {'list: queries, one request':>27} | "
        f"platform / Python loop per round (min, median)"
    )
    for size in args.sizes:
        have = grow(tenant, app, storage, size, have)
        client.get("/cloud-integration/backup/statistics?period=90d")  # warm-up
        stat_q, stat_t, _ = measure_request(client, "/cloud-integration/backup/statistics?period=90d")
        list_q, list_t, _ = measure_request(client, "/cloud-integration/backup/list")
        ratios = []
        for n in range(args.rounds):
            from django.utils import timezone

            until = timezone.now()
            since = until - PERIODS["90d"]
            timings = {}
            order = ["platform", "python"] if n % 2 == 0 else ["python", "platform"]
            for which in order:
                began = time.perf_counter()
                if which == "platform":
                    backup_statistics(tenant=tenant, period="90d", now=until)
                else:
                    python_statistics(tenant, since, until)
                timings[which] = time.perf_counter() - began
            ratios.append(timings["platform"] / timings["python"])
        print(
            f"{size:>8} | {stat_q:>3} queries, {stat_t * 1000:>8.0f} ms         | "
            f"{list_q:>3} queries, {list_t * 1000:>6.0f} ms   | "
            f"{min(ratios):.3f}, {statistics.median(ratios):.3f}",
            flush=True,
        )
    peak_kb = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; peak RSS of the process tree "
        f"{peak_kb / 1024:.0f} MB"
    )
    Tenant.objects.filter(slug="bench-console").delete()


if __name__ == "__main__":
    main()
