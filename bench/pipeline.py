"""Benchmark: backing up a PostgreSQL database through the platform vs. the shell pipeline.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bp_bench_meta REDIS_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/pipeline.py --size-gb 1 [--size-gb 3] [--rounds 2]

For each size it (once) creates a database ``bp_bench_<N>g`` of at least that size, then runs,
alternately and ``--rounds`` times each:

- the shell pipeline ``pg_dump -Fc -Z0 | zstd -3 > file``;
- the platform: ``backup_run`` (pg_dump -> zstd -> AES-256-GCM chunks -> SHA-256 -> local
  storage, progress written to the Operation), in this process, sampling its RSS.

It prints wall times, their ratio, and the backing-up process's peak RSS above its idle RSS
(measured after Django is loaded, before the backup starts). Not a test: numbers go to the README.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bp_bench_meta")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler:
    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def ensure_database(name: str, size_gb: float) -> int:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(dbname=name, autocommit=True, **PG) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        target = int(size_gb * 1024 ** 3)
        batch = 0
        while size < target:
            # Realistic-ish rows: ids, timestamps, numbers, and text that compresses about 2-3x.
            conn.execute("""
                CREATE TABLE IF NOT EXISTS events (id bigserial PRIMARY KEY, at timestamptz, account int,
                    amount numeric(12,2), kind text, payload text);
                INSERT INTO events (at, account, amount, kind, payload)
                SELECT now() - (n || ' seconds')::interval, (random() * 100000)::int, random() * 10000,
                       (ARRAY['deposit','withdrawal','transfer','fee'])[1 + (n % 4)],
                       md5(n::text) || ' ' || repeat(chr(97 + (n % 26)), 40) || ' ' || md5(random()::text)
                FROM generate_series(1, 2000000) n;
            """)
            batch += 1
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            print(f"  {name}: {size / 1024 ** 3:.2f} GB after batch {batch}", flush=True)
        return size


def shell_pipeline(name: str, out_dir: Path) -> float:
    target = out_dir / "shell.dump.zst"
    started = time.perf_counter()
    subprocess.run(f'pg_dump -h {PG["host"]} -p {PG["port"]} -U {PG["user"]} -Fc -Z0 -d "{name}" '
                   f'| zstd -3 -q > "{target}"', shell=True, check=True, executable="/bin/bash")
    elapsed = time.perf_counter() - started
    print(f"  shell    {elapsed:7.2f} s  {target.stat().st_size / 1024 ** 2:8.1f} MB", flush=True)
    target.unlink()
    return elapsed


def platform_backup(name: str, out_dir: Path, tenant, server) -> tuple[float, float]:
    from backups.models import Backup, Storage
    from backups.services.backups import backup_run, backup_start

    storage, _ = Storage.objects.update_or_create(tenant=tenant, name="bench-local", defaults={
        "type": "local", "configuration": {"path": str(out_dir / "store")}})
    op = backup_start(tenant=tenant, server=server, database_name=name, storage=storage, compression="zstd",
                      queue=False)
    started = time.perf_counter()
    with PeakSampler() as sampler:
        backup_run(operation_id=op.pk)
    elapsed = time.perf_counter() - started
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    print(f"  platform {elapsed:7.2f} s  {backup.stored_bytes / 1024 ** 2:8.1f} MB  peak RSS {sampler.peak:.1f} MB",
          flush=True)
    shutil.rmtree(out_dir / "store", ignore_errors=True)
    backup.delete()
    return elapsed, sampler.peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gb", type=float, action="append", default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    args = parser.parse_args()
    sizes = args.size_gb or [1.0]

    import psycopg

    meta = os.environ["DATABASE_URL"].rsplit("/", 1)[-1]
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (meta,)).fetchone():
            conn.execute(f'CREATE DATABASE "{meta}"')

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from backups.models import Server
    from tenants.models import Plan, Tenant

    tenant, _ = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench", "plan": Plan.DEDICATED})
    tenant.max_concurrent_backups = 50
    tenant.save()
    server, _ = Server.objects.update_or_create(tenant=tenant, name="bench-pg", defaults={
        "type": "postgresql", "host": PG["host"], "port": PG["port"], "credentials": {"username": PG["user"]}})
    from backups.keys import tenant_data_key

    tenant_data_key(tenant)
    results = []
    for size_gb in sizes:
        name = f"bp_bench_{str(size_gb).replace('.', '_')}g"
        print(f"database {name} (>= {size_gb} GB)", flush=True)
        size = ensure_database(name, size_gb)
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
            out = Path(tmp)
            idle = rss_mb()
            shell_times, platform_times, peaks = [], [], []
            for _ in range(args.rounds):
                shell_times.append(shell_pipeline(name, out))
                elapsed, peak = platform_backup(name, out, tenant, server)
                platform_times.append(elapsed)
                peaks.append(peak)
        best_shell, best_platform = min(shell_times), min(platform_times)
        results.append((size, best_shell, best_platform, idle, max(peaks)))
        if not args.keep:
            import psycopg

            with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print("\n| database | shell pipeline | platform | ratio | idle RSS | peak RSS | above idle |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size, shell_s, platform_s, idle, peak in results:
        print(f"| {size / 1024 ** 3:.2f} GB | {shell_s:.1f} s | {platform_s:.1f} s | {platform_s / shell_s:.2f}x "
              f"| {idle:.0f} MB | {peak:.0f} MB | {peak - idle:.0f} MB |")


if __name__ == "__main__":
    main()
