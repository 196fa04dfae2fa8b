"""Restore drills through the services against real PostgreSQL and MariaDB: the job's latest
backup restored into a scratch copy, assertions run, RTO/RPO recorded, the copy always
dropped, failures notified as failed backups are, and the safety net following the result."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import psycopg
import pymysql
import pytest
from django.utils import timezone

from audit import deliveries, notifications
from audit.models import AuditEvent, Delivery
from backupplatform.errors import Conflict, ValidationFailed
from backups.models import Backup, Server
from backups.services.backups import backup_run
from schedules import beat, drills, services
from schedules.models import BackupJob, Drill
from tests.builders import make_mariadb_server, make_pg_server
from tests.e2e.conftest import needs_mysql, needs_pg

pytestmark = [pytest.mark.django_db(transaction=True)]


def pg_database_exists(name: str) -> bool:
    with psycopg.connect(dbname="postgres", host="127.0.0.1", port=5432, user="postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def mysql_database_exists(name: str) -> bool:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def run_backup(job: BackupJob) -> Backup:
    op = services.job_run(job=job, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    return backup


def drill_now(job: BackupJob, **kwargs) -> Drill:
    drill = drills.drill_start(tenant=job.tenant, job=job, queue=False, **kwargs)
    return drills.drill_run(drill_id=drill.pk)


@pytest.fixture
def pg_job(tenant_a, storage_a, pg_throwaway_db):
    server = make_pg_server(tenant_a, "pg")
    return services.job_create(
        tenant=tenant_a,
        name="shop-db",
        server=server,
        database_name=pg_throwaway_db.name,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )


@needs_pg
def test_a_drill_restores_the_latest_backup_checks_it_and_drops_the_scratch_database(pg_job):
    run_backup(pg_job)
    latest = run_backup(pg_job)
    drills.drill_configure(
        job=pg_job,
        assertions=[
            {"type": "row_count", "table": "items", "expect": 200},
            {"type": "row_count", "table": "public.items", "min": 150},
            {"type": "sql", "sql": "SELECT count(*) = 200 FROM items"},
            {"type": "sql", "sql": "SELECT label FROM items WHERE id = 7", "expect": "item 7"},
        ],
    )
    drill = drill_now(pg_job)

    assert drill.status == "passed" and drill.passed is True, drill.error_message
    assert drill.backup_ref == latest.pk and drill.backup_checksum == latest.checksum
    assert drill.checksum_verified is True
    assert drill.rto_seconds > 0 and drill.rto_seconds <= drill.duration_seconds
    # The data is as old as the backup's start at the time of the drill.
    assert drill.rpo_seconds == pytest.approx((drill.started_at - latest.started_at).total_seconds(), abs=0.01)
    kinds = [(a["type"], a["passed"], a["actual"]) for a in drill.assertions]
    assert kinds == [
        ("checksum", True, latest.checksum),
        ("row_count", True, 200),
        ("row_count", True, 200),
        ("sql", True, True),
        ("sql", True, "item 7"),
    ]
    scratch = drill.scratch["databases"][pg_job.database_name]["database"]
    assert scratch.startswith(f"bp_drill_{latest.pk}_") and drill.scratch["dropped"] is True
    assert not pg_database_exists(scratch)
    latest.refresh_from_db()
    assert latest.verified is True and latest.verified_at is not None
    assert AuditEvent.objects.filter(action="drill_completed", resource_id=str(drill.pk)).exists()


@needs_pg
def test_a_failing_assertion_fails_the_drill_unverifies_the_backup_and_notifies_like_a_failed_backup(
    pg_job, tenant_a, settings
):
    settings.PUBLIC_BASE_URL = "https://backups.example.com"
    backup = run_backup(pg_job)
    Backup.objects.filter(pk=backup.pk).update(verified=True)  # an earlier verification passed
    ops = notifications.channel_create(
        tenant=tenant_a, name="ops", type="slack", config={"webhook_url": "https://hooks.example.com/services/A/B/C"}
    )
    drills.drill_configure(
        job=pg_job,
        assertions=[
            {"type": "row_count", "table": "items", "expect": 999},
            {"type": "sql", "sql": "SELECT count(*) FROM no_such_table"},
            {"type": "file", "path": "etc/app.conf"},
        ],
    )
    drill = drill_now(pg_job)

    assert drill.status == "failed" and drill.passed is False
    assert drill.error_message.startswith("3 of 4 assertion(s) failed")
    by_type = {a["type"]: a for a in drill.assertions}
    assert by_type["row_count"]["actual"] == 200 and by_type["row_count"]["passed"] is False
    assert "no_such_table" in by_type["sql"]["error"]
    assert by_type["file"]["error"] == "The backup holds no files"
    # Dropped even though the drill failed.
    assert drill.scratch["dropped"] is True
    assert not pg_database_exists(drill.scratch["databases"][pg_job.database_name]["database"])
    backup.refresh_from_db()
    assert backup.verified is False

    event = AuditEvent.objects.get(action="drill_failed", resource_id=str(drill.pk))
    [pk] = deliveries.route_event(event_id=event.pk)
    delivery = Delivery.objects.get(pk=pk)
    assert delivery.channel == ops and delivery.event_type == "drill.failed"
    notice = delivery.payload["notice"]
    assert notice["title"] == "Restore drill failed: shop-db" and notice["level"] == "error"
    assert "3 of 4 assertion(s) failed" in notice["error"]
    assert notice["facts"]["Backup"] == str(backup.pk) and notice["facts"]["Failed assertions"] == "3"
    assert notice["link"] == f"https://backups.example.com/admin/schedules/drill/{drill.pk}/change/"


@needs_pg
def test_the_jobs_failure_switch_silences_drill_failures_too(pg_job, tenant_a):
    run_backup(pg_job)
    notifications.channel_create(
        tenant=tenant_a, name="ops", type="slack", config={"webhook_url": "https://hooks.example.com/services/A/B/C"}
    )
    services.job_update(job=pg_job, notifications={"on_failure": False, "on_success": False})
    drills.drill_configure(job=pg_job, assertions=[{"type": "row_count", "table": "items", "expect": 1}])
    drill = drill_now(pg_job)
    assert drill.passed is False
    event = AuditEvent.objects.get(action="drill_failed", resource_id=str(drill.pk))
    assert deliveries.route_event(event_id=event.pk) == []


@needs_pg
def test_a_tampered_artifact_fails_the_drill_and_leaves_no_scratch_database(pg_job, storage_a):
    backup = run_backup(pg_job)
    path = f"{storage_a.configuration['path']}/{backup.storage_path}"
    with open(path, "r+b") as handle:
        handle.seek(-40, 2)
        byte = handle.read(1)
        handle.seek(-40, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    Backup.objects.filter(pk=backup.pk).update(verified=True)
    drill = drill_now(pg_job)
    assert drill.passed is False and drill.error_message
    assert drill.rto_seconds is None  # never restored
    with psycopg.connect(dbname="postgres", host="127.0.0.1", user="postgres") as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"bp_drill_{backup.pk}_%",)
        ).fetchall()
    assert left == []
    backup.refresh_from_db()
    assert backup.verified is False


@needs_mysql
def test_a_mariadb_drill_counts_rows_and_runs_sql_in_a_scratch_database(tenant_a, storage_a, mysql_throwaway_db):
    server = make_mariadb_server(tenant_a, "maria")
    maria = make_mariadb_server(tenant_a, "maria-scratch")
    job = services.job_create(
        tenant=tenant_a,
        name="maria-db",
        server=server,
        database_name=mysql_throwaway_db.name,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )
    run_backup(job)
    postgres = Server.objects.create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)
    with pytest.raises(ValidationFailed) as refused:  # a MariaDB dump restores into MariaDB/MySQL only
        drills.drill_configure(job=job, scratch_server=postgres)
    assert "restore into a mysql server" in str(refused.value.details)
    drills.drill_configure(
        job=job,
        scratch_server=maria,
        assertions=[
            {"type": "row_count", "table": "items", "expect": 200},
            {"type": "sql", "sql": "SELECT COUNT(*) FROM items WHERE label LIKE 'item %'", "expect": 200},
            {"type": "row_count", "table": "items", "min": 201},
        ],
    )
    drill = drill_now(job)
    assert [a["passed"] for a in drill.assertions] == [True, True, True, False]
    assert drill.assertions[3]["actual"] == 200 and drill.passed is False
    scratch = drill.scratch["databases"][mysql_throwaway_db.name]
    assert scratch["server_id"] == maria.pk  # the job's scratch server, not the backup's
    assert scratch["database"].startswith("bp_drill_") and not mysql_database_exists(scratch["database"])


def test_a_folder_job_drill_checks_file_checksums_in_a_scratch_folder_and_removes_it(
    tenant_a, app_a, storage_a, files_dir, tmp_path
):
    job = services.job_create(
        tenant=tenant_a,
        name="files",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )
    run_backup(job)
    good = hashlib.sha256((files_dir / "f1.txt").read_bytes()).hexdigest()
    drills.drill_configure(
        job=job,
        assertions=[
            {"type": "file", "path": "f1.txt", "sha256": good},
            {"type": "file", "path": "f2.txt"},
            {"type": "file", "path": "f0.txt", "sha256": "0" * 64},
            {"type": "file", "path": "gone.txt"},
        ],
    )
    (files_dir / "f2.txt").unlink()  # the source changes after the backup: the drill checks the backup
    drill = drill_now(job)
    assert [a["passed"] for a in drill.assertions] == [True, True, True, False, False]
    assert drill.assertions[4]["actual"] == "missing"
    folder = drill.scratch["folder"]
    assert folder.startswith(str(tmp_path)) and "/.bp-drills/" in folder
    assert drill.scratch["dropped"] is True and not (tmp_path / ".bp-drills").exists()


@needs_pg
@needs_mysql
def test_an_application_drill_restores_each_database_and_its_folders_into_scratch_copies(
    tenant_a, storage_a, files_dir, pg_throwaway_db, mysql_throwaway_db, tmp_path
):
    from backups.models import Application, Source

    pg = make_pg_server(tenant_a, "pg")
    maria = make_mariadb_server(tenant_a, "maria")
    app = Application.objects.create(tenant=tenant_a, name="shop")
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="orders",
        type="postgresql",
        server=pg,
        database_name=pg_throwaway_db.name,
        position=0,
    )
    Source.objects.create(
        tenant=tenant_a,
        application=app,
        name="crm",
        type="mysql",
        server=maria,
        database_name=mysql_throwaway_db.name,
        position=1,
    )
    Source.objects.create(tenant=tenant_a, application=app, name="files", type="path", path=str(files_dir), position=2)
    job = services.job_create(
        tenant=tenant_a,
        name="shop",
        application=app,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )
    run_backup(job)
    drills.drill_configure(
        job=job,
        assertions=[
            {"type": "row_count", "database": pg_throwaway_db.name, "table": "items", "expect": 200},
            {"type": "sql", "database": mysql_throwaway_db.name, "sql": "SELECT COUNT(*) FROM items", "expect": 200},
            {"type": "file", "path": "f0.txt"},
            {"type": "row_count", "table": "items", "expect": 200},  # two databases: which one?
        ],
    )
    drill = drill_now(job)
    assert [a["passed"] for a in drill.assertions] == [True, True, True, True, False]
    assert drill.assertions[4]["error"].startswith("Name the database: one of ")
    names = {original: where["database"] for original, where in drill.scratch["databases"].items()}
    assert set(names) == {pg_throwaway_db.name, mysql_throwaway_db.name}
    assert names[pg_throwaway_db.name].startswith(f"{pg_throwaway_db.name}_bpdrill_")
    assert not pg_database_exists(names[pg_throwaway_db.name])
    assert not mysql_database_exists(names[mysql_throwaway_db.name])
    assert drill.scratch["dropped"] is True and not (tmp_path / ".bp-drills").exists()


def test_drill_input_is_checked_before_anything_is_saved(tenant_a, tenant_b, app_a, storage_a):
    job = services.job_create(
        tenant=tenant_a,
        name="files",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
    )
    bad = [
        [{"type": "sql", "sql": "DELETE FROM items"}],
        [{"type": "sql", "sql": "SELECT 1; DROP TABLE items"}],
        [{"type": "file", "path": "../../etc/passwd"}],
        [{"type": "file", "path": "/etc/passwd"}],
        [{"type": "row_count", "table": "items"}],
        [{"type": "row_count", "table": "items", "expect": -1}],
        [{"type": "row_count", "table": "items; drop", "expect": 1}],
        [{"type": "file", "path": "a", "sha256": "xyz"}],
        [{"type": "mystery"}],
        [{"type": "file", "path": "a", "extra": 1}],
        {"type": "file"},
    ]
    for assertions in bad:
        with pytest.raises(ValidationFailed):
            drills.drill_configure(job=job, assertions=assertions)
    with pytest.raises(ValidationFailed):
        drills.drill_configure(job=job, cron_expression="every tuesday")
    other = Server.objects.create(tenant=tenant_b, name="theirs", type="postgresql", host="127.0.0.1", port=5432)
    from backupplatform.errors import NotFound

    with pytest.raises(NotFound):
        drills.drill_configure(job=job, scratch_server=other)
    job.refresh_from_db()
    assert job.drill_assertions == [] and job.drill_cron_expression == "" and job.drill_server is None
    with pytest.raises(Conflict) as refused:
        drills.drill_start(tenant=tenant_a, job=job, queue=False)
    assert refused.value.code == "NO_BACKUP_TO_DRILL" and not Drill.objects.exists()


def test_a_drill_schedule_sets_the_next_drill_and_beat_takes_it_once(tenant_a, app_a, storage_a):
    job = services.job_create(
        tenant=tenant_a,
        name="files",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
        timezone="Europe/Paris",
    )
    assert job.drill_next_run_at is None
    job = drills.drill_configure(job=job, cron_expression="30 4 * * 1")  # Mondays 04:30 Paris time
    local = job.drill_next_run_at.astimezone(timezone.zoneinfo.ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (0, 4, 30)

    due = timezone.now() - timedelta(seconds=5)
    BackupJob.objects.filter(pk=job.pk).update(drill_next_run_at=due)
    sent: list = []
    taken = beat.dispatch_due_drills(send=lambda *args: sent.append(args))
    assert taken == [(job.pk, due)] and sent == [(job.pk, due, 5)]
    job.refresh_from_db()
    assert job.drill_next_run_at > timezone.now()
    assert beat.dispatch_due_drills(send=lambda *args: sent.append(args)) == [] and len(sent) == 1
    # The same due time delivered twice drills once (the job has no backup: a failed drill).
    first = drills.drill_run_scheduled(job_id=job.pk, scheduled_for=due)
    assert first.passed is False and first.error_message == "The job has no completed backup to drill"
    assert drills.drill_run_scheduled(job_id=job.pk, scheduled_for=due) is None
    assert Drill.objects.filter(job=job).count() == 1
    # Disabled jobs are not drilled; no drill schedule means no next drill.
    services.job_toggle(job=job, enabled=False)
    drills.drill_configure(job=job, cron_expression="")
    job.refresh_from_db()
    assert job.drill_next_run_at is None


def test_the_retention_safety_net_keeps_only_backups_whose_drill_passed(tenant_a, app_a, storage_a):
    job = services.job_create(
        tenant=tenant_a,
        name="files",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 3 * * *",
        retention_count=1,
    )
    oldest, middle = run_backup(job), run_backup(job)
    run_backup(job)  # the newest: kept by keep_last_n

    def doomed() -> list[int]:
        return sorted(services.cleanup_analyse(tenant=tenant_a, job=job).backup_ids)

    assert doomed() == [oldest.pk, middle.pk]  # nothing proven restorable: no safety net
    drills.drill_configure(job=job, assertions=[{"type": "file", "path": "f0.txt"}])
    assert drill_now(job, backup=oldest).passed is True
    assert doomed() == [middle.pk]  # the drilled backup is the proven restore point
    drills.drill_configure(job=job, assertions=[{"type": "file", "path": "missing.txt"}])
    assert drill_now(job, backup=oldest).passed is False
    assert doomed() == [oldest.pk, middle.pk]  # its latest drill failed: no longer counted
    drills.drill_configure(job=job, assertions=[])
    assert drill_now(job, backup=middle).passed is True
    assert doomed() == [oldest.pk]


@needs_pg
def test_a_drill_whose_worker_died_is_failed_and_its_scratch_database_dropped(pg_job, tenant_a):
    backup = run_backup(pg_job)
    Backup.objects.filter(pk=backup.pk).update(verified=True)
    long_ago = timezone.now() - timedelta(minutes=10)
    dead = Drill.objects.create(
        tenant=tenant_a,
        job=pg_job,
        job_name=pg_job.name,
        backup=backup,
        backup_ref=backup.pk,
        status="running",
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    Drill.objects.filter(pk=dead.pk).update(scratch={"token": "deadbeef", "label": f"drill-{dead.pk}"})
    alive = Drill.objects.create(
        tenant=tenant_a,
        job=pg_job,
        job_name=pg_job.name,
        backup=backup,
        backup_ref=backup.pk,
        status="running",
        started_at=long_ago,
        heartbeat_at=timezone.now(),
    )
    left_behind = f"bp_drill_{backup.pk}_deadbeef"
    with psycopg.connect(dbname="postgres", host="127.0.0.1", user="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{left_behind}"')
    lost = Drill.objects.create(
        tenant=tenant_a, job=pg_job, job_name=pg_job.name, backup=backup, backup_ref=backup.pk
    )  # its task never reached a worker
    Drill.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(hours=13))
    fresh = Drill.objects.create(tenant=tenant_a, job=pg_job, job_name=pg_job.name, backup=backup, backup_ref=backup.pk)
    assert drills.drill_reap() == [dead.pk, lost.pk]
    lost.refresh_from_db()
    assert lost.status == "failed" and lost.error_message.startswith("The drill never started")
    assert Drill.objects.get(pk=fresh.pk).status == "pending"
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.passed is False
    assert dead.error_message == "The worker running this drill stopped before it finished"
    assert dead.scratch["dropped"] is True and not pg_database_exists(left_behind)
    assert AuditEvent.objects.filter(action="drill_failed", resource_id=str(dead.pk)).exists()
    assert Drill.objects.get(pk=alive.pk).status == "running"  # still beating: left alone
    backup.refresh_from_db()
    assert backup.verified is True  # a lost worker says nothing about the backup
    assert drills.drill_reap() == []
