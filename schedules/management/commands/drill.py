from __future__ import annotations

import json
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from backups.models import Backup
from schedules.drills import drill_run, drill_start
from schedules.evidence import FORMATS, drill_evidence, evidence_generate
from schedules.models import BackupJob
from tenants.models import Tenant


def _day(value: str) -> date:
    return date.fromisoformat(value)


class Command(BaseCommand):
    help = (
        "Run a restore drill of a backup job now, in this process: restore its latest completed backup "
        "into a scratch copy, run the job's assertions, drop the copy, print the drill record. "
        "With --evidence, write a workspace's drill evidence report (PDF or JSON) instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("job_id", type=int, nargs="?")
        parser.add_argument("--backup", type=int, help="drill this backup of the job instead of its latest")
        parser.add_argument("--evidence", metavar="TENANT_SLUG", help="write this workspace's evidence report")
        parser.add_argument("--format", choices=list(FORMATS), default="pdf")
        parser.add_argument("--start-date", type=_day)
        parser.add_argument("--end-date", type=_day)
        parser.add_argument("--output", "-o", help="file to write the report to (default: its own name)")

    def handle(self, *args, **opts):
        with acting(source="cli"):
            if opts["evidence"]:
                return self._evidence(opts)
            if opts["job_id"] is None:
                raise CommandError("Name a job id (or --evidence TENANT_SLUG)")
            job = BackupJob.objects.select_related("tenant").filter(pk=opts["job_id"]).first()
            if job is None:
                raise CommandError(f"No backup job {opts['job_id']}")
            backup = None
            if opts["backup"] is not None:
                backup = Backup.objects.filter(pk=opts["backup"], job=job).first()
                if backup is None:
                    raise CommandError(f"Job {job.pk} has no backup {opts['backup']}")
            try:
                drill = drill_start(tenant=job.tenant, job=job, backup=backup, queue=False)
            except DomainError as exc:
                raise CommandError(f"{exc.message} {exc.details or ''}".strip())
            self.stdout.write(f"Drilling backup {drill.backup_ref} of job {job.pk} ({job.name})...")
            drill = drill_run(drill_id=drill.pk) or drill
        drill.refresh_from_db()
        self.stdout.write(json.dumps(drill_evidence(drill), indent=2, default=str))
        if not drill.passed:
            raise CommandError(f"Drill {drill.pk} FAILED: {drill.error_message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Drill {drill.pk} passed: restored in {drill.rto_seconds} s, data {drill.rpo_seconds} s old, "
                f"{len(drill.assertions)} assertion(s) passed, scratch copy dropped"
            )
        )

    def _evidence(self, opts) -> None:
        tenant = Tenant.objects.filter(slug=opts["evidence"]).first()
        if tenant is None:
            raise CommandError(f"No workspace {opts['evidence']!r}")
        try:
            report = evidence_generate(
                tenant=tenant, format=opts["format"], start=opts["start_date"], end=opts["end_date"]
            )
        except DomainError as exc:
            raise CommandError(f"{exc.message} {exc.details or ''}".strip())
        path = opts["output"] or report.filename
        with open(path, "wb") as handle:
            for chunk in report.chunks:
                handle.write(chunk)
        self.stdout.write(self.style.SUCCESS(f"Wrote {path}"))
