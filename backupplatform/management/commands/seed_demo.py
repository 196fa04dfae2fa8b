"""Create the demo tenant and an admin account once (used by ``make run``)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from audit.context import acting
from tenants import services
from tenants.models import Plan, Role, Tenant


class Command(BaseCommand):
    help = "Create the demo workspace and a superuser 'admin'; prints the password once."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args, url, **options):
        User = get_user_model()
        with acting(source="cli"):
            tenant = Tenant.objects.filter(slug="demo").first() or services.tenant_create(
                slug="demo", name="Demo workspace", plan=Plan.DEDICATED
            )
            if User.objects.filter(username="admin").exists():
                self.stdout.write(f"Platform: {url}/admin/  (user 'admin'; its password was printed on first run)")
                return
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser("admin", "admin@example.com", password)
            services.membership_set(user=user, tenant=tenant, role=Role.ADMIN)
        bar = "=" * 64
        self.stdout.write(
            f"\n{bar}\n  Admin:    {url}/admin/\n  API docs: {url}/api/docs/\n"
            f"  Username: admin\n  Password: {password}\n"
            f"  (shown once; change it in the admin)\n{bar}\n"
        )
