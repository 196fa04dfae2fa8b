"""Configuration typed into real fields instead of JSON boxes: a storage's settings per type
with write-only secrets, sources' include/exclude as lines, a job's schedule as frequency,
time and days with its next runs, its options and retention as fields with a preview."""

from __future__ import annotations

import os
from datetime import time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups import services
from backups.models import Application, Backup, Storage
from schedules.models import BackupJob
from tests.admin.test_admin_writes import sources_form
from tests.e2e.conftest import PG, needs_pg

pytestmark = pytest.mark.django_db

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def storage_form(tenant, **fields):
    return {
        "tenant": tenant.pk,
        "name": "offsite",
        "type": "s3",
        "status": "active",
        "labels": "",
        "description": "",
        "price_per_gb_month": "0",
        **fields,
    }


def test_an_s3_storage_is_set_up_with_its_own_fields_and_its_secret_never_shown_again(admin_client, tenant_a):
    page = admin_client.get("/admin/backups/storage/add/").content.decode()
    for field in (
        "id_bucket",
        "id_region",
        "id_endpoint_url",
        "id_access_key_id",
        "id_secret_access_key",
        "id_path",
        "id_host",
        "id_account_name",
        "storage-type-fields",
    ):
        assert field in page
    assert 'name="configuration"' not in page and 'name="new_credentials"' not in page
    response = admin_client.post(
        "/admin/backups/storage/add/",
        storage_form(
            tenant_a,
            bucket="acme-backups",
            region="eu-west-1",
            path_prefix="prod",
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key=SECRET,
            labels="env=prod\nteam=ops",
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    storage = Storage.objects.get(name="offsite")
    assert storage.configuration == {"bucket": "acme-backups", "region": "eu-west-1", "path_prefix": "prod"}
    assert storage.credentials == {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": SECRET}
    assert storage.labels == {"env": "prod", "team": "ops"}

    change = admin_client.get(f"/admin/backups/storage/{storage.pk}/change/").content.decode()
    assert SECRET not in change and "acme-backups" in change and "Stored. Leave blank" in change
    # Blank secrets keep the stored ones; a changed field is saved.
    response = admin_client.post(
        f"/admin/backups/storage/{storage.pk}/change/",
        {**storage_form(tenant_a, bucket="acme-backups", region="eu-central-1", path_prefix="prod", labels="env=prod")},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    storage.refresh_from_db()
    assert storage.configuration["region"] == "eu-central-1" and storage.credentials["secret_access_key"] == SECRET


def test_storage_errors_are_words_next_to_their_field(admin_client, tenant_a):
    response = admin_client.post(
        "/admin/backups/storage/add/",
        storage_form(tenant_a, bucket="Bad_Bucket!", region="eu-west-1", access_key_id="nope", secret_access_key="x"),
    )
    errors = response.context["adminform"].form.errors
    assert "invalid characters" in errors["bucket"][0]
    assert "access key" in errors["access_key_id"][0].lower()
    html = response.content.decode()
    assert "{'" not in html and "{&#x27;" not in html
    response = admin_client.post("/admin/backups/storage/add/", storage_form(tenant_a, labels="not a pair"))
    assert response.context["adminform"].form.errors["labels"] == ['Line 1: write key=value (got "not a pair").']
    assert not Storage.objects.filter(name="offsite").exists()


def test_sources_take_include_and_exclude_patterns_one_per_line(admin_client, tenant_a):
    folder = f"{tenant_a.path_roots[0]}/www"
    response = admin_client.post(
        "/admin/backups/application/add/",
        {
            "tenant": tenant_a.pk,
            "name": "site",
            "namespace": "",
            "labels": "",
            "description": "",
            **sources_form({"name": "files", "path": folder, "include": "*.html\n*.css\n", "exclude": "cache/*"}),
        },
    )
    assert response.status_code == 302
    source = Application.objects.get(name="site").sources.get()
    assert source.include == ["*.html", "*.css"] and source.exclude == ["cache/*"]
    page = admin_client.get(f"/admin/backups/application/{source.application_id}/change/").content.decode()
    assert "*.html\n*.css</textarea>" in page


def job_form(tenant, storage, app, **fields):
    return {
        "tenant": tenant.pk,
        "name": "nightly",
        "description": "",
        "enabled": "on",
        "application": app.pk,
        "server": "",
        "database_name": "",
        "source_path": "",
        "storage": storage.pk,
        "backup_type": "full",
        "schedule_type": "weekly",
        "schedule_time": "02:30",
        "days_of_week": ["1", "3", "5"],
        "day_of_month": "",
        "cron_expression": "",
        "timezone": "Europe/Paris",
        "retention_policy": "",
        "retention_days": "",
        "retention_count": "",
        "keep_daily": "7",
        "keep_weekly": "4",
        "keep_monthly": "",
        "keep_yearly": "",
        "priority": "5",
        "compression": "gzip",
        "verify_after": "on",
        "notify_on_failure": "on",
        **fields,
    }


def test_a_job_is_scheduled_with_days_and_time_and_shows_its_next_runs(admin_client, tenant_a):
    storage = services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": f"{tenant_a.path_roots[0]}/store"}
    )
    app = services.application_create(
        tenant=tenant_a,
        name="site",
        sources=[{"name": "files", "type": "path", "path": f"{tenant_a.path_roots[0]}/www"}],
    )
    page = admin_client.get("/admin/schedules/backupjob/add/").content.decode()
    assert 'name="options"' not in page and 'type="checkbox" name="days_of_week"' in page
    response = admin_client.post("/admin/schedules/backupjob/add/", job_form(tenant_a, storage, app))
    assert response.status_code == 302, response.context["adminform"].form.errors
    job = BackupJob.objects.get(name="nightly")
    assert job.cron_expression == "30 2 * * 1,3,5" and job.days_of_week == [1, 3, 5]
    assert job.options == {"compression": "gzip", "verify_integrity": True}
    assert job.notifications["on_failure"] is True and job.notifications["on_success"] is False
    assert job.retention == {"daily": 7, "weekly": 4}

    preview = admin_client.get(
        "/admin/console/schedule-preview/",
        {
            "schedule_type": "weekly",
            "schedule_time": "02:30",
            "days_of_week": ["1", "3", "5"],
            "timezone": "Europe/Paris",
        },
    ).json()
    assert preview["cron"] == "30 2 * * 1,3,5" and len(preview["runs"]) == 5
    assert all(r["local"][:3] in ("Mon", "Wed", "Fri") and "02:30" in r["local"] for r in preview["runs"])
    bad = admin_client.get(
        "/admin/console/schedule-preview/", {"schedule_type": "custom", "cron_expression": "61 * * * *"}
    )
    assert bad.status_code == 422 and "out of range" in bad.json()["error"]

    # Retention preview: what the rules keep among the job's backups today (nothing is deleted).
    # Eight days back from the last Sunday's noon: a whole ISO week (Sunday back to Monday) and
    # the Sunday before it, whatever today's weekday (the job's time zone is Paris, UTC+1/+2).
    now = timezone.now()
    sunday = (now - timedelta(days=(now.weekday() + 1) % 7 or 7)).replace(hour=12, minute=0, second=0, microsecond=0)
    for days in range(8):
        backup = Backup.objects.create(
            tenant=tenant_a, job=job, application=app, status="completed", name=f"site_{days}"
        )
        Backup.objects.filter(pk=backup.pk).update(created_at=sunday - timedelta(days=days))
    change = admin_client.get(f"/admin/schedules/backupjob/{job.pk}/change/").content.decode()
    assert "of 8 backup(s) keeps 8, nothing to delete" in change  # daily 7 + the newest of the week before
    BackupJob.objects.filter(pk=job.pk).update(retention={"daily": 3})
    change = admin_client.get(f"/admin/schedules/backupjob/{job.pk}/change/").content.decode()
    assert "of 8 backup(s) keeps 3, would delete 5: site_3" in change
    assert 'id="schedule-preview"' in change


def test_a_cron_error_is_said_next_to_the_field(admin_client, tenant_a):
    storage = services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": f"{tenant_a.path_roots[0]}/store"}
    )
    app = services.application_create(
        tenant=tenant_a,
        name="site",
        sources=[{"name": "files", "type": "path", "path": f"{tenant_a.path_roots[0]}/www"}],
    )
    response = admin_client.post(
        "/admin/schedules/backupjob/add/",
        job_form(tenant_a, storage, app, schedule_type="custom", cron_expression="every night"),
    )
    errors = response.context["adminform"].form.errors
    assert errors["cron_expression"] and "{'" not in str(errors["cron_expression"])
    assert not BackupJob.objects.filter(name="nightly").exists()


def test_the_wizard_restores_a_folder_into_the_target_and_only_the_sources_ticked(admin_client, tenant_a, monkeypatch):
    """An application backup of two folders; the wizard restores one of them INTO a new folder
    (its content at the top, not under the original absolute path)."""
    from backupplatform.console import views
    from backups.services import restores as restore_services
    from backups.services.backups import backup_run, backup_start

    base = tenant_a.path_roots[0]
    for name, files in (("www", {"index.html": "<h1>shop</h1>", "css/site.css": "body{}"}), ("logs", {"a.log": "x"})):
        for rel, text in files.items():
            path = f"{base}/{name}/{rel}"
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    services.storage_create(
        tenant=tenant_a, name="disk", type="local", is_default=True, configuration={"path": f"{base}/store"}
    )
    app = services.application_create(
        tenant=tenant_a,
        name="site",
        sources=[
            {"name": "www", "type": "path", "path": f"{base}/www"},
            {"name": "logs", "type": "path", "path": f"{base}/logs"},
        ],
    )
    op = backup_start(tenant=tenant_a, application=app, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message

    page = admin_client.get(f"/admin/console/backups/{backup.pk}/restore/").content.decode()
    assert 'name="target_path"' in page and 'name="target_database"' not in page
    assert "goes INTO this folder" in page
    members = {s["name"]: s["member"] for s in backup.manifest["bundle"]["sources"]}
    # Run the restore in this process instead of queueing it for a worker.
    monkeypatch.setattr(views, "restore_start", lambda **kw: restore_services.restore_start(**kw, queue=False))
    response = admin_client.post(
        f"/admin/console/backups/{backup.pk}/restore/",
        {
            "restore_point": backup.pk,
            "target_path": f"{base}/restored",
            "members": [members["www"]],
            "strategy": "create_new",
            "confirm": "on",
        },
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    restore = restore_services.Restore.objects.get(backup=backup)
    restore_services.restore_run(operation_id=restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    assert Path(f"{base}/restored/index.html").read_text() == "<h1>shop</h1>"
    assert Path(f"{base}/restored/css/site.css").read_text() == "body{}"
    assert not os.path.exists(f"{base}/restored/a.log")
    assert not os.path.exists(f"{base}/restored{base}")  # not nested under the absolute path

    # Only some files of the folder: the stylesheets; a line matching nothing fails in words.
    assert 'name="paths"' in page and "Only these files or folders" in page
    form = {"restore_point": backup.pk, "members": [members["www"]], "strategy": "create_new", "confirm": "on"}
    response = admin_client.post(
        f"/admin/console/backups/{backup.pk}/restore/",
        {**form, "target_path": f"{base}/css-only", "paths": "css/*.css\n"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    subset = restore_services.Restore.objects.filter(backup=backup).latest("pk")
    assert subset.options["paths"] == ["css/*.css"]
    restore_services.restore_run(operation_id=subset.operation_id)
    subset.refresh_from_db()
    assert subset.status == "completed", subset.error_message
    assert os.listdir(f"{base}/css-only") == ["css"] and os.listdir(f"{base}/css-only/css") == ["site.css"]
    refused = admin_client.post(
        f"/admin/console/backups/{backup.pk}/restore/",
        {**form, "target_path": f"{base}/nothing", "paths": "../etc/passwd"},
        HTTP_ACCEPT="application/json",
    )
    assert refused.status_code == 422 and "a path inside the backed-up folder is required" in refused.content.decode()
    assert "{'" not in refused.content.decode()


@needs_pg
def test_the_wizard_restores_only_the_postgresql_tables_ticked(
    admin_client, tenant_a, pg_server_row, pg_source_db, cleanup_pg, monkeypatch
):
    """The backup lists its tables; the wizard restores the one ticked (with its index) into a
    new database, masked, and leaves the other out."""
    import psycopg

    from backupplatform.console import views
    from backups.services import restores as restore_services
    from backups.services.backups import backup_run, backup_start

    services.storage_create(
        tenant=tenant_a,
        name="disk",
        type="local",
        is_default=True,
        configuration={"path": f"{tenant_a.path_roots[0]}/store"},
    )
    op = backup_start(tenant=tenant_a, server=pg_server_row, database_name=pg_source_db, queue=False)
    backup_run(operation_id=op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message

    page = admin_client.get(f"/admin/console/backups/{backup.pk}/restore/").content.decode()
    assert 'value="public.customers"' in page and 'value="public.blobs"' in page
    assert "Only these tables" in page
    target = f"{pg_source_db}_customers"
    cleanup_pg.append(target)
    monkeypatch.setattr(views, "restore_start", lambda **kw: restore_services.restore_start(**kw, queue=False))
    form = {
        "restore_point": backup.pk,
        "target_server": pg_server_row.pk,
        "target_database": target,
        "tables": ["public.customers"],
        "mask_column_0": "email",
        "mask_rule_0": "fixed",
        "mask_value_0": "hidden@example.com",
        "strategy": "create_new",
        "confirm": "on",
    }
    response = admin_client.post(f"/admin/console/backups/{backup.pk}/restore/", form, HTTP_ACCEPT="application/json")
    assert response.status_code == 201, response.content
    restore = restore_services.Restore.objects.get(backup=backup)
    assert restore.options["tables"] == ["public.customers"]
    restore_services.restore_run(operation_id=restore.operation_id)
    restore.refresh_from_db()
    assert restore.status == "completed", restore.error_message
    with psycopg.connect(dbname=target, **PG) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT email) FROM customers").fetchone() == (300, 1)
        assert conn.execute("SELECT to_regclass('customers_email')").fetchone()[0] is not None
        assert conn.execute("SELECT to_regclass('blobs')").fetchone()[0] is None

    form.update(target_database=f"{target}_2", tables=[], restore_point=backup.pk)
    backup.manifest["source"].pop("tables")  # an older backup: no list to tick, a box to type in
    Backup.objects.filter(pk=backup.pk).update(manifest=backup.manifest)
    page = admin_client.get(f"/admin/console/backups/{backup.pk}/restore/").content.decode()
    assert 'name="tables"' in page and 'value="public.customers"' not in page
    typed = admin_client.post(
        f"/admin/console/backups/{backup.pk}/restore/",
        {**form, "tables": "customers, nope"},
        HTTP_ACCEPT="application/json",
    )
    assert typed.status_code == 201  # names are checked against the dump when it runs
    second = restore_services.Restore.objects.exclude(pk=restore.pk).get(backup=backup)
    cleanup_pg.append(second.target_database)
    restore_services.restore_run(operation_id=second.operation_id)
    second.refresh_from_db()
    assert second.status == "failed" and "Not a table of this backup: nope" in second.error_message
    with psycopg.connect(dbname="postgres", **PG) as conn:  # nothing was left half-restored
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (second.target_database,)).fetchone()


def test_verify_offers_a_test_restore_and_refuses_it_in_words_where_it_cannot_run(admin_client, tenant_a, monkeypatch):
    from backups.models import Verification

    services.storage_create(
        tenant=tenant_a,
        name="disk",
        type="local",
        is_default=True,
        configuration={"path": f"{tenant_a.path_roots[0]}/store"},
    )
    app = services.application_create(
        tenant=tenant_a, name="site", sources=[{"name": "www", "type": "path", "path": f"{tenant_a.path_roots[0]}/www"}]
    )
    backup = Backup.objects.create(tenant=tenant_a, application=app, status="completed", name="site_1")
    page = admin_client.get(f"/admin/backups/backup/{backup.pk}/change/").content.decode()
    assert "Verify checksum" in page and "Test restore" not in page  # a test restore needs a database
    response = admin_client.post(
        f"/admin/console/backups/{backup.pk}/verify/", {"test_type": "test_restore"}, follow=True
    )
    assert "test_restore needs a database backup." in response.content.decode()
    assert not Verification.objects.exists()
    db_backup = Backup.objects.create(
        tenant=tenant_a,
        status="completed",
        name="orders_1",
        database_name="orders",
        db_type="postgresql",
        server=services.server_create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432),
    )
    assert (
        "Test restore into a scratch database"
        in admin_client.get(f"/admin/backups/backup/{db_backup.pk}/change/").content.decode()
    )
    response = admin_client.post(f"/admin/console/backups/{db_backup.pk}/verify/", {"test_type": "test_restore"})
    verification = Verification.objects.get(backup=db_backup)
    assert verification.test_type == "test_restore"
    assert response.headers["Location"] == f"/admin/console/operations/{verification.operation.public_id}/"


def test_the_plain_restore_form_says_service_errors_in_words(admin_client, tenant_a):
    server = services.server_create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)
    backup = Backup.objects.create(
        tenant=tenant_a,
        status="completed",
        name="orders_1",
        database_name="orders",
        db_type="postgresql",
        server=server,
    )
    response = admin_client.post(
        f"/admin/backups/backup/{backup.pk}/restore/",
        {"target_server": server.pk, "target_database": "", "strategy": "create_new", "masking_rules": "email=shred"},
    )
    html = response.content.decode()
    assert response.status_code == 200 and "{&#x27;" not in html and "{'" not in html
    assert "Use &#x27;hash&#x27;, &#x27;randomize&#x27;" in html


def test_a_job_runs_now_from_its_page_and_a_second_run_is_refused_in_words(admin_client, tenant_a):
    storage = services.storage_create(
        tenant=tenant_a, name="disk", type="local", configuration={"path": f"{tenant_a.path_roots[0]}/store"}
    )
    app = services.application_create(
        tenant=tenant_a,
        name="site",
        sources=[{"name": "files", "type": "path", "path": f"{tenant_a.path_roots[0]}/www"}],
    )
    from schedules import services as schedule_services

    job = schedule_services.job_create(
        tenant=tenant_a,
        name="nightly",
        application=app,
        storage=storage,
        schedule_type="daily",
        schedule_time=time(2, 30),
    )
    assert 'id="run-now"' in admin_client.get(f"/admin/schedules/backupjob/{job.pk}/change/").content.decode()
    response = admin_client.post(f"/admin/console/jobs/{job.pk}/run/")
    operation = Backup.objects.get(job=job).operations.get()
    assert response.headers["Location"] == f"/admin/console/operations/{operation.public_id}/"
    again = admin_client.post(f"/admin/console/jobs/{job.pk}/run/", follow=True).content.decode()
    assert "Nightly: A backup of this policy is already running" in again
    assert Backup.objects.filter(job=job).count() == 1
