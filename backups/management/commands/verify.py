from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from backups.models import Backup
from backups.services.verifications import TEST_TYPES, verification_run, verification_start

from ._runner import run_with_progress


class Command(BaseCommand):
    help = "Verify a backup: checksum, authenticated decrypt, or a test restore into a scratch database."

    def add_arguments(self, parser):
        parser.add_argument("backup_id", type=int)
        parser.add_argument("--type", dest="test_type", choices=TEST_TYPES, default="decrypt")

    def handle(self, *args, backup_id, test_type, **opts):
        backup = Backup.objects.select_related("tenant").filter(pk=backup_id).first()
        if backup is None:
            raise CommandError(f"No backup {backup_id}")
        with acting(source="cli"):
            try:
                verification = verification_start(tenant=backup.tenant, backup=backup, test_type=test_type, queue=False)
            except DomainError as exc:
                raise CommandError(f"{exc.message} {exc.details or ''}".strip())
            run_with_progress(
                verification.operation,
                lambda: verification_run(operation_id=verification.operation_id),
                label=f"verify {backup_id}",
                stdout=self.stdout,
            )
        verification.refresh_from_db()
        self.stdout.write(json.dumps(verification.result, indent=2, default=str))
        if not verification.passed:
            raise CommandError(f"Verification of backup {backup_id} FAILED: {verification.result.get('error', '')}")
        self.stdout.write(self.style.SUCCESS(f"Backup {backup_id} verified ({test_type})"))
