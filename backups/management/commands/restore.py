from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from backups.models import Backup, Server
from backups.services.restores import restore_run, restore_start, restore_warnings

from ._runner import run_with_progress


class Command(BaseCommand):
    help = "Restore a backup into a database (with optional masking), with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("backup_id", type=int)
        parser.add_argument("--target-database", default="")
        parser.add_argument("--target-server", type=int, help="server id (default: the backup's server)")
        parser.add_argument("--target-path", default="", help="folder for file sources of an application")
        parser.add_argument("--strategy", choices=["create_new", "overwrite"], default="create_new")
        parser.add_argument(
            "--jobs",
            type=int,
            default=None,
            help="PostgreSQL: parallel restore with N connections (spools the dump to a temporary file first)",
        )
        parser.add_argument(
            "--mask",
            action="append",
            default=[],
            metavar="COLUMN=RULE",
            help="hash, randomize, null or fixed:VALUE; repeatable",
        )

    def handle(self, *args, **opts):
        rules = {}
        for item in opts["mask"]:
            column, sep, rule = item.partition("=")
            if not sep:
                raise CommandError(f"--mask expects COLUMN=RULE, got {item!r}")
            rules[column] = rule
        backup = Backup.objects.select_related("tenant").filter(pk=opts["backup_id"]).first()
        if backup is None:
            raise CommandError(f"No backup {opts['backup_id']}")
        target = None
        if opts["target_server"]:
            target = Server.objects.filter(tenant=backup.tenant, pk=opts["target_server"]).first()
            if target is None:
                raise CommandError("Target server not found in the backup's tenant")
        with acting(source="cli"):
            try:
                restore = restore_start(
                    tenant=backup.tenant,
                    backup=backup,
                    target_server=target,
                    target_database=opts["target_database"],
                    target_path=opts["target_path"],
                    strategy=opts["strategy"],
                    masking_rules=rules,
                    queue=False,
                    options={"jobs": opts["jobs"]} if opts["jobs"] else None,
                )
            except DomainError as exc:
                if exc.code == "RESTORE_INCOMPATIBLE":
                    raise CommandError(f"Refused: {exc.message}")
                raise CommandError(f"{exc.message} {exc.details or ''}".strip())
            for warning in restore_warnings(restore):
                self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
            run_with_progress(
                restore.operation,
                lambda: restore_run(operation_id=restore.operation_id),
                label=f"restore {restore.pk}",
                stdout=self.stdout,
            )
        restore.refresh_from_db()
        if restore.status != "completed":
            raise CommandError(f"Restore {restore.pk} {restore.status}: {restore.error_message}")
        self.stdout.write(self.style.SUCCESS(f"Restore {restore.pk} completed: {restore.result.get('restored', {})}"))
        if restore.result.get("masking"):
            self.stdout.write(f"Masked: {restore.result['masking'].get('tables')}")
