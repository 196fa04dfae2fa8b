from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from backups.models import Application, Server, Storage
from backups.services.backups import backup_run, backup_start
from tenants.models import Tenant

from ._runner import run_with_progress


class Command(BaseCommand):
    help = "Back up a database (--server/--database) or an application (--application) now, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--server", type=int, help="server id")
        parser.add_argument("--database", default="")
        parser.add_argument("--application", type=int, help="application id")
        parser.add_argument("--storage", type=int, help="storage id (default: the tenant's default storage)")
        parser.add_argument("--compression", choices=["zstd", "gzip", "none"], default="zstd")

    def handle(self, *args, **opts):
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant '{opts['tenant']}'")
        server = Server.objects.filter(tenant=tenant, pk=opts["server"]).first() if opts["server"] else None
        app = Application.objects.filter(tenant=tenant, pk=opts["application"]).first() if opts["application"] else None
        storage = Storage.objects.filter(tenant=tenant, pk=opts["storage"]).first() if opts["storage"] else None
        if (
            (opts["server"] and server is None)
            or (opts["application"] and app is None)
            or (opts["storage"] and storage is None)
        ):
            raise CommandError("Server, application or storage not found in this tenant")
        with acting(source="cli"):
            try:
                op = backup_start(
                    tenant=tenant,
                    server=server,
                    database_name=opts["database"],
                    application=app,
                    storage=storage,
                    compression=opts["compression"],
                    queue=False,
                )
            except DomainError as exc:
                raise CommandError(f"{exc.message} {exc.details or ''}".strip())
            op = run_with_progress(
                op, lambda: backup_run(operation_id=op.pk), label=f"backup {op.backup_id}", stdout=self.stdout
            )
        op.backup.refresh_from_db()
        backup = op.backup
        if backup.status != "completed":
            raise CommandError(f"Backup {backup.pk} {backup.status}: {backup.error_message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup {backup.pk} completed: {backup.stored_bytes} bytes, sha256 {backup.checksum}, at {backup.storage_path}"
            )
        )
