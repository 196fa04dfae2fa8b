"""``manage.py acronis_check [--tenant SLUG]``: health and counts of configured tenants."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from acronis import selectors
from acronis.errors import AcronisError
from acronis.models import AcronisConfig
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Check the Acronis integration of one tenant (or every configured tenant): health and counts."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant slug (default: every tenant with a configuration)")

    def handle(self, *args, tenant=None, **options):
        if tenant:
            tenants = list(Tenant.objects.filter(slug=tenant))
            if not tenants:
                raise CommandError(f"No tenant {tenant!r}")
        else:
            ids = AcronisConfig.objects.values_list("tenant_id", flat=True)
            tenants = list(Tenant.objects.filter(pk__in=ids).order_by("slug"))
            if not tenants:
                self.stdout.write("No tenant has an Acronis configuration.")
                return
        failures = 0
        for t in tenants:
            ok, data, error = selectors.health_check(tenant=t)
            status = data["api_status"]
            line = f"{t.slug}: {status}"
            if data.get("configuration", {}).get("configured"):
                line += f" ({data['configuration']['base_url']}, {data.get('response_time_ms')} ms"
                line += f", token {'valid' if data.get('token_valid') else 'invalid'})"
            self.stdout.write(line)
            for endpoint in data.get("endpoints_tested", []):
                self.stdout.write(f"  {endpoint['endpoint']}: {endpoint['status']} {endpoint['response_time_ms']} ms")
            for message in data.get("errors", []):
                self.stdout.write(f"  error: {message}" + (f" [{error.code}]" if error else ""))
            if not ok:
                failures += 1
                continue
            try:
                counts = selectors.counts(tenant=t)
            except AcronisError as exc:
                failures += 1
                self.stdout.write(f"  error: {exc.message} [{exc.code}]")
                continue
            self.stdout.write(
                f"  agents: {counts['agents']}, workloads: {counts['workloads']}, "
                f"backups (30 days): {counts['backups']}"
            )
        if failures:
            raise CommandError(f"{failures} tenant(s) failed the Acronis check")
