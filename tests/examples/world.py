"""The real objects the documents' ids stand for, made on demand through the services.

``world.id("storage")`` creates the workspace's S3 storage (on the moto server) the first
time an example asks for it, and returns its id; an example asking for a backup gets a real,
completed one (the pipeline ran), stored on that storage. Everything happens in the test's
transaction, so each example starts from the same world.
"""

from __future__ import annotations

import uuid
from datetime import time
from pathlib import Path
from typing import Any

from rest_framework_simplejwt.tokens import RefreshToken

from audit.context import acting
from tests.conftest import make_member


class World:
    def __init__(self, *, tenant, admin, tmp_path: Path, s3: Any, database: str, acronis: Any = None, ssh: Any = None):
        self.tenant = tenant
        self.admin = admin
        self.tmp_path = tmp_path
        self.s3 = s3
        self.database = database  # a small PostgreSQL database on 127.0.0.1:5432
        self.acronis = acronis  # the fake Acronis (tests.support.acronis_fake), when the module has one
        self.ssh = ssh  # the tests' SSH server (tests.fixtures.services.sftp_server), when the module has one
        self.objects: dict[str, Any] = {}
        self.token = str(RefreshToken.for_user(admin).access_token)
        self._api_key: str | None = None
        self.received: list[bytes] = []  # what the world's receiver was sent

    def fork(self) -> World:
        """This world for one test: the objects made so far, fresh rows of the tenant and its
        admin, and room for the test's own objects (which go away with its savepoint)."""
        from django.contrib.auth import get_user_model

        from tenants.models import Tenant

        world = World(
            tenant=Tenant.objects.get(pk=self.tenant.pk),
            admin=get_user_model().objects.get(pk=self.admin.pk),
            tmp_path=self.tmp_path,
            s3=self.s3,
            database=self.database,
            acronis=self.acronis,
            ssh=self.ssh,
        )
        world.objects = dict(self.objects)
        world.token = self.token
        world.received = self.received
        return world

    # --- access ---------------------------------------------------------------------------

    def get(self, kind: str) -> Any:
        if kind not in self.objects:
            maker = getattr(self, f"_make_{kind}", None)
            if maker is None:
                raise AssertionError(f"the examples' world cannot make a {kind!r}")
            # As the admin would, through the API: the audit log names who and from where.
            with acting(user=self.admin, ip="192.168.1.50", auth_method="jwt", source="api"):
                self.objects[kind] = maker()
        return self.objects[kind]

    def id(self, kind: str) -> Any:
        obj = self.get(kind)
        if isinstance(obj, str | int):
            return obj
        return getattr(obj, "public_id", None) if kind in PUBLIC_IDS else obj.pk

    @property
    def api_key(self) -> str:
        if self._api_key is None:
            from tenants import services
            from tenants.models import Role

            _, self._api_key = services.api_key_create(
                tenant=self.tenant, name="automation", role=Role.ADMIN, created_by=self.admin
            )
        return self._api_key

    # --- makers ---------------------------------------------------------------------------

    def _make_ws(self):
        return self.tenant.slug

    def _make_server(self):
        from backups import services

        server = services.server_create(
            tenant=self.tenant,
            name="local-postgres",
            type="postgresql",
            host="127.0.0.1",
            port=5432,
            environment="production",
            credentials={"username": "postgres", "password": ""},
        )
        services.server_test_connection(server=server)  # a real check: health and heartbeat
        server.refresh_from_db()
        return server

    def _make_storage(self):
        from backups import services

        storage = services.storage_create(
            tenant=self.tenant,
            name="primary-backups",
            type="s3",
            is_default=True,
            description="Primary backup storage for production applications",
            configuration={
                **self.s3.configuration,
                "region": "us-west-2",
                "path_prefix": "ws-123/",
                "encryption": {"enabled": True, "algorithm": "AES256"},
            },
            credentials=self.s3.credentials,
        )
        services.storage_probe(storage=storage)  # a real write/read/delete: connection_status
        storage.refresh_from_db()
        return storage

    def _make_storage2(self):
        """Another S3 storage (same bucket, its own prefix), used by no policy."""
        from backups import services

        return services.storage_create(
            tenant=self.tenant,
            name="archive-backups",
            type="s3",
            configuration={**self.s3.configuration, "region": "us-west-2", "path_prefix": "archive/"},
            credentials=self.s3.credentials,
        )

    def _make_server2(self):
        """A server nothing uses yet (the one the examples delete)."""
        from backups import services

        return services.server_create(
            tenant=self.tenant,
            name="spare-postgres",
            type="postgresql",
            host="127.0.0.1",
            port=5432,
            credentials={"username": "postgres"},
        )

    def _make_files(self) -> str:
        folder = self.tmp_path / "web-app-data"
        folder.mkdir(exist_ok=True)
        for n in range(3):
            (folder / f"page{n}.html").write_text(f"<p>page {n}</p>\n" * 50)
        return str(folder)

    def _make_app(self):
        from backups.services import applications

        self.get("storage")
        return applications.application_create(
            tenant=self.tenant,
            name="web-app",
            namespace="frontend",
            sources=[{"name": "data", "type": "path", "path": self.get("files")}],
        )

    def _make_app2(self):
        from backups.services import applications

        return applications.application_create(tenant=self.tenant, name="web-app-copy", namespace="frontend")

    def _make_app_backup(self):
        """The application's backup: its policy's first run (the pipeline really ran)."""
        from backups.services import backups as backup_services
        from schedules import services

        op = services.job_run(
            job=self.get("policy"),
            actor=self.admin,
            trigger="scheduled",
            description="Scheduled daily backup",
            queue=False,
        )
        backup_services.backup_run(operation_id=op.pk)
        op.backup.refresh_from_db()
        assert op.backup.status == "completed", op.backup.error_message
        return op.backup

    def _make_verification(self):
        """The application backup, verified (its artifact re-read and its SHA-256 compared)."""
        from backups.services import verifications

        verification = verifications.verification_start(
            tenant=self.tenant, backup=self.get("app_backup"), actor=self.admin, queue=False
        )
        verifications.verification_run(operation_id=verification.operation_id)
        verification.refresh_from_db()
        assert verification.passed, verification.error_message
        return verification

    def _make_backup(self):
        """A completed backup of the world's PostgreSQL database (pg_dump really ran)."""
        from backups.services import backups as backup_services

        op = backup_services.backup_start(
            tenant=self.tenant,
            actor=self.admin,
            server=self.get("server"),
            database_name=self.database,
            storage=self.get("storage"),
            compression="gzip",
            queue=False,
        )
        backup_services.backup_run(operation_id=op.pk)
        op.backup.refresh_from_db()
        assert op.backup.status == "completed", op.backup.error_message
        return op.backup

    def _make_restore(self):
        from backups.services import restores

        restore = restores.restore_start(
            tenant=self.tenant,
            backup=self.get("app_backup"),
            actor=self.admin,
            target_application=self.get("app2"),
            target_path=str(self.tmp_path / f"restored-{uuid.uuid4().hex[:8]}"),
            queue=False,
            options={"include_volumes": True, "include_configmaps": True, "include_secrets": False},
        )
        restores.restore_run(operation_id=restore.operation_id)
        restore.refresh_from_db()
        assert restore.status == "completed", restore.error_message
        return restore

    def _make_policy(self):
        from schedules import services

        return services.job_create(
            tenant=self.tenant,
            actor=self.admin,
            name="web-app backup policy",
            application=self.get("app"),
            storage=self.get("storage"),
            schedule_type="daily",
            schedule_time=time(2, 0),
            timezone="America/New_York",
            days_of_week=[1, 2, 3, 4, 5],
            retention={"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3},
            options={
                "include_volumes": True,
                "include_secrets": False,
                "include_configmaps": True,
                "compression": True,
                "encryption": True,
            },
        )

    def _make_job(self):
        """A backup job of the jobs API (api-layer.md): files of the world's folder, daily."""
        from schedules import services

        return services.job_create(
            tenant=self.tenant,
            actor=self.admin,
            name="Nightly files",
            source_path=self.get("files"),
            storage=self.get("storage"),
            schedule_type="daily",
            schedule_time=time(3, 0),
            retention_days=30,
            priority=8,
        )

    def _make_schedule(self):
        """A schedule of the world's database that has run once (so it has a last run)."""
        from backups.services import backups as backup_services
        from schedules import services

        job = services.job_create(
            tenant=self.tenant,
            actor=self.admin,
            name="Nightly database",
            server=self.get("server"),
            database_name=self.database,
            storage=self.get("storage"),
            schedule_type="cron",
            cron_expression="0 2 * * *",
            timezone="UTC",
        )
        op = services.job_run(job=job, actor=self.admin, queue=False)
        backup_services.backup_run(operation_id=op.pk)
        job.refresh_from_db()
        return job

    def _make_retention_policy(self):
        from schedules import services

        return services.retention_policy_create(
            tenant=self.tenant,
            name="Standard Retention",
            description="Keep last 7 daily, 4 weekly, 12 monthly",
            keep_daily=7,
            keep_weekly=4,
            keep_monthly=12,
        )

    def _make_user(self):
        from tenants.models import Role

        return make_member(self.tenant, "operator2", Role.OPERATOR)

    def _make_cleanup_plan(self):
        from schedules import services

        self.get("console_schedule")  # a backup to consider
        return services.cleanup_analyse(tenant=self.tenant, actor=self.admin, reason="examples")

    def _make_cleanup(self):
        from schedules import services

        return services.cleanup_execute(plan=self.get("cleanup_plan"), actor=self.admin, queue=False)

    def _make_console_schedule(self):
        """The console's nightly schedule of the world's application, run once."""
        from backups.services import backups as backup_services
        from schedules import services

        job = services.job_create(
            tenant=self.tenant,
            actor=self.admin,
            name="Nightly Full Backup",
            application=self.get("app"),
            storage=self.get("storage"),
            schedule_type="daily",
            schedule_time=time(2, 0),
            timezone="UTC",
            retention_count=5,
            auto_purge=True,
            notifications={"on_success": True, "on_failure": True},
        )
        op = services.job_run(job=job, actor=self.admin, trigger="scheduled", queue=False)
        backup_services.backup_run(operation_id=op.pk)
        job.refresh_from_db()
        return job

    def _make_acronis_config(self):
        from acronis import services

        fake = self.acronis
        return services.config_save(
            tenant=self.tenant,
            base_url=fake.base_url + "/api/",
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            create=True,
        )

    def _make_agent(self) -> str:
        self.get("acronis_config")
        return self.acronis.agents[0]["id"]

    # --- the console's world (system-backup-recovery.rst) ------------------------------------
    # Its storage locations are named as the document names them ("local", "aws"): a location's
    # id is its name. Its components are the sources of the tenant's default application.

    def _make_local(self):
        """The console's "local" location: a local folder, the default, with a 10 GB quota."""
        from backups import services

        folder = self.tmp_path / "local-store"
        folder.mkdir(exist_ok=True)
        return services.storage_create(
            tenant=self.tenant,
            name="local",
            type="local",
            is_default=True,
            configuration={"path": str(folder)},
            quota_bytes=10 * 1024**3,
        )

    def _make_aws(self):
        """The console's "aws" location: an S3 bucket (the moto server)."""
        from backups import services

        storage = services.storage_create(
            tenant=self.tenant,
            name="aws",
            type="s3",
            configuration={**self.s3.configuration, "region": "us-east-1", "path_prefix": "console/"},
            credentials=self.s3.credentials,
        )
        services.storage_probe(storage=storage)
        storage.refresh_from_db()
        return storage

    def _make_aws_copy(self):
        """The console backup, synced from "local" to "aws" (streamed, then re-read and checked)."""
        from backups.services import copies

        op = copies.sync_start(
            tenant=self.tenant,
            source=self.get("local"),
            destination=self.get("aws"),
            backups=[self.get("console_backup")],
            actor=self.admin,
            queue=False,
        )
        copies.sync_run(operation_id=op.pk)
        op.refresh_from_db()
        assert op.status == "completed", op.error_message
        return op

    def _make_components(self):
        """The default application with a source per console component (folders of files)."""
        from backups.models import Source
        from backups.services import application_get_default

        app = application_get_default(tenant=self.tenant)
        for position, component in enumerate(("system", "data", "config")):
            folder = self.tmp_path / f"component-{component}"
            folder.mkdir(exist_ok=True)
            for n in range(3):
                (folder / f"{component}{n}.txt").write_text(f"{component} file {n}\n" * 100)
            Source.objects.create(
                tenant=self.tenant,
                application=app,
                name=component,
                type="path",
                path=str(folder),
                component=component,
                position=position,
            )
        return app

    def _make_console_backup(self):
        """A completed backup of the console's components on the "local" location."""
        from backups.services import backups as backup_services

        op = backup_services.backup_start(
            tenant=self.tenant,
            actor=self.admin,
            application=self.get("components"),
            storage=self.get("local"),
            compression="gzip",
            name="DailyBackup_20250612",
            description="Scheduled nightly backup",
            queue=False,
        )
        backup_services.backup_run(operation_id=op.pk)
        op.backup.refresh_from_db()
        assert op.backup.status == "completed", op.backup.error_message
        return op.backup

    def _make_console_job(self):
        """The finished job (operation) of the console backup."""
        from backups.models import Operation

        return Operation.objects.get(backup=self.get("console_backup"), kind="backup")

    def _make_console_verification(self):
        """The console backup, verified (decrypted and its checksums compared)."""
        from backups.services import verifications

        verification = verifications.verification_start(
            tenant=self.tenant, backup=self.get("console_backup"), actor=self.admin, test_type="decrypt", queue=False
        )
        verifications.verification_run(operation_id=verification.operation_id)
        verification.refresh_from_db()
        assert verification.passed, verification.error_message
        return verification

    def _make_spare_backup(self):
        """Another backup of the console's components, the test's own (one to delete: deleting
        removes its file, which no savepoint brings back)."""
        from backups.services import backups as backup_services

        op = backup_services.backup_start(
            tenant=self.tenant,
            actor=self.admin,
            application=self.get("components"),
            storage=self.get("local"),
            name="spare",
            queue=False,
        )
        backup_services.backup_run(operation_id=op.pk)
        op.backup.refresh_from_db()
        assert op.backup.status == "completed", op.backup.error_message
        return op.backup

    def _make_backup_operation(self):
        """A backup of the console's components, started and not run yet (a job to follow or cancel)."""
        from backups.services import backups as backup_services

        return backup_services.backup_start(
            tenant=self.tenant,
            actor=self.admin,
            application=self.get("components"),
            storage=self.get("local"),
            name="pre_maintenance_backup",
            queue=False,
        )

    def _make_restore_operation(self):
        """A finished restore of the console backup into a folder of its own."""
        from backups.services import restores

        restore = restores.restore_start(
            tenant=self.tenant,
            backup=self.get("console_backup"),
            actor=self.admin,
            target_path=str(self.tmp_path / f"restored-{uuid.uuid4().hex[:8]}"),
            queue=False,
        )
        restores.restore_run(operation_id=restore.operation_id)
        restore.refresh_from_db()
        assert restore.status == "completed", restore.error_message
        return restore.operation

    def _make_snapshot(self):
        from backups.services import snapshots

        self.get("local")
        return snapshots.snapshot_create(
            tenant=self.tenant,
            actor=self.admin,
            name="Pre_ACS_Update",
            description="Snapshot before ACS module update",
            tags=["ACS", "Zoning"],
        )

    def _make_tar_gz(self) -> bytes:
        """A ``.tar.gz`` of a few files, as a user would upload one to import."""
        import io
        import tarfile
        import time as time_module

        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for n in range(3):
                data = f"exported file {n}\n".encode() * 200
                info = tarfile.TarInfo(f"export/file{n}.txt")
                info.size, info.mtime = len(data), int(time_module.time())
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    # --- commands and notifications (db-backup-platform.md) ----------------------------------

    def _make_ssh_server(self):
        """A server of type ssh: the tests' SSH server, with its host key pinned."""
        from backups import services

        ssh = self.ssh
        return services.server_create(
            tenant=self.tenant,
            name="ops-box",
            type="ssh",
            host=ssh.host,
            port=ssh.port,
            credentials={"username": ssh.username, "password": ssh.password, "host_key": ssh.host_key},
        )

    def _make_command(self):
        from backups.services import commands

        return commands.command_create(
            tenant=self.tenant,
            name="Check Disk Space",
            command_template="df -h",
            description="Check available disk space",
            actor=self.admin,
        )

    def _make_docker_command(self):
        """The document's "Restart Docker Container" template (one placeholder)."""
        from backups.services import commands

        return commands.command_create(
            tenant=self.tenant,
            name="Restart Docker Container",
            type="docker",
            command_template="docker restart {{container_name}}",
            tags="docker,restart",
            description="Restart a specific container",
            actor=self.admin,
        )

    def _make_execution(self):
        """The command, run once on the SSH server (really: over SSH, output captured)."""
        from backups.services import commands

        execution = commands.command_execute(
            command=self.get("command"), server=self.get("ssh_server"), actor=self.admin
        )
        commands.command_run(execution_id=execution.pk)
        execution.refresh_from_db()
        assert execution.status == "completed", execution.error_message
        return execution

    def _make_receiver(self):
        """A local HTTP endpoint standing in for Slack (answers 200 to every POST); the bodies
        it was sent are in ``world.received``."""
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/XXXX"

    def _make_channel(self):
        from audit import notifications

        return notifications.channel_create(
            tenant=self.tenant,
            name="Slack Alerts",
            type="slack",
            config={"webhook_url": self.get("receiver"), "channel": "#alerts"},
        )


# Kinds whose API id is the row's stable string id rather than its number.
PUBLIC_IDS = {"cleanup_plan", "cleanup", "console_schedule", "backup_operation", "restore_operation", "console_job"}
