from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backupplatform.errors import DomainError
from tenants import services
from tenants.models import Role, Tenant


class Command(BaseCommand):
    help = "Create a user in a tenant with a role (or add an existing user to the tenant)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", default=None)
        parser.add_argument("--email", default="")

    def handle(self, *args, username, tenant, role, password, email, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug '{tenant}'")
        with acting(source="cli"):
            try:
                existing = get_user_model().objects.filter(username=username).first()
                if existing is not None:
                    services.membership_set(user=existing, tenant=tenant_obj, role=role)
                    self.stdout.write(self.style.SUCCESS(f"Added {username} to {tenant} as {role}"))
                    return
                services.user_create(tenant=tenant_obj, username=username, role=role, password=password, email=email)
            except DomainError as exc:
                raise CommandError(f"{exc.message}: {exc.details}" if exc.details else exc.message)
        self.stdout.write(self.style.SUCCESS(f"Created user {username} in {tenant} as {role}"))
