from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from tenants import services
from tenants.models import Plan


class Command(BaseCommand):
    help = "Create a tenant (workspace)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--plan", choices=Plan.values, default=Plan.SHARED)

    def handle(self, *args, slug, name, plan, **options):
        with acting(source="cli"):
            try:
                tenant = services.tenant_create(slug=slug, name=name, plan=plan)
            except DomainError as exc:
                raise CommandError(f"{exc.message}: {exc.details}" if exc.details else exc.message)
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} ({tenant.plan})"))
