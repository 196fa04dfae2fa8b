from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from audit.context import acting
from backups.keys import tenant_key_export
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Write a tenant's backup key file (for restores without the platform). Keep it secret."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--output", help="file to write (mode 0600); default: the key id + .key.json")

    def handle(self, *args, tenant, output, **opts):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant '{tenant}'")
        with acting(source="cli"):
            filename, content = tenant_key_export(tenant_obj)
        path = output or filename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        self.stdout.write(self.style.SUCCESS(f"Wrote {path}"))
