from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from schedules import services
from schedules.models import BackupJob
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Apply every job's retention (all tenants, or one with --tenant); --dry-run only shows what would go."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant slug")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **opts):
        jobs = BackupJob.objects.select_related("tenant", "retention_policy").order_by("tenant__slug", "name")
        if opts["tenant"]:
            tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant '{opts['tenant']}'")
            jobs = jobs.filter(tenant=tenant)
        total = 0
        with acting(source="cli"):
            for job in jobs:
                plan = services.cleanup_analyse(tenant=job.tenant, job=job, reason="cli")
                a = plan.analysis
                line = (
                    f"{job.tenant.slug}/{job.name}: {a['eligible_for_removal']} of {a['total_backups']} "
                    f"to delete ({a['space_to_free']}), {a['backups_to_keep']} kept"
                )
                if opts["dry_run"] or not plan.backup_ids:
                    self.stdout.write(f"{line}; ids {plan.backup_ids}" if plan.backup_ids else line)
                    continue
                op = services.cleanup_execute(plan=plan, queue=False)
                op = services.cleanup_run(operation_id=op.pk)
                failed = op.details.get("failed", [])
                total += op.details.get("backups_removed", 0)
                self.stdout.write(
                    f"{line}; removed {op.details.get('backups_removed', 0)}" + (f", FAILED {failed}" if failed else "")
                )
        if not opts["dry_run"]:
            self.stdout.write(self.style.SUCCESS(f"{total} backup(s) removed"))
