"""Benchmark (not a test): beat's due-check cycle over 10,000 enabled jobs and one retention
pass over 100,000 backups, in PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bp_sched_bench REDIS_URL=redis://127.0.0.1:6379/9 \
      .venv/bin/python bench/schedules.py [--jobs 10000] [--backups 100000]

The database is created and migrated if missing; a tenant ``bench-schedules`` is (re)built
in it. Measured:

1. ``job_create`` for 200 jobs (validation + next run time + audit, one transaction each);
2. the remaining jobs bulk-inserted with their next run times (20 timezones);
3. beat: loading its own entries (a handful: jobs are not beat entries) and, per tick, the
   dispatch of due jobs from ``next_run_at`` (``schedules.beat.dispatch_due_jobs``) with
   nothing due and with 50 jobs due at once (median of ``--rounds``);
4. the retention dry run (``cleanup_analyse``) over 100,000 backups spread over the jobs:
   query, the engine per series, and saving the ``CleanupPlan``.

First, without a database, the retention engine alone (``plan_retention``) on one series of
100,000 backups with every rule set, over several rounds (min and median, the machine's load
and the peak RSS). ``--engine-only`` stops there:

    .venv/bin/python bench/schedules.py --engine-only [--rounds 5]

There is no alternative implementation to alternate with, so no ratio is reported.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    base = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(base, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def engine_rounds(backups: int, rounds: int) -> None:
    """``plan_retention`` over one series of ``backups`` backups (the shape of the old timing test)."""
    import resource
    import statistics
    from datetime import UTC, datetime, timedelta

    from schedules.retention import BackupInfo, RetentionRules, plan_retention

    rng = random.Random(7)
    start = datetime(2013, 1, 1, tzinfo=UTC)
    statuses = ["completed"] * 8 + ["failed", "cancelled"]
    infos = [
        BackupInfo(i, start + timedelta(hours=i), rng.choice(statuses), verified=rng.random() < 0.5)
        for i in range(backups)
    ]
    rng.shuffle(infos)
    rules = RetentionRules(
        keep_last_n=10,
        keep_days=30,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=10,
        timezone="Europe/Berlin",
    )
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        plan = plan_retention(infos, rules, start + timedelta(hours=backups))
        times.append(time.perf_counter() - began)
    peak_kb = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"retention engine (plan_retention) over {backups} backups, {rounds} rounds: "
        f"min {min(times):.2f} s, median {statistics.median(times):.2f} s; {len(plan.keep)} kept; "
        f"load average {load}; peak RSS {peak_kb / 1024:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--backups", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--engine-only", action="store_true")
    args = parser.parse_args()
    import django

    django.setup()
    engine_rounds(args.backups, args.rounds)
    if args.engine_only:
        return
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (it is created if missing)")
    _ensure_database(url)

    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import statistics

    from django.utils import timezone
    from django_celery_beat.schedulers import DatabaseScheduler

    from backupplatform.celery import app
    from backups.models import Application, Backup, Storage
    from schedules import beat, services
    from schedules.models import BackupJob
    from tenants.models import Tenant

    Tenant.objects.filter(slug="bench-schedules").delete()
    tenant = Tenant.objects.create(slug="bench-schedules", name="bench", plan="dedicated")
    storage = Storage.objects.create(tenant=tenant, name="local", type="local", configuration={"path": "/tmp/x"})
    zones = [
        "UTC",
        "America/New_York",
        "Europe/Paris",
        "Asia/Tokyo",
        "Australia/Sydney",
        "America/Los_Angeles",
        "Europe/London",
        "Asia/Kolkata",
        "America/Sao_Paulo",
        "Africa/Cairo",
        "Europe/Berlin",
        "Asia/Dubai",
        "America/Chicago",
        "Pacific/Auckland",
        "Asia/Singapore",
        "Europe/Madrid",
        "America/Toronto",
        "Asia/Shanghai",
        "Europe/Moscow",
        "America/Denver",
    ]
    rng = random.Random(7)

    apps = Application.objects.bulk_create(
        [Application(tenant=tenant, name=f"app-{n}") for n in range(args.jobs)], batch_size=2000
    )
    started = time.perf_counter()
    first = min(200, args.jobs)
    for n in range(first):
        services.job_create(
            tenant=tenant,
            name=f"job-{n}",
            application=apps[n],
            storage=storage,
            schedule_type="daily",
            schedule_time=timezone.now().time().replace(hour=n % 24, minute=n % 60, second=0, microsecond=0),
            timezone=zones[n % len(zones)],
            retention_count=5,
        )
    per_create = (time.perf_counter() - started) / first
    print(f"job_create (validate + next run + audit): {per_create * 1000:.1f} ms per job ({first} jobs)")

    started = time.perf_counter()
    jobs = []
    now = timezone.now()
    for n in range(first, args.jobs):
        hour, minute = rng.randrange(24), rng.randrange(60)
        jobs.append(
            BackupJob(
                tenant=tenant,
                name=f"job-{n}",
                application=apps[n],
                storage=storage,
                schedule_type="daily",
                cron_expression=f"{minute} {hour} * * *",
                timezone=zones[n % len(zones)],
                retention_count=5,
            )
        )
    jobs = BackupJob.objects.bulk_create(jobs, batch_size=2000)
    for job in jobs:
        job.next_run_at = beat.next_run_after(job, now)
    BackupJob.objects.bulk_update(jobs, ["next_run_at"], batch_size=2000)
    print(f"bulk insert of {len(jobs)} jobs with their next run: {time.perf_counter() - started:.1f} s")
    enabled = BackupJob.objects.filter(tenant=tenant, enabled=True).count()

    # Beat's own entries: a handful, whatever the number of jobs.
    scheduler = DatabaseScheduler(app=app, lazy=True)
    started = time.perf_counter()
    schedule = scheduler.all_as_schedule()
    load = time.perf_counter() - started
    print(
        f"beat DatabaseScheduler: load {len(schedule)} entries in {load * 1000:.0f} ms "
        f"({enabled} enabled backup jobs are not beat entries)"
    )

    # What each beat tick does for the jobs: the dispatch query, with nothing due and with
    # 50 jobs due at once (their runs sent to a list instead of the broker).
    rounds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        beat.dispatch_due_jobs(send=lambda *a: None)
        idle = time.perf_counter() - started
        due_ids = list(BackupJob.objects.filter(tenant=tenant).order_by("?").values_list("pk", flat=True)[:50])
        BackupJob.objects.filter(pk__in=due_ids).update(next_run_at=timezone.now())
        sent: list = []
        started = time.perf_counter()
        beat.dispatch_due_jobs(send=lambda job_id, due, priority, into=sent: into.append(job_id))
        busy = time.perf_counter() - started
        assert sorted(sent) == sorted(due_ids), "every due job sent once"
        rounds.append((idle, busy))
    idle = statistics.median(r[0] for r in rounds)
    busy = statistics.median(r[1] for r in rounds)
    print(
        f"dispatch per beat tick over {enabled} jobs (median of {args.rounds}): nothing due "
        f"{idle * 1000:.1f} ms, 50 due {busy * 1000:.1f} ms; beat ticks every second, so a due job "
        f"is sent at most ~1 s + {busy * 1000:.0f} ms after its time; load {os.getloadavg()[0]:.2f}"
    )

    started = time.perf_counter()
    all_jobs = list(BackupJob.objects.filter(tenant=tenant).values_list("pk", "application_id"))
    now = timezone.now()
    rows = []
    statuses = ["completed"] * 17 + ["failed", "failed", "running"]
    for n in range(args.backups):
        job_id, app_id = all_jobs[n % len(all_jobs)]
        rows.append(
            Backup(
                tenant=tenant,
                job_id=job_id,
                application_id=app_id,
                storage=storage,
                status=rng.choice(statuses),
                stored_bytes=rng.randrange(1, 10**9),
                verified=rng.random() < 0.3,
                storage_path=f"bench/{n}",
            )
        )
    Backup.objects.bulk_create(rows, batch_size=5000)
    # spread them over the last ~300 days
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE backups_backup SET created_at = %s - (id %% 7200) * interval '1 hour' WHERE tenant_id = %s",
            [now, tenant.pk],
        )
    print(f"inserted {args.backups} backups: {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    plan = services.cleanup_analyse(tenant=tenant, reason="bench")
    took = time.perf_counter() - started
    a = plan.analysis
    print(
        f"retention pass (cleanup_analyse) over {a['total_backups']} backups in {len(all_jobs)} series: "
        f"{took:.2f} s; {a['eligible_for_removal']} to delete, {a['backups_to_keep']} kept"
    )

    Tenant.objects.filter(pk=tenant.pk).delete()


if __name__ == "__main__":
    main()
