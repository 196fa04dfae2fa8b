from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from backups.management.commands._runner import run_with_progress
from backups.services.backups import backup_run
from schedules import services
from schedules.models import BackupJob


class Command(BaseCommand):
    help = "Run a backup job now, in this process, with a progress bar (same services as beat and the APIs)."

    def add_arguments(self, parser):
        parser.add_argument("job_id", type=int)

    def handle(self, *args, **opts):
        job = BackupJob.objects.select_related("tenant").filter(pk=opts["job_id"]).first()
        if job is None:
            raise CommandError(f"No backup job {opts['job_id']}")
        with acting(source="cli"):
            try:
                op = services.job_run(job=job, queue=False)
            except DomainError as exc:
                raise CommandError(f"{exc.message} {exc.details or ''}".strip())
            op = run_with_progress(
                op, lambda: backup_run(operation_id=op.pk), label=f"{job.name}: backup {op.backup_id}"
            )
        op.backup.refresh_from_db()
        backup = op.backup
        if backup.status != "completed":
            raise CommandError(f"Backup {backup.pk} {backup.status}: {backup.error_message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Job {job.pk} ({job.name}): backup {backup.pk} completed, {backup.stored_bytes} bytes, "
                f"sha256 {backup.checksum}"
            )
        )
