from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from tenants import services
from tenants.models import Role, Tenant


class Command(BaseCommand):
    help = "Create an API key for a tenant; the key is printed once and never stored."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", required=True)

    def handle(self, *args, tenant, role, name, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug '{tenant}'")
        with acting(source="cli"):
            try:
                key, raw = services.api_key_create(tenant=tenant_obj, name=name, role=role)
            except DomainError as exc:
                raise CommandError(f"{exc.message}: {exc.details}" if exc.details else exc.message)
        self.stderr.write(f"API key '{key.name}' ({role}) for {tenant}; copy it now, it is not shown again:")
        self.stdout.write(raw)
