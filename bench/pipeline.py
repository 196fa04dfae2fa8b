"""Benchmark: backups and restores through the platform against the shell pipelines they replace.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bp_bench_meta REDIS_URL=redis://127.0.0.1:6379/12 \
        .venv/bin/python bench/pipeline.py [--scenario NAME ...] [--rounds 3] [sizes]

Scenarios (default: all), each platform against its alternative, in the same run:

- ``pg-backup``: ``backup_run`` of a PostgreSQL database (pg_dump -> zstd-3 -> AES-256-GCM ->
  SHA-256 -> local storage, progress on the Operation) vs ``pg_dump -Fc -Z0 | zstd -3 > file``;
- ``pg-backup-api``: the same backup asked for with ``POST /api/v1/backups`` from uvicorn and
  run by a Celery worker (both started by the bench, in its process tree), timed from the
  request to the row saying ``completed``, vs the same shell pipeline;
- ``folder``: ``backup_run`` of an application with one folder source (its tar streamed into
  the pipeline) vs ``tar -cf - folder | zstd -3 > file``; the folder holds 20,000 small files
  and 4 big ones (``--folder-gb`` in all, text-like data that compresses about 3x);
- ``mariadb``: ``backup_run`` of a MariaDB database vs
  ``mysqldump --single-transaction | zstd -3 > file``;
- ``pg-restore``: ``restore_run`` of that PostgreSQL backup into a new database vs
  ``zstd -d < dump.zst | pg_restore -d new`` (the stream, one connection);
- ``pg-restore-jobs``: ``restore_run`` with ``jobs`` (``--jobs``, default 2: the spooled,
  parallel restore) vs the same streamed ``zstd -d | pg_restore``, on a database of
  ``--jobs-tables`` tables (default 4; pg_restore loads one table on one connection).

Before the rounds each side runs once, not measured (``--no-warmup`` skips it): a worker
process is warm, and so are the alternative's tools and the page cache. Before every run,
untimed, the page cache is written out (``sync``) and PostgreSQL checkpoints, so no run pays
for the writeback of another's output or for a checkpoint it did not cause. Each round runs both, alternating which goes first (round 1 platform
first, round 2 the alternative first, ...), and its ratio is platform time / alternative time. The summary gives
the min and median of the per-round ratios (not the ratio of the best times), both medians, the
1-minute load average seen during the rounds, and the peak RSS of the whole process tree above
its idle RSS (this process plus pg_dump / mysqldump / tar / zstd / pg_restore children, and the
server and worker of ``pg-backup-api``; sampled every 20 ms by a separate process; a child
forked but not yet running its program is not counted). Data is made once and kept between
runs (``bp_bench_*`` databases,
``$BENCH_DIR/bp-bench-folder-*``); ``--drop`` removes it at the end. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bp_bench_meta")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root"}
MB = 1024 * 1024
SCENARIOS = ("pg-backup", "pg-backup-api", "folder", "mariadb", "pg-restore", "pg-restore-jobs")


# --------------------------------------------------------------------------- measuring


def tree_rss_mb(root: int, skip: int = 0) -> float:
    """RSS of process ``root`` and all its descendants but ``skip``, in MiB, leaving out a
    child that was just forked and has not yet exec'd its program: until then it is a copy of
    ``root`` sharing all its pages, and counting it would add ``root``'s RSS a second time
    (the single rounds of 150+ MiB seen before)."""
    top = psutil.Process(root)
    mine = top.cmdline()
    total = top.memory_info().rss
    for proc in top.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a child that just ended
            if proc.pid != skip and proc.cmdline() != mine:
                total += proc.memory_info().rss
    return total / MB


def _sampler(root: int) -> None:
    """``python bench/pipeline.py --sample PID``: samples the tree every 20 ms; a line
    ``start`` on stdin takes the idle RSS, ``stop`` prints the peak above it. Sampling runs in
    this separate process: walking the tree costs milliseconds per sample, which would
    otherwise be taken from the process that runs the platform side."""
    import select

    me = os.getpid()
    idle = peak = None
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.02)
        if ready:
            command = sys.stdin.readline().strip()
            if command == "start":
                idle = peak = tree_rss_mb(root, me)
            elif command == "stop":
                print(f"{max((peak or 0) - (idle or 0), 0.0):.1f}", flush=True)
                idle = peak = None
            else:
                return
        elif idle is not None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, tree_rss_mb(root, me))


class TreePeak:
    """The peak RSS of this process's tree above its idle RSS while a block runs, sampled by
    a separate process (``_sampler``)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--sample", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def measure(self, run: Callable[[], None]) -> tuple[float, float]:
        """(seconds, peak tree RSS above the idle tree RSS in MiB) of ``run()``."""
        self._proc.stdin.write("start\n")
        self._proc.stdin.flush()
        time.sleep(0.1)  # the idle sample is taken
        started = time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        time.sleep(0.05)  # a last sample
        self._proc.stdin.write("stop\n")
        self._proc.stdin.flush()
        return elapsed, float(self._proc.stdout.readline())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._proc.stdin.write("quit\n")
            self._proc.stdin.close()
        self._proc.wait(10)


_PEAK: TreePeak | None = None


def measure(run: Callable[[], None]) -> tuple[float, float]:
    """(seconds, peak tree RSS above the idle tree RSS in MiB) of ``run()``."""
    global _PEAK
    if _PEAK is None:
        _PEAK = TreePeak()
    return _PEAK.measure(run)


def shell(command: str) -> None:
    subprocess.run(command, shell=True, check=True, executable="/bin/bash")


# --------------------------------------------------------------------------- data


def ensure_pg_database(name: str, size_gb: float, tables: int = 1) -> int:
    """A database of ``size_gb``: one ``events`` table, or ``tables`` tables ``events_1``... of
    about equal size (a parallel restore loads different tables at once, never one table)."""
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    names = ["events"] if tables == 1 else [f"events_{n}" for n in range(1, tables + 1)]
    with psycopg.connect(dbname=name, autocommit=True, **PG) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        target = int(size_gb * 1024**3)
        rows = max(10_000, min(2_000_000, target // 200 // tables))
        turn = 0
        while size < target:
            table = names[turn % tables]
            turn += 1
            # Realistic-ish rows: ids, timestamps, numbers, and text that compresses about 2-3x.
            conn.execute(f"""
                CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, at timestamptz, account int,
                    amount numeric(12,2), kind text, payload text);
                CREATE INDEX IF NOT EXISTS {table}_account ON {table} (account);
                INSERT INTO {table} (at, account, amount, kind, payload)
                SELECT now() - (n || ' seconds')::interval, (random() * 100000)::int, random() * 10000,
                       (ARRAY['deposit','withdrawal','transfer','fee'])[1 + (n % 4)],
                       md5(n::text) || ' ' || repeat(chr(97 + (n % 26)), 40) || ' ' || md5(random()::text)
                FROM generate_series(1, {rows}) n;
            """)
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            print(f"  {name}: {size / 1024**3:.2f} GB", flush=True)
        return size


def ensure_mariadb_database(name: str, size_mb: float) -> int:
    import pymysql

    conn = pymysql.connect(autocommit=True, **MY)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
        cur.execute(f"USE `{name}`")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS events (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME, "
            "account INT, amount DECIMAL(12,2), kind VARCHAR(16), payload TEXT, KEY (account)) "
            "ENGINE=InnoDB"
        )

        def size() -> int:
            cur.execute(
                "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                "WHERE table_schema = %s",
                (name,),
            )
            return int(cur.fetchone()[0])

        target = int(size_mb * MB)
        rows = max(10_000, min(1_000_000, target // 200))
        while (current := size()) < target:
            cur.execute(f"""
                INSERT INTO events (at, account, amount, kind, payload)
                SELECT NOW() - INTERVAL seq SECOND, FLOOR(RAND() * 100000), RAND() * 10000,
                       ELT(1 + seq % 4, 'deposit', 'withdrawal', 'transfer', 'fee'),
                       CONCAT(MD5(seq), ' ', REPEAT(CHAR(97 + seq % 26), 40), ' ', MD5(RAND()))
                FROM seq_1_to_{rows}
            """)
            cur.execute(f"ANALYZE TABLE `{name}`.events")
            cur.fetchall()
            print(f"  {name}: {size() / MB:.0f} MB", flush=True)
        current = size()
    conn.close()
    return current


def ensure_folder(path: Path, size_gb: float, small_files: int) -> int:
    """``small_files`` small files (1-8 KiB) in folders of 100 and 4 big files sharing the rest.

    CSV-like rows (numbers, e-mail addresses, hex) from a pool of 20,000, shuffled for each
    megabyte, so the data compresses about 3x as real exports do and never repeats at the
    scale of zstd's window (repeated blocks would make the compressor's window size, not the
    pipeline, the thing measured)."""
    marker = path / ".complete"
    if marker.exists():
        return int(marker.read_text())
    shutil.rmtree(path, ignore_errors=True)
    import random

    rng = random.Random(7)
    rows = [
        b"%d,user-%d@example.com,%d.%02d,%s\n"
        % (
            rng.randrange(10**9),
            rng.randrange(10**6),
            rng.randrange(10**5),
            rng.randrange(100),
            rng.randbytes(12).hex().encode(),
        )
        for _ in range(20000)
    ]

    def block() -> bytes:  # about 1.3 MiB
        rng.shuffle(rows)
        return b"".join(rows)

    total, current = 0, block()
    for n in range(small_files):
        folder = path / "small" / f"d{n // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randrange(1024, 8192)
        if len(current) < size:
            current = block()
        (folder / f"f{n:05d}.csv").write_bytes(current[:size])
        current = current[size:]
        total += size
    big = max(int(size_gb * 1024**3) - total, 4 * MB) // 4
    (path / "big").mkdir()
    for n in range(4):
        with open(path / "big" / f"big{n}.csv", "wb") as fh:
            written = 0
            while written < big:
                piece = block()[: big - written]
                fh.write(piece)
                written += len(piece)
        total += big
    marker.write_text(str(total))
    return total


# --------------------------------------------------------------------------- platform side


class Platform:
    def __init__(self, work: Path, data_root: Path) -> None:
        from backups.keys import tenant_data_key
        from backups.models import Server, Storage
        from tenants.models import Plan, Tenant

        self.work = work
        self.tenant, _ = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench", "plan": Plan.DEDICATED})
        self.tenant.max_concurrent_backups = 50
        self.tenant.path_roots = [str(data_root)]
        self.tenant.save()
        tenant_data_key(self.tenant)
        self.storage, _ = Storage.objects.update_or_create(
            tenant=self.tenant,
            name="bench-local",
            defaults={"type": "local", "configuration": {"path": str(work / "store")}},
        )
        self.pg, _ = Server.objects.update_or_create(
            tenant=self.tenant,
            name="bench-pg",
            defaults={
                "type": "postgresql",
                "host": PG["host"],
                "port": PG["port"],
                "credentials": {"username": PG["user"]},
            },
        )
        self.maria, _ = Server.objects.update_or_create(
            tenant=self.tenant,
            name="bench-maria",
            defaults={
                "type": "mysql",
                "host": MY["host"],
                "port": MY["port"],
                "credentials": {"username": MY["user"], "password": ""},
            },
        )

    def backup(self, **target) -> object:
        from backups.models import Backup
        from backups.services.backups import backup_run, backup_start

        op = backup_start(tenant=self.tenant, storage=self.storage, compression="zstd", queue=False, **target)
        backup_run(operation_id=op.pk)
        backup = Backup.objects.get(pk=op.backup_id)
        assert backup.status == "completed", backup.error_message
        return backup

    def forget(self, backup) -> None:
        shutil.rmtree(self.work / "store", ignore_errors=True)
        backup.delete()

    def folder_app(self, folder: Path):
        from backups.models import Application, Source

        app, _ = Application.objects.get_or_create(tenant=self.tenant, name="bench-folder")
        Source.objects.update_or_create(
            tenant=self.tenant,
            application=app,
            name="files",
            defaults={"type": "path", "path": str(folder), "position": 0},
        )
        return app

    def restore(self, backup, database: str, jobs: int = 1) -> None:
        from backups.services.restores import restore_run, restore_start

        restore = restore_start(
            tenant=self.tenant,
            backup=backup,
            target_server=self.pg,
            target_database=database,
            queue=False,
            options={"jobs": jobs} if jobs > 1 else None,
        )
        restore_run(operation_id=restore.operation_id)
        restore.refresh_from_db()
        assert restore.status == "completed", restore.error_message


class ApiWorker:
    """The platform as ``make run`` serves it: uvicorn (the ASGI application) and a Celery
    worker (prefork, one child), both children of this process (so in its tree), on the
    bench's database; a backup is asked for with ``POST /api/v1/backups`` and done when its
    row says ``completed``."""

    def __init__(self, platform: Platform) -> None:
        import urllib.request

        from tenants import services
        from tenants.models import Role

        self.platform, self.request = platform, urllib.request
        _, self.key = services.api_key_create(tenant=platform.tenant, name=f"bench-{time.time()}", role=Role.OPERATOR)
        with contextlib.closing(__import__("socket").socket()) as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, "DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1"}
        server = [sys.executable, "-m", "uvicorn", "backupplatform.asgi:application", "--port", str(self.port)]
        worker = [sys.executable, "-m", "celery", "-A", "backupplatform", "worker", "--concurrency", "1"]
        self.procs = [
            subprocess.Popen([*server, "--lifespan", "off", "--log-level", "warning"], cwd=ROOT, env=env),
            subprocess.Popen(
                [*worker, "-l", "warning", "-n", f"bench-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
                cwd=ROOT,
                env=env,
            ),
        ]
        time.sleep(8)  # both up (the worker's first backup is the warm-up round)

    def backup(self, database: str) -> None:
        import json

        from backups.models import Backup

        body = {"server_id": self.platform.pg.pk, "database_name": database, "storage_id": self.platform.storage.pk}
        request = self.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/backups",
            data=json.dumps(body).encode(),
            headers={"X-API-Key": self.key, "Content-Type": "application/json"},
            method="POST",
        )
        with self.request.urlopen(request, timeout=30) as response:
            backup_id = json.loads(response.read())["id"]
        while (backup := Backup.objects.get(pk=backup_id)).status not in ("completed", "failed", "cancelled"):
            time.sleep(0.05)
        assert backup.status == "completed", backup.error_message
        self.platform.forget(backup)

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settle() -> None:
    """Before every run, not timed: write out what earlier runs left dirty (the page cache,
    PostgreSQL's shared buffers), so no run pays for another's writeback or checkpoint."""
    import psycopg

    os.sync()
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute("CHECKPOINT")


def pg_args() -> str:
    return f"-h {PG['host']} -p {PG['port']} -U {PG['user']}"


# --------------------------------------------------------------------------- scenarios


def scenarios(args, platform: Platform, work: Path, data_root: Path):
    """name -> (description, setup(), platform run, alternative run, alternative label[, reset()])."""
    pg_name = f"bp_bench_{str(args.pg_gb).replace('.', '_')}g"
    my_name = f"bp_bench_{str(args.mariadb_mb).replace('.', '_')}m"
    folder = data_root / f"bp-bench-folder-v2-{str(args.folder_gb).replace('.', '_')}g-{args.small_files}"
    out = work / "alt.zst"
    state: dict = {}

    def pg_backup_platform() -> None:
        platform.forget(platform.backup(server=platform.pg, database_name=pg_name))

    def folder_platform() -> None:
        platform.forget(platform.backup(application=platform.folder_app(folder)))

    def maria_platform() -> None:
        platform.forget(platform.backup(server=platform.maria, database_name=my_name))

    def api_worker() -> ApiWorker:
        if "api" not in state:  # started once, by the warm-up run
            state["api"] = ApiWorker(platform)
        return state["api"]

    jobs_name = pg_name if args.jobs_tables == 1 else f"{pg_name}_{args.jobs_tables}t"

    def restore_setup(database: str, tables: int) -> Callable[[], int]:
        def setup() -> int:
            size = ensure_pg_database(database, args.pg_gb, tables)
            if database not in state:
                state[database] = platform.backup(server=platform.pg, database_name=database)
                shell(f'pg_dump {pg_args()} -Fc -Z0 -d "{database}" | zstd -3 -q -f -o "{work / database}.zst"')
            return size

        return setup

    def restore_platform(database: str, jobs: int) -> Callable[[], None]:
        return lambda: platform.restore(state[database], f"{database}_r", jobs)

    def restore_alternative(database: str) -> Callable[[], None]:
        return lambda: shell(
            f'createdb {pg_args()} "{database}_r" && zstd -d -q -c "{work / database}.zst" '
            f'| pg_restore {pg_args()} --no-owner -d "{database}_r"'
        )

    return (
        {
            "pg-backup": (
                f"PostgreSQL backup, {pg_name}",
                lambda: ensure_pg_database(pg_name, args.pg_gb),
                pg_backup_platform,
                lambda: shell(f'pg_dump {pg_args()} -Fc -Z0 -d "{pg_name}" | zstd -3 -q -f -o "{out}"'),
                "pg_dump -Fc -Z0 | zstd -3",
            ),
            "pg-backup-api": (
                f"PostgreSQL backup through the API and a Celery worker, {pg_name}",
                lambda: ensure_pg_database(pg_name, args.pg_gb),
                lambda: api_worker().backup(pg_name),
                lambda: shell(f'pg_dump {pg_args()} -Fc -Z0 -d "{pg_name}" | zstd -3 -q -f -o "{out}"'),
                "pg_dump -Fc -Z0 | zstd -3",
            ),
            "folder": (
                f"folder backup, {folder.name}",
                lambda: ensure_folder(folder, args.folder_gb, args.small_files),
                folder_platform,
                lambda: shell(f'tar -cf - -C "{folder.parent}" "{folder.name}" | zstd -3 -q -f -o "{out}"'),
                "tar -cf - | zstd -3",
            ),
            "mariadb": (
                f"MariaDB backup, {my_name}",
                lambda: ensure_mariadb_database(my_name, args.mariadb_mb),
                maria_platform,
                lambda: shell(
                    f"mysqldump -h {MY['host']} -P {MY['port']} -u {MY['user']} --single-transaction "
                    f'--routines --triggers --events "{my_name}" | zstd -3 -q -f -o "{out}"'
                ),
                "mysqldump --single-transaction | zstd -3",
            ),
            "pg-restore": (
                f"PostgreSQL restore, {pg_name}",
                restore_setup(pg_name, 1),
                restore_platform(pg_name, 1),
                restore_alternative(pg_name),
                "zstd -d | pg_restore",
                lambda: drop_pg(f"{pg_name}_r"),
            ),
            "pg-restore-jobs": (
                f"PostgreSQL restore with jobs={args.jobs}, {jobs_name}",
                restore_setup(jobs_name, args.jobs_tables),
                restore_platform(jobs_name, args.jobs),
                restore_alternative(jobs_name),
                "zstd -d | pg_restore",
                lambda: drop_pg(f"{jobs_name}_r"),
            ),
        },
        state,
        (pg_name, jobs_name, my_name, folder),
    )


def run(name: str, spec, rounds: int, warmup: bool = True) -> dict:
    description, setup, platform_run, alternative_run, alternative = spec[:5]
    scenario_reset = spec[5] if len(spec) > 5 else (lambda: None)

    def reset() -> None:  # before each run, not timed
        scenario_reset()
        settle()

    print(f"\n== {name}: {description}", flush=True)
    size = setup()
    if warmup:  # a worker process is warm: imports, connections and caches are not measured;
        reset()  # the alternative's first run (cold tool binaries and page cache) is not either
        platform_run()
        reset()
        alternative_run()
    rows = []
    for index in range(rounds):
        order = [("platform", platform_run), ("alternative", alternative_run)]
        if index % 2:
            order.reverse()
        got = {}
        for who, fn in order:
            reset()
            got[who] = measure(fn)
        load = os.getloadavg()[0]
        ratio = got["platform"][0] / got["alternative"][0]
        rows.append((got["platform"], got["alternative"], ratio, load))
        print(
            f"  round {index + 1} ({order[0][0]} first): platform {got['platform'][0]:7.2f} s "
            f"(+{got['platform'][1]:.0f} MiB)  {alternative} {got['alternative'][0]:7.2f} s "
            f"(+{got['alternative'][1]:.0f} MiB)  ratio {ratio:.2f}  load {load:.2f}",
            flush=True,
        )
    ratios = [r[2] for r in rows]
    return {
        "name": name,
        "description": description,
        "alternative": alternative,
        "size": size,
        "platform_median": statistics.median(r[0][0] for r in rows),
        "alternative_median": statistics.median(r[1][0] for r in rows),
        "ratio_min": min(ratios),
        "ratio_median": statistics.median(ratios),
        "platform_rss": max(r[0][1] for r in rows),
        "alternative_rss": max(r[1][1] for r in rows),
        "load": (min(r[3] for r in rows), max(r[3] for r in rows)),
        "rounds": rounds,
    }


def main() -> None:
    if sys.argv[1:2] == ["--sample"]:
        _sampler(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="repeatable; default all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-gb", type=float, default=1.0, help="PostgreSQL database size (GB)")
    parser.add_argument("--folder-gb", type=float, default=0.95, help="folder size (GB)")
    parser.add_argument("--small-files", type=int, default=20_000, help="small files in the folder")
    parser.add_argument("--mariadb-mb", type=float, default=530, help="MariaDB database size (MB)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs of the parallel restore scenario")
    parser.add_argument(
        "--jobs-tables",
        type=int,
        default=4,
        help="tables of the parallel restore scenario's database (--pg-gb in all; 1: the pg-restore database)",
    )
    parser.add_argument(
        "--zstd-threads",
        type=int,
        default=None,
        help="BACKUP_ZSTD_THREADS for the platform's backups (default: the setting, 1)",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="do not run each side once, unmeasured, before the rounds"
    )
    parser.add_argument("--drop", action="store_true", help="drop the bench databases and folder at the end")
    args = parser.parse_args()

    import psycopg

    meta = os.environ["DATABASE_URL"].rsplit("/", 1)[-1]
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (meta,)).fetchone():
            conn.execute(f'CREATE DATABASE "{meta}"')

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.zstd_threads is not None:
        from django.conf import settings

        settings.BACKUP_ZSTD_THREADS = args.zstd_threads
    base = Path(os.environ.get("BENCH_DIR") or tempfile.gettempdir()).resolve()
    data_root = base / "bp-bench"
    data_root.mkdir(exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(dir=data_root, prefix="run-") as tmp:
        work = Path(tmp)
        platform = Platform(work, data_root)
        specs, state, (pg_name, jobs_name, my_name, folder) = scenarios(args, platform, work, data_root)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
        for name in args.scenario or SCENARIOS:
            results.append(run(name, specs[name], args.rounds, warmup=not args.no_warmup))
        api = state.pop("api", None)
        if api is not None:
            api.close()
        for backup in state.values():
            platform.forget(backup)
        for database in {pg_name, jobs_name} & set(state):
            drop_pg(f"{database}_r")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "\n| measure | platform (median) | alternative (median) | ratio min / median | "
        "peak RSS above idle, tree: platform / alternative | 1-min load | rounds |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['description']} ({r['size'] / MB:,.0f} MB) | {r['platform_median']:.2f} s "
            f"| {r['alternative_median']:.2f} s `{r['alternative'].replace('|', chr(92) + '|')}` "
            f"| {r['ratio_min']:.2f} / "
            f"{r['ratio_median']:.2f} | {r['platform_rss']:.0f} / {r['alternative_rss']:.0f} MiB "
            f"| {r['load'][0]:.1f}-{r['load'][1]:.1f} | {r['rounds']} |"
        )
    if args.drop:
        for database in {pg_name, jobs_name}:
            drop_pg(database)
        shutil.rmtree(folder, ignore_errors=True)
        import pymysql

        conn = pymysql.connect(autocommit=True, **MY)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{my_name}`")
        conn.close()


if __name__ == "__main__":
    main()
